"""3-level hierarchical VQ-VAE with one encoder/decoder per feature category.

Per category ``c`` with ``n_c`` features: ``enc_c`` maps x_c -> an embedding e (``group_embedding_dim``);
three levels quantise it coarse-to-fine *residually*: level l projects the current residual r_l to its
latent (size ``round(ratio_{c,l} · n_c)``, from the compression analysis), quantises it with its own
codebook, projects back (u_l) and passes r_{l+1} = r_l - u_l on. ``dec_c`` decodes Σ u_l. L0 therefore
carries the coarse content and L1/L2 refine it, which is why the ratios grow with the level.

Quantiser: ``vector_quantize_pytorch.VectorQuantize`` (EMA codebook updates, k-means initialisation on
the first batch, dead-code revival via ``threshold_ema_dead_code``, rotation-trick gradients).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from vector_quantize_pytorch import VectorQuantize


def make_quantizer(dim: int, codebook_size: int, *, decay: float = 0.9, kmeans_init: bool = True,
                   kmeans_iters: int = 10, dead_code_threshold: float = 2.0) -> VectorQuantize:
    """One level's codebook. ``commitment_weight=1``: the weight lives in ``loss.commitment_weight`` so
    the raw commitment value is what gets logged and bound-checked."""
    return VectorQuantize(dim=dim, codebook_size=codebook_size, decay=decay, kmeans_init=kmeans_init,
                          kmeans_iters=kmeans_iters, threshold_ema_dead_code=dead_code_threshold,
                          commitment_weight=1.0)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, n_out))


class CategoryCoder(nn.Module):
    def __init__(self, n_features: int, latent_dims: list[int], codebook_sizes: list[int], emb: int, hidden: int,
                 vq_kwargs: dict[str, Any], quantize: bool = True):
        super().__init__()
        self.n_features = n_features
        self.quantize = quantize
        self.enc = _mlp(n_features, hidden, emb)
        self.down = nn.ModuleList(nn.Linear(emb, d) for d in latent_dims)
        # without quantisation (the ceiling) the levels are plain linear bottlenecks of the same sizes
        self.vq = nn.ModuleList(make_quantizer(d, k, **vq_kwargs) if quantize else nn.Identity()
                                for d, k in zip(latent_dims, codebook_sizes))
        self.up = nn.ModuleList(nn.Linear(d, emb) for d in latent_dims)
        self.dec = _mlp(emb, hidden, n_features)

    def forward(self, x: torch.Tensor, drop_level: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape: x [B, n_c] -> (recon [B, n_c], indices [B, 3] long, commitment [3]).

        ``drop_level``: that level's codes are zeroed in the decoded sum (the reliance probe); the
        residual chain is unchanged, so the other levels decode exactly what they would have."""
        r = self.enc(x)
        total = torch.zeros_like(r)
        idx, commit = [], []
        for level, (down, vq, up) in enumerate(zip(self.down, self.vq, self.up)):
            if self.quantize:
                q, i, c = vq(down(r))
            else:
                q, i, c = down(r), torch.zeros(len(x), dtype=torch.long), r.new_zeros(())
            u = up(q)
            if level != drop_level:
                total = total + u
            r = r - u
            idx.append(i.reshape(-1))
            commit.append(c.reshape(-1).sum())
        return self.dec(total), torch.stack(idx, -1), torch.stack(commit)


class HierVQVAE(nn.Module):
    """Per-category coders over the column slices of one standardised feature matrix."""

    def __init__(self, categories: list[str], sizes: list[int], latent_dims: list[list[int]],
                 codebook_sizes: list[int], emb: int, hidden: int, vq_kwargs: dict[str, Any], quantize: bool = True):
        super().__init__()
        self.categories = list(categories)
        self.sizes = list(sizes)
        self.codebook_sizes = list(codebook_sizes)
        self.coders = nn.ModuleList(CategoryCoder(n, list(d), codebook_sizes, emb, hidden, vq_kwargs, quantize)
                                    for n, d in zip(sizes, latent_dims))

    @property
    def n_features(self) -> int:
        return sum(self.sizes)

    def forward(self, x: torch.Tensor, drop_level: int | None = None) -> dict[str, Any]:
        """Shape: x [B, P] (P = Σ n_c, columns grouped by category) -> recon [B, P], indices [B, C, 3] long,
        commitment [C, 3] (per category and level). ``drop_level``: see ``CategoryCoder.forward``."""
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected [B, {self.n_features}] features (categories {self.sizes}), got {tuple(x.shape)}")
        recons, idx, commits = [], [], []
        for coder, xc in zip(self.coders, x.split(self.sizes, dim=1)):
            r, i, c = coder(xc, drop_level)
            recons.append(r)
            idx.append(i)
            commits.append(c)
        return {"recon": torch.cat(recons, 1), "indices": torch.stack(idx, 1), "commitment": torch.stack(commits)}
