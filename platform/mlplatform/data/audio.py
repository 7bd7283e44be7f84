"""Audio I/O and checks: soundfile for reading/writing, torchaudio (through the compat shim) to resample.

``check_audio`` turns every way a corpus file can be unusable into a one-line reason string, so a
corpus job lists and skips bad files instead of crashing on them (DESIGN.md, "Bad input").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mlplatform.data.torchaudio_compat import resample

AUDIO_EXTENSIONS = (".wav", ".flac")


@dataclass
class AudioInfo:
    """What ``check_audio`` learned about a file; ``reason`` is None when the file is usable."""

    path: str
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    rms_db: float = -math.inf
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def rms_db(x: np.ndarray, eps: float = 1e-12) -> float:
    """RMS level in dBFS of a float signal in [-1, 1]. Shape: [T] or [T, C] -> scalar."""
    x = np.asarray(x, dtype=np.float64)
    return 10.0 * math.log10(float(np.mean(x * x)) + eps) if x.size else -math.inf


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 samples and sample rate. Shape: -> [T] (mono) or [T, C]. Raises on unreadable files."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return x, int(sr)


def write_wav(path: str | Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav, clipped to [-1, 1]. Shape: [T]."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")


def check_audio(path: str | Path, *, min_seconds: float = 0.5, channels: int = 1,
                silence_db: float = -60.0, min_sample_rate: int = 8000,
                sample_rate: int | None = None) -> tuple[AudioInfo, np.ndarray | None]:
    """Read and check one file. Returns (info, samples [T] or None when the file is unusable).

    Reasons (first that applies): unreadable, wrong channel count, wrong sample rate (``sample_rate``
    given and different, or below ``min_sample_rate``), too short, silent (RMS below ``silence_db``).
    """
    info = AudioInfo(str(path))
    try:
        x, sr = read_audio(path)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a reason, never a crash
        info.reason = f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no detail'})"
        return info, None
    info.sample_rate = sr
    info.channels = 1 if x.ndim == 1 else int(x.shape[1])
    info.duration = (x.shape[0] / sr) if sr > 0 else 0.0
    if x.size:
        info.rms_db = rms_db(x)
    if info.channels != channels:
        info.reason = f"wrong channel count ({info.channels} channels, expected {channels})"
    elif sample_rate is not None and sr != sample_rate:
        info.reason = f"wrong sample rate ({sr} Hz, expected {sample_rate} Hz)"
    elif sr < min_sample_rate:
        info.reason = f"wrong sample rate ({sr} Hz is below the {min_sample_rate} Hz minimum)"
    elif info.duration < min_seconds:
        info.reason = f"too short ({info.duration:.3f} s < {min_seconds} s)"
    elif not np.all(np.isfinite(x)):
        info.reason = "contains NaN or inf samples"
    elif info.rms_db < silence_db:
        info.reason = f"silent (RMS {info.rms_db:.1f} dBFS < {silence_db} dBFS)"
    return info, (x if info.reason is None else None)


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a file, average channels, resample to ``sample_rate``. Shape: -> [T'] float32."""
    x, sr = read_audio(path)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return to_rate(x, sr, sample_rate)


def to_rate(x: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """Band-limited resampling through ``torchaudio_compat.resample``. Shape: [T] -> [T']."""
    if sr == sample_rate:
        return np.asarray(x, dtype=np.float32)
    y = resample(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), sr, sample_rate)
    return y.numpy().astype(np.float32)


def list_audio(root: str | Path) -> list[Path]:
    """Every .wav/.flac file under ``root`` (recursive), sorted for a stable order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
