"""vqvae losses: reconstruction MSE (total and per category) and the commitment term."""
from __future__ import annotations

import torch


def per_sample_mse(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape: recon, x [B, P] -> [B], the mean squared error over features. No batch reduction.

    0 for identical inputs; on standardised features 1.0 is what predicting the mean gives.
    """
    if recon.shape != x.shape or x.dim() != 2:
        raise ValueError(f"expected two [B, P] tensors of one shape, got {tuple(recon.shape)} and {tuple(x.shape)}")
    return (recon - x).pow(2).mean(1)


def per_category_mse(recon: torch.Tensor, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Shape: recon, x [B, P], sizes summing to P -> [B, C], each category's own feature-mean MSE.

    Each category is averaged over its own features, so a 33-feature category is not hidden behind the
    mean of many small ones (the per-category diagnostics table).
    """
    if recon.shape != x.shape or x.dim() != 2 or sum(sizes) != x.shape[1]:
        raise ValueError(f"expected [B, {sum(sizes)}] x2 for sizes {sizes}, got {tuple(recon.shape)}, {tuple(x.shape)}")
    err = (recon - x).pow(2)
    return torch.stack([e.mean(1) for e in err.split(sizes, dim=1)], 1)


def commitment(commit: torch.Tensor) -> torch.Tensor:
    """Shape: [C, L] per category and level (each already a batch mean) -> scalar sum over C and L."""
    if commit.dim() != 2:
        raise ValueError(f"expected [C, L] commitment losses, got {tuple(commit.shape)}")
    return commit.sum()
