"""Downstream metric: MUSIC direction-of-arrival estimates from a covariance, and their error."""
from __future__ import annotations

import math

import torch


def music_spectrum(r: torch.Tensor, n_sources: torch.Tensor, grid_deg: torch.Tensor) -> torch.Tensor:
    """MUSIC pseudo-spectrum. Shape: r [B,N,N] complex, n_sources [B] int, grid [G] -> [B, G]."""
    b, n, _ = r.shape
    _, vecs = torch.linalg.eigh(r.to(torch.complex128))  # ascending eigenvalues
    # noise subspace: the N-K eigenvectors of the smallest eigenvalues (K differs per item)
    noise = (torch.arange(n, device=r.device)[None, :] < (n - n_sources)[:, None]).to(torch.float64)
    idx = torch.arange(n, device=r.device, dtype=torch.float64)[:, None]
    a = torch.exp(-1j * math.pi * idx * torch.sin(torch.deg2rad(grid_deg.to(torch.float64)))[None, :])  # [N, G]
    proj = (vecs.conj().transpose(-2, -1) @ a).abs().pow(2)  # [B, N, G]
    denom = (proj * noise[:, :, None]).sum(1).clamp_min(1e-12)
    return (1.0 / denom).float()


def music_doa(r: torch.Tensor, n_sources: torch.Tensor, k_max: int, grid_deg: torch.Tensor) -> torch.Tensor:
    """The K highest spectrum peaks, sorted. Shape: -> [B, k_max] degrees, NaN beyond each item's K."""
    p = music_spectrum(r, n_sources, grid_deg)
    peak = torch.zeros_like(p, dtype=torch.bool)
    peak[:, 1:-1] = (p[:, 1:-1] > p[:, :-2]) & (p[:, 1:-1] >= p[:, 2:])
    score = torch.where(peak, p, torch.full_like(p, -1.0))
    top = score.topk(k_max, dim=-1).indices
    est = grid_deg[top]
    est = torch.where(score.gather(1, top) > 0, est, torch.zeros_like(est))  # too few peaks: guess broadside
    keep = torch.arange(k_max, device=r.device)[None, :] < n_sources[:, None]
    est = torch.where(keep, est, torch.full_like(est, float("inf")))
    est = est.sort(-1).values
    return torch.where(torch.isinf(est), torch.full_like(est, float("nan")), est)


def doa_sq_error(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared angle error per item (sorted matching). Shape: [B, K] x2 (NaN padded) -> [B] deg²."""
    t = torch.where(torch.isnan(true), torch.full_like(true, float("inf")), true).sort(-1).values
    t = torch.where(torch.isinf(t), torch.full_like(t, float("nan")), t)
    err = (est - t).pow(2)
    valid = ~torch.isnan(err)
    return torch.where(valid, err, torch.zeros_like(err)).sum(-1) / valid.sum(-1).clamp_min(1)
