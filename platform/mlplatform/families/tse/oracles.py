"""tse ceilings: oracle time-frequency masks that know the clean target (the model cannot).

Both masks are applied to the mixture's STFT (32 ms Hann window, 50% hop) and inverted with the
mixture's phase, so they bound what a mask-based extractor on that STFT could reach. On the debug preset's
original validation set (all speakers seen, 39 TP items) the ideal ratio mask gives 10.11 dB SI-SDR
improvement and the phase-sensitive mask 12.14 dB (``docs/families/tse.md``). The IRM is the power-ratio
form (Wang et al.'s IRM with beta = 1/2); the magnitude-ratio form |S| / (|S| + |N|) gives 10.44 dB there
and the squared power ratio 11.32 dB, so "the IRM" figure depends on which one is meant.
"""
from __future__ import annotations

import torch

WINDOW_S = 0.032


def _stft(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop_length=n_fft // 2, window=win, return_complex=True, center=True)


def _istft(z: torch.Tensor, n_fft: int, length: int) -> torch.Tensor:
    win = torch.hann_window(n_fft, device=z.device, dtype=z.real.dtype)
    return torch.istft(z, n_fft, hop_length=n_fft // 2, window=win, center=True, length=length)


def masks(y_spec: torch.Tensor, s_spec: torch.Tensor, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Shape: mixture and target STFTs [..., F, T'] (complex) -> {"irm", "psm"} real masks in [0, 1].

    irm: sqrt(|S|² / (|S|² + |N|²)) with N = Y - S (the ideal ratio mask, power form, beta 1/2);
    psm: |S| / |Y| · cos(∠S - ∠Y) clipped to [0, 1], the real mask in [0, 1] closest to S per bin
    (|m·Y - S|² is a parabola in m with its minimum at the unclipped PSM), hence never further from S
    than the IRM in the STFT domain (after the inverse STFT that is no longer guaranteed).
    """
    n_spec = y_spec - s_spec
    s_pow, n_pow = s_spec.abs().pow(2), n_spec.abs().pow(2)
    irm = (s_pow / (s_pow + n_pow + eps)).sqrt()
    psm = (s_spec.abs() / (y_spec.abs() + eps) * torch.cos(torch.angle(s_spec) - torch.angle(y_spec))).clamp(0, 1)
    return {"irm": irm, "psm": psm}


def oracle_masks(mixture: torch.Tensor, target: torch.Tensor, sample_rate: int,
                 eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Shape: mixture, target [B, T] -> {"irm": [B, T], "psm": [B, T]}: the mixture masked by :func:`masks`
    on its STFT and inverted with the mixture's phase."""
    if mixture.shape != target.shape or mixture.dim() != 2:
        raise ValueError(f"expected mixture and target [B, T] of one shape, got {tuple(mixture.shape)} "
                         f"and {tuple(target.shape)}")
    n_fft = max(16, int(round(WINDOW_S * sample_rate)))
    x, s = mixture.float(), target.float()
    y_spec = _stft(x, n_fft)
    length = x.shape[-1]
    return {k: _istft(y_spec * m, n_fft, length) for k, m in masks(y_spec, _stft(s, n_fft), eps).items()}
