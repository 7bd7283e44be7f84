"""riscov losses: scale-invariant NMSE split into diagonal/off-diagonal parts, the β blend,
and the weight rules (both training paths set lam_cov; the β ≥ 0.999 safety)."""
from __future__ import annotations

import warnings

import torch


def _check_pair(r_hat: torch.Tensor, r_true: torch.Tensor) -> None:
    if r_hat.shape != r_true.shape or r_hat.dim() != 3 or r_hat.shape[-1] != r_hat.shape[-2]:
        raise ValueError(f"expected two [B, N, N] matrices of one shape, got {tuple(r_hat.shape)} and {tuple(r_true.shape)}")


def nmse_parts(r_hat: torch.Tensor, r_true: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item NMSE of the diagonal and of the off-diagonal part.

    Shape: r_hat, r_true [B, N, N] (complex or real) -> (nmse_diag [B], nmse_off [B]).
    Each part is ||err_part||² / (||R_true part||² + eps): invariant to scaling both matrices by one
    factor, 0 for identical inputs, finite for any finite input (eps = 1e-12 in the denominator).
    No reduction over the batch.
    """
    _check_pair(r_hat, r_true)
    n = r_hat.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=r_hat.device)
    err2 = (r_hat - r_true).abs().pow(2)
    ref2 = r_true.abs().pow(2)
    d = err2[:, eye].sum(-1) / (ref2[:, eye].sum(-1) + eps)
    o = err2[:, ~eye].sum(-1) / (ref2[:, ~eye].sum(-1) + eps)
    return d, o


def nmse(r_hat: torch.Tensor, r_true: torch.Tensor, diag_weight: float = 0.5, eps: float = 1e-12) -> torch.Tensor:
    """Shape: [B, N, N] x2 -> [B]: diag_weight·NMSE_diag + (1 - diag_weight)·NMSE_off. No batch reduction."""
    d, o = nmse_parts(r_hat, r_true, eps)
    return diag_weight * d + (1.0 - diag_weight) * o


def blend(r_pred: torch.Tensor, r_samp: torch.Tensor, beta: float) -> torch.Tensor:
    """R_blend = (1-β)·R_pred + β·R_samp. Shape: [B, N, N] x2 -> [B, N, N]."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return (1.0 - beta) * r_pred + beta * r_samp


def check_lam_cov(lam_cov: float) -> None:
    """Hard guard: lam_cov must be > 0 (error); ≥ 100 is suspicious (warning)."""
    if not lam_cov > 0:
        raise ValueError(f"lam_cov must be > 0, got {lam_cov} (the main NMSE term would carry no signal)")
    if lam_cov >= 100:
        warnings.warn(f"lam_cov unusually large: {lam_cov}", stacklevel=2)


def effective_weights(loss_cfg, beta: float, epoch: int, warmup_epochs: int) -> tuple[float, float, bool]:
    """(lam_cov, lam_cov_pred, safety_applied) for this epoch.

    Both the curriculum and the non-curriculum path take lam_cov from the config (a path that left it
    unset would train without the main term). With β ≥ 0.999 the main term has no gradient through R_pred, so the
    auxiliary weight is raised to at least 0.2·lam_cov.
    """
    lam_cov = float(loss_cfg.lam_cov)
    check_lam_cov(lam_cov)
    if loss_cfg.curriculum:
        frac = min(1.0, epoch / max(1, warmup_epochs))
        lam_pred = loss_cfg.curriculum_pred_start + (loss_cfg.lam_cov_pred - loss_cfg.curriculum_pred_start) * frac
    else:
        lam_pred = float(loss_cfg.lam_cov_pred)
    safety = beta >= 0.999 and bool(loss_cfg.beta_safety)
    if safety:
        lam_pred = max(lam_pred, 0.2 * lam_cov)
    return lam_cov, lam_pred, safety
