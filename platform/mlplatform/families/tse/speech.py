"""A LibriSpeech-style speech corpus made by the real ``espeak-ng`` binary, plus generated noise.

Layout written: ``<out>/<speaker>/<utt>.wav`` (16-bit, ``sample_rate`` Hz, mono). A "speaker" is a seeded
tuple: an espeak-ng accent and voice variant (the ~100 installed variants), a pitch, a pitch range, a
speaking rate, a word gap, and a vocal-tract warp applied to the signal (:func:`warp`), so speakers differ in
timbre, formants, pitch and tempo the way real ones do; the tuple is the folder name. Sentences are drawn
from a small grammar with a seed, so every utterance is a different sentence. Nothing is downloaded. A second
synthesizer for the held-out test voices is in ``synth.py``.

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
# where Debian's espeak-ng keeps its voice variants (one file per variant: "m3", "f2", "klatt", "Andy", ...)
VARIANT_DIRS = ("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v", "/usr/lib/aarch64-linux-gnu/espeak-ng-data/voices/!v",
                "/usr/share/espeak-ng-data/voices/!v")
# the variants of espeak-ng 1.51 when its data folder cannot be listed (kept to those that are clearly voiced)
FALLBACK_VARIANTS = ("m1", "f1", "m3", "f2", "m7", "f3", "klatt", "f4", "m2", "f5", "klatt3", "m4", "croak", "m6",
                     "klatt2", "m5", "whisper", "klatt4")
LANGS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
# ranges a speaker tuple is drawn from: espeak-ng pitch (0-99), pitch range (% of the voice's), words per
# minute, extra word gap (10 ms units), and the vocal-tract warp (spectral envelope scaled by this factor)
PITCH, RANGE, RATE, GAP = (20, 80), (40, 160), (130, 195), (0, 3)
WARPS = tuple(round(0.88 + 0.02 * i, 2) for i in range(14))  # 0.88 .. 1.14


_ADJ = ("quick", "silent", "golden", "heavy", "gentle", "bright", "narrow", "ancient", "purple", "curious",
        "distant", "frozen", "hollow", "early", "noisy", "careful", "humble", "modern", "rapid", "tired")
_NOUN = ("river", "teacher", "window", "garden", "engine", "letter", "mountain", "basket", "doctor", "signal",
         "harbor", "pencil", "village", "rocket", "blanket", "market", "winter", "camera", "island", "ladder")
_VERB = ("carried", "painted", "followed", "measured", "opened", "repaired", "watched", "borrowed", "counted",
         "noticed", "visited", "gathered", "pushed", "described", "covered", "answered")
_ADV = ("slowly", "today", "again", "at noon", "without a sound", "near the station", "after the rain",
        "before dinner", "with great care", "in the morning", "twice", "by the old bridge")


def espeak_variants() -> tuple[str, ...]:
    """The installed espeak-ng voice variants (names with a space are skipped), sorted; a fixed list if the
    data folder is elsewhere. The list is part of every speaker tuple drawn from it, so of the fingerprint."""
    for d in VARIANT_DIRS:
        if Path(d).is_dir():
            names = sorted(p.name for p in Path(d).iterdir() if p.is_file() and " " not in p.name)
            if names:
                return tuple(names)
    return FALLBACK_VARIANTS


@dataclass(frozen=True)
class Voice:
    """One generated speaker: an espeak-ng voice (accent + variant) at a pitch, pitch range, rate and word gap,
    then a vocal-tract warp of the signal (:func:`warp`), which moves the formants and keeps the words."""

    lang: str
    variant: str
    pitch: int
    rate: int
    range: int = 100
    gap: int = 0
    warp: float = 1.0

    @property
    def speaker_id(self) -> str:
        return (f"{self.lang}-{self.variant}-p{self.pitch}-s{self.rate}-r{self.range}-g{self.gap}"
                f"-w{self.warp:.2f}")

    def args(self) -> list[str]:
        return ["-m", "-v", f"{self.lang}+{self.variant}", "-p", str(self.pitch), "-s", str(self.rate),
                "-g", str(self.gap)]

    def synthesize(self, text: str, sample_rate: int) -> np.ndarray:
        return synthesize(text, self, sample_rate)

    def markup(self, text: str) -> str:
        """SSML for espeak-ng -m: the pitch range has no command-line flag."""
        return f'<speak><prosody range="{self.range}%">{text}</prosody></speak>'


def voices(n: int, seed: int = 0, variants: tuple[str, ...] | None = None) -> list[Voice]:
    """``n`` distinct speakers, each a seeded tuple (accent, variant, pitch, rate, range, gap, warp).

    The first ``len(variants)`` speakers use every variant once (in a seeded order), so a small corpus still
    spans timbres; the tuples are unique (a repeat is redrawn)."""
    vs = variants or espeak_variants()
    rng = np.random.default_rng([seed, 7919])
    order = list(rng.permutation(len(vs)))
    out: list[Voice] = []
    seen: set[Voice] = set()
    while len(out) < n:
        i = order[len(out)] if len(out) < len(order) else int(rng.integers(len(vs)))
        v = Voice(str(LANGS[int(rng.integers(len(LANGS)))]), vs[i], int(rng.integers(PITCH[0], PITCH[1] + 1)),
                  int(rng.integers(RATE[0], RATE[1] + 1)), int(rng.integers(RANGE[0], RANGE[1] + 1)),
                  int(rng.integers(GAP[0], GAP[1] + 1)), float(WARPS[int(rng.integers(len(WARPS)))]))
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def warp(x: np.ndarray, factor: float) -> np.ndarray:
    """Vocal-tract-length change: resample so that, played at the same rate, every frequency (formants and
    pitch) is scaled by ``factor`` and the speech is ``factor`` times faster; the words are unchanged.
    The espeak-ng pitch is drawn on its own, so pitch and formants vary independently across speakers.
    Shape: [T] -> [~T / factor]."""
    if abs(factor - 1.0) < 1e-9:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    up, down = 100, int(round(100 * factor))
    g = gcd(up, down)
    return resample_poly(x, up // g, down // g).astype(np.float32)


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
    """Run ``espeak-ng -m -v <lang>+<variant> -p <pitch> -s <rate> -g <gap> -w out.wav`` on the sentence in
    a ``<prosody range>`` tag, trim, warp (:func:`warp`) and resample. Shape: -> [T]."""
    exe = check_espeak()
    with tempfile.TemporaryDirectory(prefix="mlp-espeak-") as d:
        wav = Path(d) / "out.wav"
        res = subprocess.run([exe, *voice.args(), "-w", str(wav), voice.markup(text)], capture_output=True, text=True,
                             timeout=60)
        if res.returncode != 0 or not wav.exists():
            raise RuntimeError(f"espeak-ng failed for voice {voice.speaker_id}: {res.stderr.strip()[:200]}")
        x, sr = read_audio(wav)
    return to_rate(warp(trim_silence(x, sr), voice.warp), sr, sample_rate)


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


def make_speaker(voice, n_utts: int, out_dir: str, seed: int, sample_rate: int = 16000,
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
            x = voice.synthesize(sentence(rng, words), sample_rate)
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


def _make_speakers(jobs: list[tuple]) -> list[str]:
    """One Ray task: several speakers (a task per speaker costs more than a short speaker takes)."""
    return [p for job in jobs for p in make_speaker(*job)]


def generate_corpus(out_dir: str | Path, speakers: list, utts_per_speaker: int, seed: int = 0,
                    sample_rate: int = 16000, min_s: float = 1.0, max_s: float = 3.0,
                    log=print, engine: str = "espeak-ng", per_task: int = 8) -> list[str]:
    """The whole speech corpus of ``speakers`` (anything with ``speaker_id`` and ``synthesize``): Ray tasks of
    ``per_task`` speakers when Ray is up, else in-process."""
    out = str(out_dir)
    args = [(v, utts_per_speaker, out, seed * 10_007 + i, sample_rate, min_s, max_s) for i, v in enumerate(speakers)]
    chunks = [args[i:i + per_task] for i in range(0, len(args), per_task)]
    try:
        ray = ray_if_up()  # None: build here (Ray not started or not installed)
    except ImportError:  # pragma: no cover - ray is a dependency
        ray = None
    log(f"[data] {engine}: {len(speakers)} speakers x {utts_per_speaker} utterances -> {out} "
        f"({f'{len(chunks)} Ray tasks' if ray is not None else 'in-process'})")
    if ray is not None:
        task = ray.remote(num_cpus=1)(_make_speakers)
        lists = ray.get([task.remote(c) for c in chunks])
    else:
        lists = [_make_speakers(c) for c in chunks]
    return [p for lst in lists for p in lst]
