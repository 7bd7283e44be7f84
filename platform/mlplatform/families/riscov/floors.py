"""Classical covariance estimators for riscov (the floors) and the DOA-aware oracle (the ceiling).

All functions are pure torch, batched over a leading dimension, and never modify their inputs.
Floors need only the sample covariance (Ledoit-Wolf can also use the snapshots themselves);
the oracle additionally needs the true directions of arrival, which the riscov batches carry as
``angles_deg`` ([B, max_sources], NaN beyond each item's source count).
"""
from __future__ import annotations

import itertools
import math

import torch


def _check_cov(r: torch.Tensor, name: str = "r_samp") -> None:
    if r.dim() != 3 or r.shape[-1] != r.shape[-2] or r.shape[-1] < 1:
        raise ValueError(f"{name}: expected [B, N, N] covariances, got {tuple(r.shape)}")


def sample_covariance(r_samp: torch.Tensor) -> torch.Tensor:
    """The sample covariance itself (identity floor); returns a copy.

    Shape: r_samp [B, N, N] complex -> [B, N, N] complex.
    """
    _check_cov(r_samp)
    return r_samp.clone()


def ledoit_wolf(r_samp: torch.Tensor, snapshots: int | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
    """Ledoit-Wolf shrinkage of the complex sample covariance toward μI (μ = tr(R)/N), zero-mean data.

    Shape: r_samp [B, N, N] complex, x [B, N, L] complex (optional) -> [B, N, N] complex.

    R_lw = (1-ρ)·R + ρ·μI with ρ = min(b², d²)/d², d² = ||R - μI||²_F / N and
    b² = (1/(N·L))·((1/L)·Σ_l ||x_l||⁴ - ||R||²_F) -- sklearn's ``ledoit_wolf`` (assume_centered=True)
    with |·|² in place of squares. With the snapshots ``x`` this is exact; with ``snapshots`` = L only,
    the fourth moment is the complex-Gaussian plug-in E||x||⁴ = tr(R)² + ||R||²_F (R in place of the
    true covariance), i.e. b² = tr(R)² / (N·L).
    """
    _check_cov(r_samp)
    n = r_samp.shape[-1]
    fro2 = r_samp.abs().pow(2).sum((-2, -1))
    tr = torch.diagonal(r_samp, dim1=-2, dim2=-1).real.sum(-1)
    mu = tr / n
    if x is not None:
        if x.dim() != 3 or x.shape[:2] != r_samp.shape[:2]:
            raise ValueError(f"x: expected [B, {n}, L] snapshots, got {tuple(x.shape)}")
        ll = x.shape[-1]
        m4 = x.abs().pow(2).sum(-2).pow(2).sum(-1) / ll  # (1/L) Σ_l ||x_l||⁴
    else:
        if snapshots is None or snapshots < 1:
            raise ValueError("ledoit_wolf needs the snapshots x or their count L (snapshots >= 1)")
        ll = snapshots
        m4 = tr.pow(2) + fro2  # complex-Gaussian plug-in for E||x||⁴
    b2 = (m4 - fro2) / (n * ll)
    d2 = (fro2 - n * mu.pow(2)) / n  # ||R - μI||²_F / N
    rho = torch.where(d2 > 0, torch.minimum(b2.clamp_min(0), d2) / d2.clamp_min(1e-30), torch.ones_like(d2))
    eye = torch.eye(n, dtype=r_samp.dtype, device=r_samp.device)
    rho = rho[:, None, None].to(r_samp.dtype)
    return (1 - rho) * r_samp + rho * mu[:, None, None].to(r_samp.dtype) * eye


def forward_backward(r_samp: torch.Tensor) -> torch.Tensor:
    """Forward-backward averaging (R + J·R*·J)/2, J the exchange matrix (ULA centro-symmetry).

    Shape: r_samp [B, N, N] complex -> [B, N, N] complex, Hermitian if the input is.
    """
    _check_cov(r_samp)
    return 0.5 * (r_samp + r_samp.conj().flip(-2, -1))


def toeplitz_lags(r: torch.Tensor) -> torch.Tensor:
    """Mean of each sub-diagonal: lag m = mean_i R[i+m, i] for m = 0..N-1.

    Shape: r [B, N, N] complex -> [B, N] complex (lag 0 real-valued for a Hermitian input).
    Hermitian symmetry is imposed: lag m averages R[i+m, i] and conj(R[i, i+m]).
    """
    _check_cov(r, "r")
    n = r.shape[-1]
    lags = [torch.diagonal(r, offset=0, dim1=-2, dim2=-1).real.mean(-1).to(r.dtype)]
    for m in range(1, n):
        lower = torch.diagonal(r, offset=-m, dim1=-2, dim2=-1)
        upper = torch.diagonal(r, offset=m, dim1=-2, dim2=-1).conj()
        lags.append(0.5 * (lower + upper).mean(-1))
    return torch.stack(lags, -1)


def toeplitz_from_lags(lags: torch.Tensor) -> torch.Tensor:
    """Hermitian Toeplitz matrix T[i, j] = lags[i - j] (conj for i < j).

    Shape: lags [B, N] complex -> [B, N, N] complex.
    """
    if lags.dim() != 2:
        raise ValueError(f"lags: expected [B, N], got {tuple(lags.shape)}")
    n = lags.shape[-1]
    idx = torch.arange(n, device=lags.device)
    d = idx[:, None] - idx[None, :]  # i - j
    full = torch.cat([lags.conj().flip(-1)[:, :-1], lags], -1)  # lags -(N-1) .. N-1
    return full[:, d + n - 1]


def toeplitz_average(r_samp: torch.Tensor) -> torch.Tensor:
    """Toeplitz averaging: every diagonal replaced by its mean (Hermitian Toeplitz projection).

    Shape: r_samp [B, N, N] complex -> [B, N, N] complex, Hermitian Toeplitz (not necessarily PSD).
    It is the Frobenius-orthogonal projection onto Hermitian Toeplitz matrices, so the trace is kept.
    """
    return toeplitz_from_lags(toeplitz_lags(r_samp))


def steering_torch(n: int, angles_deg: torch.Tensor) -> torch.Tensor:
    """Half-wavelength ULA steering vectors, same convention as ``data.steering``.

    Shape: angles_deg [..., K] real -> [..., N, K] complex128 (NaN angles give NaN columns).
    """
    idx = torch.arange(n, dtype=torch.float64, device=angles_deg.device)
    ph = -math.pi * idx[:, None] * torch.sin(torch.deg2rad(angles_deg.to(torch.float64)))[..., None, :]
    return torch.polar(torch.ones_like(ph), ph)


def oracle_nnls(r_samp: torch.Tensor, angles_deg: torch.Tensor, return_powers: bool = False):
    """Oracle ceiling: with the true DOAs known, the least-squares fit (Frobenius norm) of
    R = Σ_k p_k·a(θ_k)a(θ_k)ᴴ + σ²·I to the sample covariance under p_k >= 0, σ² >= 0.

    Shape: r_samp [B, N, N] complex, angles_deg [B, K] (NaN = no source) -> R [B, N, N] complex
    (r_samp's dtype); with ``return_powers`` also (p [B, K] float64 with 0 for absent sources, σ² [B]).

    Exact NNLS by enumeration: at most K + 1 <= 5 unknowns, so every active set is solved
    (unconstrained least squares on the set) and the feasible one with the lowest residual kept.
    """
    _check_cov(r_samp)
    if angles_deg.dim() != 2 or angles_deg.shape[0] != r_samp.shape[0]:
        raise ValueError(f"angles_deg: expected [{r_samp.shape[0]}, K], got {tuple(angles_deg.shape)}")
    b, n, _ = r_samp.shape
    k = angles_deg.shape[1]
    if k + 1 > 12:
        raise ValueError(f"oracle_nnls enumerates 2^(K+1) active sets; K = {k} is too many")
    present = ~torch.isnan(angles_deg)
    a = steering_torch(n, torch.where(present, angles_deg, torch.zeros_like(angles_deg)))  # [B, N, K]
    r = r_samp.to(torch.complex128)
    # Gram of the basis {a_k a_kᴴ, I} under <X, Y> = Re tr(Xᴴ Y), and the right-hand side
    g = torch.empty(b, k + 1, k + 1, dtype=torch.float64, device=r.device)
    g[:, :k, :k] = (a.conj().transpose(-2, -1) @ a).abs().pow(2)
    g[:, :k, k] = g[:, k, :k] = float(n)
    g[:, k, k] = float(n)
    rhs = torch.empty(b, k + 1, dtype=torch.float64, device=r.device)
    rhs[:, :k] = torch.einsum("bnk,bnm,bmk->bk", a.conj(), r, a).real
    rhs[:, k] = torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1)
    allowed = torch.cat([present, torch.ones(b, 1, dtype=torch.bool, device=r.device)], -1)
    best_x = torch.zeros(b, k + 1, dtype=torch.float64, device=r.device)
    best_f = torch.zeros(b, dtype=torch.float64, device=r.device)  # x = 0 is feasible with f = 0
    eye = torch.eye(k + 1, dtype=torch.float64, device=r.device)
    for bits in itertools.product((False, True), repeat=k + 1):
        if not any(bits):
            continue
        act = torch.tensor(bits, device=r.device)[None, :] & allowed  # [B, K+1]
        m = act.to(torch.float64)
        gs = g * m[:, :, None] * m[:, None, :] + torch.diag_embed(1 - m)  # inactive rows -> identity
        x = torch.linalg.solve(gs + 1e-12 * eye, rhs * m)
        f = (x[:, None, :] @ g @ x[:, :, None])[:, 0, 0] - 2 * (x * rhs).sum(-1)
        ok = (x >= 0).all(-1) & (act.sum(-1) > 0) & (act == torch.tensor(bits, device=r.device)[None, :]).all(-1)
        take = ok & (f < best_f)
        best_x = torch.where(take[:, None], x, best_x)
        best_f = torch.where(take, f, best_f)
    p, s2 = best_x[:, :k], best_x[:, k]
    out = (a * p[:, None, :].to(a.dtype)) @ a.conj().transpose(-2, -1)
    out = out + s2[:, None, None] * torch.eye(n, dtype=out.dtype, device=out.device)
    out = out.to(r_samp.dtype)
    return (out, p, s2) if return_powers else out


FLOORS = {
    "sample": sample_covariance,
    "forward_backward": forward_backward,
    "toeplitz": toeplitz_average,
}
