"""A LibriSpeech-style speech corpus made by the real ``espeak-ng`` binary, plus generated noise.

Layout written: ``<out>/<speaker>/<utt>.wav`` (16-bit, ``sample_rate`` Hz, mono). A "speaker" is one
espeak-ng voice variant at one pitch and one speaking rate (``-v en-us+f3 -p 62 -s 150``), so speakers
differ in timbre, pitch and tempo the way real ones do. Sentences are drawn from a small grammar with a
seed, so every utterance is a different sentence. Nothing is downloaded.

Noise (``make_noise``) is synthesised: white, pink, brown, mains hum with harmonics, band-passed and
amplitude-modulated ("babble-like") noise.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplatform.data.audio import read_audio, to_rate, write_wav
from mlplatform.data.cache import ray_if_up

ESPEAK = "espeak-ng"
# voice variants that sound clearly different (espeak-ng-data/voices/!v); crossed with pitch and rate
VARIANTS = ("m1", "f1", "m3", "f2", "m7", "f3", "klatt", "f4", "m2", "f5", "klatt3", "m4", "croak", "m6",
            "klatt2", "m5", "whisper", "klatt4")
LANGS = ("en-us", "en-gb", "en-gb-scotland", "en-029")
PITCHES = (30, 62, 45, 78, 54, 38, 70)
RATES = (150, 175, 135, 190, 160)

_ADJ = ("quick", "silent", "golden", "heavy", "gentle", "bright", "narrow", "ancient", "purple", "curious",
        "distant", "frozen", "hollow", "early", "noisy", "careful", "humble", "modern", "rapid", "tired")
_NOUN = ("river", "teacher", "window", "garden", "engine", "letter", "mountain", "basket", "doctor", "signal",
         "harbor", "pencil", "village", "rocket", "blanket", "market", "winter", "camera", "island", "ladder")
_VERB = ("carried", "painted", "followed", "measured", "opened", "repaired", "watched", "borrowed", "counted",
         "noticed", "visited", "gathered", "pushed", "described", "covered", "answered")
_ADV = ("slowly", "today", "again", "at noon", "without a sound", "near the station", "after the rain",
        "before dinner", "with great care", "in the morning", "twice", "by the old bridge")


@dataclass(frozen=True)
class Voice:
    lang: str
    variant: str
    pitch: int
    rate: int

    @property
    def speaker_id(self) -> str:
        return f"{self.lang}-{self.variant}-p{self.pitch}-s{self.rate}"

    def args(self) -> list[str]:
        return ["-v", f"{self.lang}+{self.variant}", "-p", str(self.pitch), "-s", str(self.rate)]


def voices(n: int) -> list[Voice]:
    """``n`` distinct speakers: every variant first, then new pitch/rate/accent combinations."""
    out: list[Voice] = []
    i = 0
    while len(out) < n:
        v = Voice(LANGS[(i // len(VARIANTS)) % len(LANGS)], VARIANTS[i % len(VARIANTS)],
                  PITCHES[i % len(PITCHES)], RATES[(i // 2) % len(RATES)])
        if v not in out:
            out.append(v)
        i += 1
    return out


def sentence(rng: np.random.Generator, n_words: int) -> str:
    """A grammatical sentence of roughly ``n_words`` words."""
    parts = [f"the {rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_VERB)} the {rng.choice(_NOUN)}"]
    while sum(len(p.split()) for p in parts) < n_words:
        parts.append(str(rng.choice(_ADV)) if rng.random() < 0.5 else f"and the {rng.choice(_ADJ)} {rng.choice(_NOUN)}")
    s = " ".join(parts)
    return s[0].upper() + s[1:] + "."


def check_espeak() -> str:
    """The path of espeak-ng, or a one-line error telling how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise RuntimeError("espeak-ng is not installed: `sudo apt-get install -y espeak-ng` (make demo/test do it)")
    return path


