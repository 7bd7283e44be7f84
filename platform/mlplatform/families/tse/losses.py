"""tse losses. Every component is non-negative, so none can reward the optimiser for suppressing its
output (a raw-dB energy term did: silence lowered the loss), and the scene loss takes its weights only
from the config (no function default can silently replace the configured ``ta_weight``).

Scene weighting: total = (1 - ta_weight)·(λ_sisdr·sep + λ_psl·psl) + λ_amp·amp + ta_weight·ta_energy,
i.e. with ta_weight 0.1 the TP terms carry 0.9 and the TA term 0.1; the amplitude anchor keeps its own
weight outside that split (docs/families/tse.md, "Losses").
"""
from __future__ import annotations

from typing import Any

import torch

from mlplatform.train.terms import FINITE, NONNEG, LossTerms


def _check_wave(name: str, x: torch.Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name}: expected waveforms [B, T], got shape {tuple(x.shape)}")


def _check_pair(est: torch.Tensor, tgt: torch.Tensor) -> None:
    _check_wave("estimate", est)
    if est.shape != tgt.shape:
        raise ValueError(f"estimate {tuple(est.shape)} and target {tuple(tgt.shape)} must have one shape [B, T]")


def _projection(est: torch.Tensor, tgt: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean both, project est onto tgt: (target energy, residual energy), each [B]."""
    est = est - est.mean(-1, keepdim=True)
    tgt = tgt - tgt.mean(-1, keepdim=True)
    alpha = ((est * tgt).sum(-1, keepdim=True) + eps) / (tgt.pow(2).sum(-1, keepdim=True) + eps)
    s = alpha * tgt
    return s.pow(2).sum(-1), (est - s).pow(2).sum(-1)


def si_sdr(est: torch.Tensor, tgt: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (zero-mean; eps as in torchmetrics). Higher is better.

    Shape: est, tgt [B, T] -> [B]. No reduction. Invariant to scaling ``est`` (so it
    cannot see amplitude, hence ``amplitude_loss``).
    """
    _check_pair(est, tgt)
    p_s, p_e = _projection(est, tgt, eps)
    return 10.0 * torch.log10((p_s + eps) / (p_e + eps))


def si_sdr_loss(est: torch.Tensor, tgt: torch.Tensor, cap_db: float = 50.0, eps: float = 1e-8) -> torch.Tensor:
    """Separation loss: ``cap_db - SI-SDR_tau`` with the soft cap tau = 10^(-cap_db/10) (Wisdom et al.).

    Shape: [B, T] x2 -> [B], no reduction. SI-SDR_tau = 10·log10(P_s / (P_e + tau·P_s)) never exceeds
    ``cap_db``, so the loss is >= 0 (declared NONNEG); below ~cap-10 dB its gradient is -SI-SDR's.
    """
    _check_pair(est, tgt)
    p_s, p_e = _projection(est, tgt, eps)
    tau = 10.0 ** (-cap_db / 10.0)
    capped = 10.0 * torch.log10((p_s + eps) / (p_e + tau * (p_s + eps) + eps))
    return (cap_db - capped).clamp_min(0.0)  # clamp: float rounding only


def phase_sensitive_loss(est: torch.Tensor, tgt: torch.Tensor, win: int, compress: float = 0.3,
                         eps: float = 1e-8) -> torch.Tensor:
    """Scale- and phase-sensitive spectral loss on magnitude-compressed complex STFTs.

    Shape: [B, T] x2 -> [B], no reduction. With X_c = |X|^c·e^{j∠X}: mean|Ŝ_c - S_c|² / mean|S_c|².
    0 iff est == tgt (up to STFT round-trip); scaling est alone changes it (unlike SI-SDR); >= 0.
    """
    _check_pair(est, tgt)
    if win < 16:
        raise ValueError(f"STFT window must be >= 16 samples, got {win}")
    window = torch.hann_window(win, device=est.device, dtype=torch.float32)

    def comp(x: torch.Tensor) -> torch.Tensor:
        z = torch.stft(x.float(), n_fft=win, hop_length=win // 4, window=window, return_complex=True)
        mag2 = z.real.pow(2) + z.imag.pow(2) + eps  # eps: finite gradient of |z|^c at z = 0
        return z * (mag2.pow((compress - 1.0) / 2.0))

    e, t = comp(est), comp(tgt)
    err = (e - t).abs().pow(2).mean((-2, -1))
    return err / (t.abs().pow(2).mean((-2, -1)) + eps)


def rms(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shape: [B, T] -> [B]. sqrt(mean(x²) + eps²): eps keeps the gradient finite at silence."""
    _check_wave("signal", x)
    return (x.pow(2).mean(-1) + eps * eps).sqrt()


def amplitude_loss(est: torch.Tensor, tgt: torch.Tensor, floor: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """Amplitude anchor for TP samples: log(clamp(rms_est/rms_tgt, min=floor))².

    Shape: [B, T] x2 -> [B], no reduction (the caller takes the batch mean). 0 with zero
    gradient at ratio 1; symmetric in log ratio (0.5x and 2x cost the same); no gradient below ``floor``.
    """
    _check_pair(est, tgt)
    ratio = (rms(est, eps) / rms(tgt, eps).clamp_min(eps)).clamp(min=floor)
    return torch.log(ratio).pow(2)


def energy_db(est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Output energy in dBFS: 10·log10(mean(est²) + eps). Shape: [B, T] -> [B]."""
    _check_wave("estimate", est)
    return 10.0 * torch.log10(est.pow(2).mean(-1) + eps)


def energy_loss(est: torch.Tensor, target_db: float = -30.0, eps: float = 1e-8) -> torch.Tensor:
    """TA loss: relu(energy_db(est) - target_db). Shape: [B, T] -> [B].

    >= 0 for every output, and both value and gradient are 0 once the output is below ``target_db``:
    suppressing further can no longer lower the total loss (the bug: it returned raw, negative dB).
    """
    return torch.relu(energy_db(est, eps) - target_db)


def _subset_mean(v: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Mean of a per-sample loss over its subset, or an exact 0 (still in the graph) for an empty one."""
    if v is None or v.numel() == 0:
        return like.sum() * 0.0
    return v.mean()


def scene_aware_loss(est: torch.Tensor, tgt: torch.Tensor, tp: torch.Tensor, loss_cfg: Any,
                     sample_rate: int) -> LossTerms:
    """TP terms on target-present samples only, the TA term on target-absent samples only.

    Shape: est, tgt [B, T]; tp [B] bool (True = target present) -> LossTerms of scalar components
    ``sep``, ``psl``, ``amp`` (means over TP samples) and ``ta_energy`` (mean over TA samples); a batch
    with no TP (or no TA) sample gives an exact 0 for those terms. Every weight comes from ``loss_cfg``
    (the run's config section): there is deliberately no default to fall back on.
    """
    _check_pair(est, tgt)
    tp = tp.bool().flatten()
    if tp.shape[0] != est.shape[0]:
        raise ValueError(f"tp flags {tuple(tp.shape)} do not match the batch {est.shape[0]}")
    c = loss_cfg
    w_ta = float(c.ta_weight)
    has_tp, has_ta = bool(tp.any()), bool((~tp).any())
    e_tp, t_tp, e_ta = est[tp], tgt[tp], est[~tp]
    win = int(round(c.psl_win_s * sample_rate))
    sep = si_sdr_loss(e_tp, t_tp, c.sisdr_cap_db, c.eps) if has_tp else None
    psl = phase_sensitive_loss(e_tp, t_tp, win, c.psl_compress, c.eps) if has_tp else None
    amp = amplitude_loss(e_tp, t_tp, c.amp_floor, c.eps) if has_tp else None
    raw = c.ta_energy_form == "raw_db"  # the original bug, on request only (a regression test)
    ta = (energy_db(e_ta, c.eps) if raw else energy_loss(e_ta, c.target_db, c.eps)) if has_ta else None
    terms = LossTerms()
    terms.add("sep", _subset_mean(sep, est), (1.0 - w_ta) * c.lambda_sisdr, NONNEG)
    terms.add("psl", _subset_mean(psl, est), (1.0 - w_ta) * c.lambda_psl, NONNEG)
    terms.add("amp", _subset_mean(amp, est), c.lambda_amp, NONNEG)
    terms.add("ta_energy", _subset_mean(ta, est), w_ta, FINITE if raw else NONNEG)
    return terms
