"""Covariance estimator for riscov: an MLP with a Hermitian PSD Toeplitz core and sample-noise cancellation.

The true covariance of a half-wavelength ULA with uncorrelated sources is R = Σ p_k a(θ_k)a(θ_k)ᴴ + σ²I:
Hermitian, Toeplitz and PSD. The network therefore

1. reads the trace-normalised sample covariance R̃ = R_samp / (tr R_samp / N) through structured features:
   its Toeplitz lags (each diagonal's mean), its eigenvalues, and the full matrix;
2. builds a Hermitian Toeplitz core T from 2N-1 real outputs, one of two ways (``core``):
   - ``toeplitz_residual`` (default): T = Toeplitz average of R̃ + learnt lag corrections, so training starts
     at the Toeplitz-averaging floor and only has to learn the denoising on top;
   - ``spectrum``: T = Σ_g s_g a(u_g)a(u_g)ᴴ + σ²I with a non-negative spectrum s on a fine periodic grid
     u_g = sin θ_g ∈ [-1, 1) and noise power σ² (PSD Toeplitz by construction);
3. with ``samp_cancel``, subtracts c·R̃ (c a learnt scalar) before the PSD projection: the blend
   R_blend = (1-β)·R_pred + β·R_samp then carries ((1-β)c' - β)·(non-Toeplitz sample noise), which the loss
   drives towards 0 (c → β/(1-β) up to the trace rescaling); without it the β·R_samp share of the blend keeps
   all of the sample covariance's non-Toeplitz noise;
4. projects onto the PSD cone (eigenvalues >= 1e-4·tr(R_samp)/N) and rescales to trace tr(R_samp).

The PSD projection is V·max(Λ, ε)·Vᴴ with its exact derivative taken through the Daleckii-Krein divided
differences on a detached eigenbasis, so no eigenvector gradient (unstable for close eigenvalues) is used.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mlplatform.families.riscov.floors import toeplitz_from_lags, toeplitz_lags


def psd_project(a: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Nearest (Frobenius) PSD matrix with eigenvalues clamped at ``eps``, differentiable and stable.

    Shape: a [B, N, N] complex Hermitian -> [B, N, N] complex Hermitian, eigenvalues >= eps.
    The value is V·max(Λ, eps)·Vᴴ; the gradient is the Fréchet derivative V·(W ∘ Vᴴ dA V)·Vᴴ with
    W_ij = (f(λ_i) - f(λ_j)) / (λ_i - λ_j) (f' on ties), built on a detached eigendecomposition.
    """
    a = 0.5 * (a + a.conj().transpose(-2, -1))
    with torch.no_grad():
        lam, v = torch.linalg.eigh(a.detach())
        f = lam.clamp_min(eps)
        d = lam[:, :, None] - lam[:, None, :]
        df = f[:, :, None] - f[:, None, :]
        fp = (lam > eps).to(lam.dtype)
        tie = d.abs() <= 1e-7 * (1 + lam.abs().amax(-1, keepdim=True)[:, :, None])
        w = torch.where(tie, 0.5 * (fp[:, :, None] + fp[:, None, :]), df / torch.where(tie, torch.ones_like(d), d))
        const = torch.diag_embed((f - lam * fp).to(a.dtype))  # eps on clamped eigenvalues, 0 elsewhere
    vh = v.conj().transpose(-2, -1)
    m = vh @ a @ v  # equals diag(λ) in value; carries the gradient
    out = v @ (m * w.to(a.dtype) + const) @ vh
    return 0.5 * (out + out.conj().transpose(-2, -1))


