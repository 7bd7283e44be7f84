"""Covariance estimator: an MLP over the (trace-normalised) sample covariance that outputs a
complex Cholesky factor, so R_pred is Hermitian positive-definite by construction."""
from __future__ import annotations

import torch
from torch import nn


class CovEstimator(nn.Module):
    def __init__(self, n: int, hidden: int, depth: int, dropout: float = 0.0):
        super().__init__()
        self.n = n
        layers: list[nn.Module] = []
        width = 2 * n * n
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n * n)  # n real diagonal + n(n-1)/2 complex lower entries
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start at R_pred ∝ I (softplus(0.5413) = 1)
            self.head.bias.zero_()
            self.head.bias[:n] = 0.5413
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, r_samp: torch.Tensor) -> torch.Tensor:
        """Shape: r_samp [B, N, N] complex -> R_pred [B, N, N] complex, Hermitian PSD, trace = tr(R_samp)."""
        if r_samp.dim() != 3 or r_samp.shape[-1] != self.n or r_samp.shape[-2] != self.n:
            raise ValueError(f"expected [B, {self.n}, {self.n}] covariances, got {tuple(r_samp.shape)}")
        b, n = r_samp.shape[0], self.n
        scale = torch.diagonal(r_samp, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-12)  # tr/N
        x = r_samp / scale[:, None, None]
        out = self.head(self.body(torch.cat([x.real.reshape(b, -1), x.imag.reshape(b, -1)], dim=-1)))
        diag = nn.functional.softplus(out[:, :n]) + 1e-3
        m = self.rows.numel()
        off = torch.complex(out[:, n:n + m], out[:, n + m:n + 2 * m])
        chol = torch.zeros(b, n, n, dtype=r_samp.dtype, device=r_samp.device)
        chol = chol + torch.diag_embed(diag.to(r_samp.dtype))
        chol = chol.index_put((torch.arange(b, device=out.device)[:, None], self.rows[None], self.cols[None]), off,
                              accumulate=True)
        r = chol @ chol.conj().transpose(-2, -1)
        r = 0.5 * (r + r.conj().transpose(-2, -1))
        tr = torch.diagonal(r, dim1=-2, dim2=-1).real.mean(-1)
        return r * (scale / tr)[:, None, None]
