"""codec losses and metrics: waveform L1, multi-resolution STFT, SI-SNR, mel distance.

Every function checks its shapes and says how it reduces. Waveforms are ``[B, 1, N]`` or ``[B, N]``.
"""
from __future__ import annotations

import torch

from mlplatform.data.torchaudio_compat import import_torchaudio

_EPS = 1e-8
_MELS: dict[tuple[int, str], torch.nn.Module] = {}


def _flat(x: torch.Tensor, name: str) -> torch.Tensor:
    """[B, 1, N] or [B, N] -> [B, N] in float32: under bf16 autocast the decoder's output is bf16, which
    the FFTs here refuse (cuFFT and MKL alike), and the losses are summed in float32 anyway."""
    if x.dim() == 3 and x.shape[1] == 1:
        return x[:, 0].float()
    if x.dim() != 2:
        raise ValueError(f"{name}: expected a waveform [B, 1, N] or [B, N], got {tuple(x.shape)}")
    return x.float()


def _pair(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    e, r = _flat(est, "est"), _flat(ref, "ref")
    if e.shape != r.shape:
        raise ValueError(f"est {tuple(e.shape)} and ref {tuple(r.shape)} differ in shape")
    return e, r


def l1_wave(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample error (>= 0, 0 iff equal). Shape: [B, 1, N] x2 -> scalar (mean over B and N)."""
    e, r = _pair(est, ref)
    return (e - r).abs().mean()


def multi_res_stft(est: torch.Tensor, ref: torch.Tensor, windows: tuple[int, ...]) -> torch.Tensor:
    """Mean over resolutions of L1(|STFT|) + L1(log |STFT|) (>= 0, 0 iff equal magnitudes).

    Hann windows of each length, hop = window/4. Shape: [B, 1, N] x2 -> scalar (mean over B, bins, frames).
    """
    e, r = _pair(est, ref)
    total = e.new_zeros(())
    for w in windows:
        win = torch.hann_window(w, device=e.device, dtype=e.dtype)
        se = torch.stft(e, w, w // 4, window=win, return_complex=True).abs()
        sr = torch.stft(r, w, w // 4, window=win, return_complex=True).abs()
        total = total + (se - sr).abs().mean() + (se.clamp_min(1e-5).log() - sr.clamp_min(1e-5).log()).abs().mean()
    return total / len(windows)


def si_snr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SNR in dB, per item (higher is better; +inf-like for est == ref, ~-inf for silence).

    Means removed, est projected on ref. Shape: [B, 1, N] x2 -> [B].
    """
    e, r = _pair(est, ref)
    e, r = e - e.mean(-1, keepdim=True), r - r.mean(-1, keepdim=True)
    scale = (e * r).sum(-1, keepdim=True) / (r.pow(2).sum(-1, keepdim=True) + _EPS)
    target = scale * r
    noise = e - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + _EPS) + _EPS)


SI_SNR_LIMIT_DB = 80.0  # |si_snr_loss| <= this by construction (the epsilon below)


def si_snr_loss(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Minus the SI-SNR in dB, computed from the squared correlation ρ² so that it is bounded.

    SI-SNR = 10·log10(ρ² / (1 − ρ²)) for mean-removed signals; with ε = 1e-8 on both sides the value lies in
    [−80, 80] dB whatever the signals' energy. Scale-free: the L1 term anchors the output's scale.
    Shape: [B, 1, N] x2 -> scalar (mean over B).
    """
    e, r = _pair(est, ref)
    e, r = e - e.mean(-1, keepdim=True), r - r.mean(-1, keepdim=True)
    rho2 = (e * r).sum(-1).pow(2) / (e.pow(2).sum(-1) * r.pow(2).sum(-1) + 1e-20)
    rho2 = rho2.clamp(0.0, 1.0)
    return -(10 * torch.log10((rho2 + 1e-8) / (1 - rho2 + 1e-8))).mean()


def _mel(sample_rate: int, device: torch.device) -> torch.nn.Module:
    key = (sample_rate, str(device))
    if key not in _MELS:
        ta = import_torchaudio()
        _MELS[key] = ta.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=80,
                                                  power=1.0).to(device)
    return _MELS[key]


def mel_distance(est: torch.Tensor, ref: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean |log10 mel(est) - log10 mel(ref)| (80 mels, 1024/256), per item (>= 0). Shape: [B, 1, N] x2 -> [B]."""
    e, r = _pair(est, ref)
    mel = _mel(sample_rate, e.device)
    me, mr = mel(e).clamp_min(1e-5).log10(), mel(r).clamp_min(1e-5).log10()
    return (me - mr).abs().mean((-2, -1))


def lowpass(wav: torch.Tensor, sample_rate: int, cutoff_hz: float) -> torch.Tensor:
    """Brick-wall low-pass in the frequency domain (a band-limited copy). Shape: [B, 1, N] -> [B, 1, N]."""
    x = _flat(wav, "wav")
    spec = torch.fft.rfft(x, dim=-1)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate).to(x.device)
    spec = spec * (freqs <= cutoff_hz)
    return torch.fft.irfft(spec, n=x.shape[-1], dim=-1).reshape(wav.shape)
