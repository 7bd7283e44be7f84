"""torchaudio behind the compat shim (mlplatform.data.torchaudio_compat): it imports on this machine
whether or not the C++ extension loads, and its resampler is band-limited and exact at equal rates."""
from __future__ import annotations

import math

import torch

from mlplatform.data import torchaudio_compat as tc


def test_torchaudio_and_encodec_import_through_the_shim():
    ta = tc.import_torchaudio()
    assert hasattr(ta, "functional") and tc.import_torchaudio() is ta  # the second call reuses the module
    enc = tc.import_encodec()
    assert hasattr(enc, "EncodecModel")


def test_resample_equal_rates_returns_the_input_itself():
    x = torch.randn(2, 100)
    assert tc.resample(x, 16000, 16000) is x


def test_resample_changes_length_keeps_a_tone_and_removes_content_above_the_new_nyquist():
    sr, n = 16000, 16000
    t = torch.arange(n) / sr
    low, high = torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 6000 * t)
    y_low, y_high = tc.resample(low, sr, 8000), tc.resample(high, sr, 8000)
    assert y_low.shape == (8000,) and y_high.shape == (8000,)
    mid = slice(500, -500)  # away from the filter's edge effects
    assert y_low[mid].pow(2).mean().sqrt() > 0.65  # 440 Hz passes (RMS of a unit sine is 0.707)
    assert y_high[mid].pow(2).mean().sqrt() < 0.05  # 6 kHz is above the 4 kHz Nyquist: filtered out
    assert tc.resample(torch.randn(3, 2, 1600), sr, 24000).shape == (3, 2, 2400)  # leading dims kept