class CovEstimator(nn.Module):
    def __init__(self, n: int, hidden: int, depth: int, dropout: float = 0.0, grid: int = 256,
                 samp_cancel: bool = True, eig_features: bool = True, full_features: bool = True,
                 core: str = "toeplitz_residual"):
        super().__init__()
        if core not in ("spectrum", "toeplitz_residual"):
            raise ValueError(f"core must be 'spectrum' or 'toeplitz_residual', got {core!r}")
        self.n, self.grid, self.core = n, grid, core
        self.samp_cancel, self.eig_features, self.full_features = samp_cancel, eig_features, full_features
        width = 2 * (n - 1) + (n if eig_features else 0) + (2 * n * n if full_features else 0)
        self.in_width = width
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = hidden
        self.body = nn.Sequential(*layers)
        # spectrum logits on the grid + the noise-power logit; toeplitz_residual: lag corrections
        self.head = nn.Linear(width, grid + 1 if core == "spectrum" else 2 * n - 1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            if core == "spectrum":  # start near R_pred ∝ I: a faint flat spectrum plus unit noise
                self.head.bias.fill_(-4.0)
                self.head.bias[grid] = 0.5413  # softplus = 1
            else:  # start at the Toeplitz average
                self.head.bias.zero_()
        # c: starts at 0 (no cancellation), a free scalar the loss tunes as β anneals
        self.cancel_raw = nn.Parameter(torch.tensor(0.0)) if samp_cancel else None
        u = -1.0 + 2.0 * torch.arange(grid, dtype=torch.float64) / grid  # periodic grid in sin θ
        ph = -math.pi * torch.arange(n, dtype=torch.float64)[None, :] * u[:, None]  # lag m: e^{-jπ m u}
        self.register_buffer("lag_cos", torch.cos(ph).float(), persistent=False)  # [G, N]
        self.register_buffer("lag_sin", torch.sin(ph).float(), persistent=False)

    @classmethod
    def from_config(cls, cfg) -> "CovEstimator":
        m = cfg.model
        return cls(cfg.data.n_elements, m.hidden, m.depth, m.dropout, grid=m.grid, samp_cancel=m.samp_cancel,
                   eig_features=m.eig_features, full_features=m.full_features, core=m.core)

    def cancel(self) -> torch.Tensor:
        """The learnt sample-covariance cancellation coefficient c (0 without ``samp_cancel``)."""
        if self.cancel_raw is None:
            return torch.zeros(())
        return self.cancel_raw

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: trace-normalised covariance [B, N, N] complex -> [B, in_width] real."""
        b = x.shape[0]
        lags = toeplitz_lags(x)[:, 1:]
        feats = [lags.real, lags.imag]
        if self.eig_features:
            feats.append(torch.linalg.eigvalsh(x))
        if self.full_features:
            feats += [x.real.reshape(b, -1), x.imag.reshape(b, -1)]
        return torch.cat(feats, -1)

    def raw(self, r_samp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape: r_samp [B, N, N] -> (head output [B, H], trace-normalised input [B, N, N])."""
        if r_samp.dim() != 3 or r_samp.shape[-1] != self.n or r_samp.shape[-2] != self.n:
            raise ValueError(f"expected [B, {self.n}, {self.n}] covariances, got {tuple(r_samp.shape)}")
        scale = torch.diagonal(r_samp, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-12)  # tr/N
        x = r_samp / scale[:, None, None]
        return self.head(self.body(self.features(x))), x

    def spectrum(self, r_samp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape: r_samp [B, N, N] -> (spectrum [B, G] >= 0, noise power [B] > 0, normalised input [B, N, N]),
        both powers in units of tr(R_samp)/N."""
        if self.core != "spectrum":
            raise ValueError("spectrum() needs core='spectrum'")
        out, x = self.raw(r_samp)
        spec = nn.functional.softplus(out[:, :self.grid]) * (8.0 / self.grid)
        noise = nn.functional.softplus(out[:, self.grid]) + 1e-4
        return spec, noise, x

    def forward(self, r_samp: torch.Tensor) -> torch.Tensor:
        """Shape: r_samp [B, N, N] complex -> R_pred [B, N, N] complex, Hermitian PSD, trace = tr(R_samp)."""
        if self.core == "spectrum":
            spec, noise, x = self.spectrum(r_samp)
            # .float(): under bf16 autocast the products are bf16, which torch.complex refuses
            re, im = (spec @ self.lag_cos).float(), (spec @ self.lag_sin).float()
            lags = torch.complex(re, im).to(r_samp.dtype)  # [B, N]
            lags = lags + torch.nn.functional.pad(noise[:, None], (0, self.n - 1)).to(r_samp.dtype)
        else:
            out, x = self.raw(r_samp)
            n = self.n
            # lag-0 correction is real, lags 1..N-1 complex: 2N-1 outputs
            out = out.float()  # bf16 under autocast; torch.complex takes half/float/double only
            delta = torch.complex(out[:, :n], torch.nn.functional.pad(out[:, n:], (1, 0))).to(r_samp.dtype)
            lags = toeplitz_lags(x) + delta
        t = toeplitz_from_lags(lags)
        if self.samp_cancel or self.core != "spectrum":  # the Toeplitz average need not be PSD
            t = psd_project(t - self.cancel().to(t.real.dtype) * x, eps=1e-4)
        tr = torch.diagonal(t, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-12)
        scale = torch.diagonal(r_samp, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-12)
        return t * (scale / tr)[:, None, None].to(t.dtype)
