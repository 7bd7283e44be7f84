"""Music corpus for the ``creative`` family: generated MIDI rendered by the real ``fluidsynth``.

Each clip is a small song: a tempo in [70, 150] BPM, a key (any of 12 tonics, major or minor), a GM
melody instrument, a bass/chord instrument and one of several drum patterns (GM channel 10). The MIDI
file is written here by a tiny standard-MIDI-file writer (stdlib only) and rendered with
``fluidsynth -ni -F out.wav -r <sr> <soundfont> in.mid``. Generation is deterministic in its ``seed`` argument.

Also: wav-pair discovery for user corpora (``input/*.wav`` + ``target/*.wav`` matched by name, or a
CSV manifest) and the audio checks (corrupt, silent, non-finite, too short) that skip bad files with
a one-line report instead of failing the whole preparation.
"""
from __future__ import annotations

import csv
import random
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# GM programs (0-based): pianos, organ, guitars, strings, brass, reeds, pipes, synth leads
MELODY_PROGRAMS = (0, 4, 11, 16, 24, 25, 40, 48, 56, 61, 65, 71, 73, 80, 81)
BASS_PROGRAMS = (32, 33, 34, 38, 0, 48, 89)
# drum patterns over 16 sixteenths: (GM note, steps)
DRUMS = {
    "rock": {36: (0, 8), 38: (4, 12), 42: (0, 2, 4, 6, 8, 10, 12, 14)},
    "four_on_floor": {36: (0, 4, 8, 12), 39: (4, 12), 46: (2, 6, 10, 14)},
    "halftime": {36: (0, 10), 38: (8,), 42: tuple(range(0, 16, 2))},
    "shuffle": {36: (0, 7, 10), 38: (4, 12), 42: (0, 3, 4, 7, 8, 11, 12, 15)},
    "breakbeat": {36: (0, 6, 10), 38: (4, 12, 15), 42: tuple(range(16)), 49: (0,)},
    "none": {},
}


class BadAudio(ValueError):
    """A wav that cannot be used (unreadable, silent, non-finite, too short). The message is one line."""


# ----------------------------------------------------------------------------------------------
# a tiny standard MIDI file writer (format 0)
# ----------------------------------------------------------------------------------------------

def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: str | Path, events: list[tuple[int, bytes]], bpm: float, tpb: int = 480) -> None:
    """Write ``events`` = [(tick, raw message bytes)] as a format-0 MIDI file at ``bpm``."""
    us = int(round(60_000_000 / bpm))
    track = bytearray(b"\x00\xff\x51\x03" + us.to_bytes(3, "big"))
    last = 0
    for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):  # note-offs first
        track += _vlq(tick - last) + msg
        last = tick
    track += b"\x00\xff\x2f\x00"
    Path(path).write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpb) + b"MTrk" + struct.pack(">I", len(track)) + track)


@dataclass(frozen=True)
class Song:
    bpm: float
    tonic: int  # MIDI note of the key's root (48..59)
    minor: bool
    melody_program: int
    bass_program: int
    drums: str


def random_song(rng: random.Random) -> Song:
    return Song(bpm=rng.uniform(70, 150), tonic=48 + rng.randrange(12), minor=rng.random() < 0.5,
                melody_program=rng.choice(MELODY_PROGRAMS), bass_program=rng.choice(BASS_PROGRAMS),
                drums=rng.choice(sorted(DRUMS)))