def synthesize(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """Run ``espeak-ng -v <lang>+<variant> -p <pitch> -s <rate> -w out.wav`` and resample. Shape: -> [T]."""
    exe = check_espeak()
    with tempfile.TemporaryDirectory(prefix="mlp-espeak-") as d:
        wav = Path(d) / "out.wav"
        res = subprocess.run([exe, *voice.args(), "-w", str(wav), text], capture_output=True, text=True, timeout=60)
        if res.returncode != 0 or not wav.exists():
            raise RuntimeError(f"espeak-ng failed for voice {voice.speaker_id}: {res.stderr.strip()[:200]}")
        x, sr = read_audio(wav)
    return to_rate(trim_silence(x, sr), sr, sample_rate)


def trim_silence(x: np.ndarray, sr: int, thresh_db: float = -45.0, keep_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing silence (espeak pads its output), keeping ``keep_s`` seconds of margin."""
    if x.size == 0:
        return x
    frame = max(1, sr // 100)
    n = len(x) // frame
    if n == 0:
        return x
    e = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(e > e.max() + thresh_db)[0]
    if loud.size == 0:
        return x
    keep = int(keep_s * sr)
    return x[max(0, loud[0] * frame - keep): min(len(x), (loud[-1] + 1) * frame + keep)]


def make_speaker(voice: Voice, n_utts: int, out_dir: str, seed: int, sample_rate: int = 16000,
                 min_s: float = 1.0, max_s: float = 3.0) -> list[str]:
    """Write ``n_utts`` utterances of one speaker to ``out_dir/<speaker>/``; return their paths.

    Utterances are between ``min_s`` and ``max_s`` seconds: sentences grow until long enough and are cut
    at ``max_s``. Runs as one Ray task per speaker in ``generate_corpus``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(out_dir) / voice.speaker_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for u in range(n_utts):
        words = int(rng.integers(4, 9))
        for _ in range(6):
            x = synthesize(sentence(rng, words), voice, sample_rate)
            if len(x) >= min_s * sample_rate:
                break
            words += 3
        x = x[: int(max_s * sample_rate)]
        x = x * (0.5 / max(1e-6, float(np.abs(x).max())))  # peak -6 dBFS: levels are set at mixing time
        p = folder / f"{voice.speaker_id}-{u:03d}.wav"
        write_wav(p, x, sample_rate)
        paths.append(str(p))
    return paths


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS. Shape: -> [n]."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    y = np.fft.irfft(spec / f ** (exponent / 2.0), n)
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12)).astype(np.float32)


def make_noise(out_dir: str, n_files: int, seconds: float, sample_rate: int, seed: int) -> list[str]:
    """Write ``n_files`` noise recordings of ``seconds`` each to ``out_dir``; return their paths."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    kinds = ("white", "pink", "brown", "hum", "band", "babble")
    paths = []
    for i in range(n_files):
        kind = kinds[i % len(kinds)]
        if kind in ("white", "pink", "brown"):
            y = colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
        elif kind == "hum":
            f0 = float(rng.choice([50.0, 60.0]))
            y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
            y = y + 0.3 * colored_noise(rng, n, 1.0)
        elif kind == "band":
            spec = np.fft.rfft(rng.standard_normal(n))
            f = np.fft.rfftfreq(n, 1 / sample_rate)
            lo = rng.uniform(200, 1500)
            spec[(f < lo) | (f > lo * rng.uniform(1.5, 3.0))] = 0
            y = np.fft.irfft(spec, n)
        else:  # speech-shaped noise with a syllable-rate (~4 Hz) envelope
            env = 1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(3, 6) * t) * np.sin(2 * np.pi * 0.5 * t + 1)
            y = colored_noise(rng, n, 1.5) * env
        y = np.asarray(y, dtype=np.float32)
        y = y * (0.3 / (np.abs(y).max() + 1e-9))
        p = Path(out_dir) / f"noise-{i:03d}-{kind}.wav"
        write_wav(p, y, sample_rate)
        paths.append(str(p))
    return paths


def generate_corpus(out_dir: str | Path, n_speakers: int, utts_per_speaker: int, seed: int = 0,
                    sample_rate: int = 16000, min_s: float = 1.0, max_s: float = 3.0,
                    log=print) -> list[str]:
    """The whole speech corpus: one Ray task per speaker when Ray is up, else in-process."""
    check_espeak()
    out = str(out_dir)
    vs = voices(n_speakers)
    args = [(v, utts_per_speaker, out, seed * 10_007 + i, sample_rate, min_s, max_s) for i, v in enumerate(vs)]
    try:
        ray = ray_if_up()  # None: build here (Ray not started or not installed)
        use_ray = ray is not None
    except ImportError:  # pragma: no cover - ray is a dependency
        use_ray = False
    log(f"[data] espeak-ng: {n_speakers} speakers x {utts_per_speaker} utterances -> {out} "
        f"({'Ray tasks' if use_ray else 'in-process'})")
    if use_ray:
        task = ray.remote(num_cpus=1)(make_speaker)
        lists = ray.get([task.remote(*a) for a in args])
    else:
        lists = [make_speaker(*a) for a in args]
    return [p for lst in lists for p in lst]
