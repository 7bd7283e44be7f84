"""Shared audio I/O (mlplatform.data.audio): soundfile round trips, resampling, and every reason a
corpus file is skipped."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from mlplatform.data.audio import check_audio, list_audio, load_mono, read_audio, rms_db, to_rate, write_wav

SR = 16000


def tone(seconds: float = 1.0, freq: float = 440.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_wav_round_trip_through_soundfile_is_16_bit_exact_and_clips(tmp_path):
    x = tone()
    write_wav(tmp_path / "sub" / "a.wav", x, SR)  # the parent folder is created
    y, sr = read_audio(tmp_path / "sub" / "a.wav")
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= 1.0 / 32767 + 1e-6  # PCM_16 quantisation only
    assert sf.info(str(tmp_path / "sub" / "a.wav")).subtype == "PCM_16"
    write_wav(tmp_path / "loud.wav", 3 * x, SR)
    assert np.abs(read_audio(tmp_path / "loud.wav")[0]).max() <= 1.0


def test_rms_db_of_full_scale_sine_and_of_silence():
    assert rms_db(tone(amp=1.0)) == pytest.approx(-3.01, abs=0.01)  # a sine's RMS is amp/√2
    assert rms_db(np.zeros(100)) < -100
    assert rms_db(np.zeros(0)) == -math.inf


def test_check_audio_accepts_a_good_file_and_reports_its_properties(tmp_path):
    write_wav(tmp_path / "ok.wav", tone(1.5), SR)
    info, x = check_audio(tmp_path / "ok.wav")
    assert info.ok and x is not None and len(x) == int(1.5 * SR)
    assert (info.sample_rate, info.channels) == (SR, 1) and info.duration == pytest.approx(1.5)
    assert info.rms_db == pytest.approx(-9.03, abs=0.05)


@pytest.mark.parametrize("case, reason", [
    ("corrupt", "unreadable"), ("stereo", "wrong channel count"), ("low_rate", "wrong sample rate"),
    ("short", "too short"), ("silent", "silent"), ("nan", "NaN or inf"),
])
def test_check_audio_turns_each_bad_file_into_a_one_line_reason(tmp_path, case, reason):
    p = tmp_path / f"{case}.wav"
    if case == "corrupt":
        p.write_bytes(b"RIFF\x00\x00not a wav at all")
    elif case == "stereo":
        sf.write(str(p), np.stack([tone(), tone()], 1), SR)
    elif case == "low_rate":
        sf.write(str(p), tone(sr=4000), 4000)
    elif case == "short":
        sf.write(str(p), tone(0.1), SR)
    elif case == "silent":
        sf.write(str(p), np.zeros(SR, np.float32), SR)
    else:
        x = tone()
        x[10] = np.nan
        sf.write(str(p), x, SR, subtype="FLOAT")  # only a float wav can hold a NaN
    info, x = check_audio(p)
    assert not info.ok and x is None
    assert reason in info.reason and "\n" not in info.reason


def test_check_audio_rejects_a_rate_other_than_the_required_one(tmp_path):
    write_wav(tmp_path / "a.wav", tone(), SR)
    info, _ = check_audio(tmp_path / "a.wav", sample_rate=8000)
    assert "wrong sample rate (16000 Hz, expected 8000 Hz)" in info.reason


def test_resampling_keeps_duration_and_pitch(tmp_path):
    x = tone(1.0, freq=440.0)
    y = to_rate(x, SR, 8000)
    assert y.dtype == np.float32 and len(y) == 8000
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 8000 / len(y)
    assert abs(peak_hz - 440.0) <= 1.0
    assert to_rate(x, SR, SR) is not None and np.array_equal(to_rate(x, SR, SR), x)  # same rate: untouched
    sf.write(str(tmp_path / "st.wav"), np.stack([x, 0 * x], 1), SR)
    m = load_mono(tmp_path / "st.wav", 8000)  # channels averaged, then resampled
    assert m.shape == (8000,) and np.abs(m).max() == pytest.approx(0.25, abs=0.01)


def test_list_audio_is_recursive_sorted_and_ignores_other_files(tmp_path):
    for rel in ("b/2.wav", "a/1.flac", "a/0.WAV", "a/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)] == ["a/0.WAV", "a/1.flac", "b/2.wav"]