def song_events(song: Song, seconds: float, rng: random.Random, tpb: int = 480) -> list[tuple[int, bytes]]:
    """Melody (ch 0), bass + chords (ch 1) and drums (ch 9) for at least ``seconds`` of music."""
    scale = MINOR if song.minor else MAJOR
    bars = int(seconds * song.bpm / 60 / 4) + 2
    six = tpb // 4
    ev: list[tuple[int, bytes]] = [(0, bytes([0xC0, song.melody_program])), (0, bytes([0xC1, song.bass_program]))]

    def note(ch: int, key: int, t0: int, dur: int, vel: int) -> None:
        key = max(0, min(127, key))
        ev.append((t0, bytes([0x90 | ch, key, vel])))
        ev.append((t0 + max(1, dur), bytes([0x80 | ch, key, 0])))

    progression = rng.choice([(0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4)])
    degree = rng.randrange(7)
    for bar in range(bars):
        t_bar = bar * 4 * tpb
        root = progression[bar % 4]
        for k in (0, 2, 4):  # triad on the chord's degree, held for the bar
            d = root + k
            note(1, song.tonic + 12 * (d // 7) + scale[d % 7], t_bar, 4 * tpb - 10, 60)
        note(1, song.tonic - 12 + scale[root], t_bar, 2 * tpb, 90)  # bass
        note(1, song.tonic - 12 + scale[(root + 4) % 7], t_bar + 2 * tpb, 2 * tpb, 85)
        t = 0
        while t < 16:  # melody: a random walk on the scale in eighths/quarters/dotted quarters
            dur = rng.choice((2, 2, 4, 4, 6))
            degree = max(-3, min(10, degree + rng.choice((-2, -1, -1, 0, 1, 1, 2))))
            if rng.random() < 0.85:
                note(0, song.tonic + 12 + 12 * (degree // 7) + scale[degree % 7], t_bar + t * six,
                     min(dur, 16 - t) * six - 10, rng.randrange(70, 110))
            t += dur
        for drum, steps in DRUMS[song.drums].items():
            for s in steps:
                note(9, drum, t_bar + s * six, six // 2, 100 if s % 4 == 0 else 75)
    return ev


def find_soundfont() -> str:
    for sf in SOUNDFONTS:
        if Path(sf).is_file():
            return sf
    raise FileNotFoundError("no General MIDI soundfont found (apt-get install fluid-soundfont-gm; `make test` does it)")


def render(midi: str | Path, out_wav: str | Path, sample_rate: int, soundfont: str | None = None) -> None:
    """Render a MIDI file with the real fluidsynth binary (no audio driver, file output)."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise FileNotFoundError("fluidsynth not found (apt-get install fluidsynth; `make test` does it)")
    cmd = [exe, "-ni", "-q", "-g", "0.7", "-F", str(out_wav), "-r", str(int(sample_rate)),
           soundfont or find_soundfont(), str(midi)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0 or not Path(out_wav).exists():
        raise RuntimeError(f"fluidsynth failed ({res.returncode}): {(res.stderr or res.stdout).strip()[:200]}")


def render_clip(out_wav: str | Path, seconds: float, sample_rate: int, seed: int) -> dict:
    """Generate one song, render it, and write exactly ``seconds`` of mono audio to ``out_wav``."""
    import soundfile as sf

    rng = random.Random(seed)
    song = random_song(rng)
    with tempfile.TemporaryDirectory(prefix="mlp-midi-") as tmp:
        mid, raw = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        write_midi(mid, song_events(song, seconds + 1.0, rng), song.bpm)
        render(mid, raw, sample_rate)
        audio, sr = sf.read(str(raw), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    mono = audio.mean(axis=1)
    n = int(round(seconds * sample_rate))
    mono = np.pad(mono, (0, max(0, n - len(mono))))[:n]
    peak = float(np.abs(mono).max())
    if peak > 0:
        mono = mono * (0.9 / peak)
    sf.write(str(out_wav), mono, sample_rate, subtype="PCM_16")
    return {"bpm": round(song.bpm, 2), "tonic": song.tonic, "minor": song.minor,
            "melody_program": song.melody_program, "bass_program": song.bass_program, "drums": song.drums}


# ----------------------------------------------------------------------------------------------
# user pairs and audio checks
# ----------------------------------------------------------------------------------------------

AUDIO_EXT = (".wav", ".flac", ".ogg")


def scan_pairs(path: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pairs from a folder (``input/`` + ``target/`` matched by file stem) or a CSV manifest.

    A manifest is a ``.csv`` file (or ``pairs.csv`` inside the folder) with columns ``input,target``
    (paths relative to the manifest). Returns (pairs [(name, input, target)], problems [one line each]).
    """
    p = Path(path)
    manifest = p if p.is_file() else (p / "pairs.csv" if (p / "pairs.csv").is_file() else None)
    problems: list[str] = []
    pairs: list[tuple[str, Path, Path]] = []
    if manifest is not None:
        with open(manifest, newline="") as f:
            rows = list(csv.reader(f))
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["input", "target"]:
            rows = rows[1:]
        for i, row in enumerate(rows):
            if len(row) < 2:
                problems.append(f"{manifest}:{i + 2}: expected 'input,target', got {row!r}; skipped")
                continue
            a, b = (manifest.parent / row[0].strip()), (manifest.parent / row[1].strip())
            pairs.append((f"{i:05d}_{a.stem}", a, b))
        return pairs, problems
    ins, tgs = p / "input", p / "target"
    if not ins.is_dir() or not tgs.is_dir():
        raise FileNotFoundError(f"{p}: expected input/ and target/ folders (wavs matched by name) or a pairs.csv")
    a = {f.stem: f for f in sorted(ins.iterdir()) if f.suffix.lower() in AUDIO_EXT}
    b = {f.stem: f for f in sorted(tgs.iterdir()) if f.suffix.lower() in AUDIO_EXT}
    for name in sorted(set(a) ^ set(b)):
        side = "target" if name in a else "input"
        problems.append(f"{(a.get(name) or b.get(name))}: no matching file in {side}/; skipped")
    pairs = [(n, a[n], b[n]) for n in sorted(set(a) & set(b))]
    return pairs, problems


def load_clip(path: str | Path, sample_rate: int, n_samples: int, silence_peak: float = 1e-4) -> np.ndarray:
    """The first ``n_samples`` of a file as mono float32 at ``sample_rate``, or :class:`BadAudio`.

    Checks, in order: readable, not empty, finite, at least ``n_samples`` long (after resampling),
    not silent (peak above ``silence_peak``).
    """
    import soundfile as sf
    import torch

    from mlplatform.data.torchaudio_compat import resample

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types for corrupt files
        raise BadAudio(f"{path}: unreadable audio ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None
    if audio.size == 0:
        raise BadAudio(f"{path}: empty audio")
    if not np.isfinite(audio).all():
        raise BadAudio(f"{path}: contains NaN/inf samples")
    need = n_samples / sample_rate
    have = audio.shape[0] / sr
    if have + 1e-6 < need:
        raise BadAudio(f"{path}: too short ({have:.2f} s < {need:.2f} s needed for one clip)")
    mono = audio.mean(axis=1)
    if sr != sample_rate:
        mono = resample(torch.from_numpy(mono), sr, sample_rate).numpy()
    mono = np.pad(mono, (0, max(0, n_samples - len(mono))))[:n_samples]  # resampling may lose a sample
    if float(np.abs(mono).max()) < silence_peak:
        raise BadAudio(f"{path}: silent (peak below {silence_peak})")
    return mono.astype(np.float32)
