"""A second, different synthesizer for the held-out ``unseen_synth`` voices: Debian's ``flite`` (its built-in
voices) and Festival's ``text2wave`` with the recorded ``festvox-*`` voices (diphone and HTS).

None of these voices is ever a training speaker, an enrollment, an interferer or part of a sweep's selection
set: they measure whether the model learned the task or only espeak-ng's sound. A speaker is a voice at a
vocal-tract warp (``speech.warp``), named ``<engine>-<voice>-w<warp>``, so a few recorded voices give
several distinct speakers. Every binary and voice is checked before anything is made, with a one-line error.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplatform.config import ConfigError
from mlplatform.data.audio import read_audio, to_rate
from mlplatform.families.tse.speech import trim_silence, warp

ENGINES = {"flite": "flite", "festival": "text2wave"}
APT = {"flite": "flite", "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"}
FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices",)
# flite's "awb_time" speaks only clock times: it cannot say a sentence
FLITE_SKIP = ("awb_time",)


@dataclass(frozen=True)
class SynthVoice:
    engine: str  # "flite" or "festival"
    voice: str  # flite -voice NAME, or festival's voice_NAME
    warp: float = 1.0

    @property
    def speaker_id(self) -> str:
        return f"{self.engine}-{self.voice}-w{self.warp:.2f}"

    def synthesize(self, text: str, sample_rate: int) -> np.ndarray:
        """The sentence spoken by this voice, trimmed, warped and resampled. Shape: -> [T]."""
        exe = shutil.which(ENGINES[self.engine])
        if exe is None:
            raise RuntimeError(_missing(self.engine))
        with tempfile.TemporaryDirectory(prefix="mlp-synth-") as d:
            wav = Path(d) / "out.wav"
            if self.engine == "flite":
                cmd = [exe, "-voice", self.voice, "-t", text, "-o", str(wav)]
            else:  # text2wave reads a file; an unknown voice prints a SIOD error and still exits 0
                (Path(d) / "in.txt").write_text(text)
                cmd = [exe, "-eval", f"(voice_{self.voice})", str(Path(d) / "in.txt"), "-o", str(wav)]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if res.returncode != 0 or not wav.exists() or wav.stat().st_size < 100:
                raise RuntimeError(f"{self.engine} made no audio for voice {self.voice!r}: "
                                   f"{(res.stderr or res.stdout).strip()[:200]}")
            x, sr = read_audio(wav)
        return to_rate(warp(trim_silence(x, sr), self.warp), sr, sample_rate)


def _missing(engine: str) -> str:
    return (f"{ENGINES[engine]} is not installed: `sudo apt-get install -y {APT[engine]}` (make demo/test do it), "
            f"or set data.synth_voices=''")


def available(engine: str) -> list[str]:
    """The voices ``engine`` can speak with here. Raises a one-line RuntimeError if it is not installed."""
    exe = shutil.which(ENGINES[engine])
    if exe is None:
        raise RuntimeError(_missing(engine))
    if engine == "flite":
        out = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=30).stdout
        names = out.split(":", 1)[-1].split()
        return [n for n in names if n not in FLITE_SKIP]
    found = []
    for root in FESTIVAL_VOICE_DIRS:
        if Path(root).is_dir():
            found += [p.name for lang in Path(root).iterdir() if lang.is_dir() for p in lang.iterdir() if p.is_dir()]
    return sorted(found)


def parse_voices(spec: str) -> list[tuple[str, str]]:
    """``"flite:slt,festival:kal_diphone"`` -> [("flite", "slt"), ("festival", "kal_diphone")]; a malformed
    entry or an unknown engine is a ConfigError naming ``data.synth_voices``."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        engine, _, voice = item.partition(":")
        if engine not in ENGINES or not voice:
            raise ConfigError(f"data.synth_voices: {item!r} is not <engine>:<voice> with engine one of "
                              f"{sorted(ENGINES)} (e.g. flite:slt, festival:kal_diphone)")
        out.append((engine, voice))
    return out


def parse_warps(spec: str) -> list[float]:
    try:
        ws = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"data.synth_warps: {spec!r} is not a comma-separated list of numbers") from None
    if not ws or any(not 0.7 <= w <= 1.4 for w in ws):
        raise ConfigError(f"data.synth_warps: {spec!r} needs at least one warp, each in [0.7, 1.4]")
    return ws


def synth_voices(voice_spec: str, warp_spec: str) -> list[SynthVoice]:
    """Every (voice, warp) speaker, after checking that each engine is installed and has each voice."""
    pairs = parse_voices(voice_spec)
    warps = parse_warps(warp_spec)
    have: dict[str, list[str]] = {}
    for engine, voice in pairs:
        if engine not in have:
            try:
                have[engine] = available(engine)
            except RuntimeError as e:
                raise ConfigError(f"data.synth_voices: {e}") from None
        if voice not in have[engine]:
            raise ConfigError(f"data.synth_voices: {engine} has no voice {voice!r} here (it has: "
                              f"{', '.join(have[engine]) or 'none'})")
    return [SynthVoice(e, v, w) for e, v in pairs for w in warps]
