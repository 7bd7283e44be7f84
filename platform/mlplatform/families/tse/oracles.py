"""tse ceilings: oracle time-frequency masks that know the clean target (the model cannot).

Both masks are applied to the mixture's STFT (32 ms Hann window, 50% hop) and inverted with the
mixture's phase, so they bound what a mask-based extractor on that STFT could reach. On the debug data
the ideal ratio mask gives about 10 dB SI-SDR improvement and the phase-sensitive mask about 12 dB
(``docs/families/tse.md``).
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


def oracle_masks(mixture: torch.Tensor, target: torch.Tensor, sample_rate: int,
                 eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Shape: mixture, target [B, T] -> {"irm": [B, T], "psm": [B, T]} masked mixtures.

    irm: |S| / (|S| + |N|) with N = mixture - target (the ideal ratio mask in magnitude form);
    psm: |S| / |Y| · cos(∠S - ∠Y), clipped to [0, 1] (the phase-sensitive mask).
    """
    if mixture.shape != target.shape or mixture.dim() != 2:
        raise ValueError(f"expected mixture and target [B, T] of one shape, got {tuple(mixture.shape)} "
                         f"and {tuple(target.shape)}")
    n_fft = max(16, int(round(WINDOW_S * sample_rate)))
    x, s = mixture.float(), target.float()
    y_spec, s_spec = _stft(x, n_fft), _stft(s, n_fft)
    n_spec = y_spec - s_spec
    irm = s_spec.abs() / (s_spec.abs() + n_spec.abs() + eps)
    psm = (s_spec.abs() / (y_spec.abs() + eps) * torch.cos(torch.angle(s_spec) - torch.angle(y_spec))).clamp(0, 1)
    length = x.shape[-1]
    return {"irm": _istft(y_spec * irm, n_fft, length), "psm": _istft(y_spec * psm, n_fft, length)}
