"""Optional room acoustics for tse scenes (``data.reverb=true``): seeded shoebox rooms simulated by
``pyroomacoustics``' image-source method, one room impulse response (RIR) for the target's position and one
for the interferer's, the same microphone.

As the field does, the *mixture* is reverberant and the loss's target stays the dry source: each RIR is cut
at its direct-path peak, so the reverberant target is time-aligned with the dry one and only the
reflections are extra. The rooms are made once per (rate, count, seed, ranges) and cached as ``.npz`` in the
data root (about 2 s of CPU per room here).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlplatform.data import cache

ROOMS_VERSION = "tse-rooms-1"


def _key(d: Any) -> dict[str, Any]:
    return {"sr": d.sample_rate, "n": d.reverb_rooms, "seed": d.gen_seed, "rt60": [d.rt60_min, d.rt60_max]}


def make_room(rng: np.random.Generator, sample_rate: int, rt60_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(target RIR, interferer RIR) of one random shoebox room, each cut at its direct-path peak and scaled
    so that peak is 1. Shape: -> ([L], [L'])."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3.0, 9.0), rng.uniform(3.0, 7.0), rng.uniform(2.5, 3.5)])
    rt60 = float(rng.uniform(*rt60_range))
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 12))

    def spot() -> np.ndarray:
        return np.array([rng.uniform(0.5, dims[0] - 0.5), rng.uniform(0.5, dims[1] - 0.5), rng.uniform(1.0, 2.0)])

    room.add_source(spot())
    room.add_source(spot())
    room.add_microphone(spot())
    room.compute_rir()
    out = []
    for r in (room.rir[0][0], room.rir[0][1]):
        r = np.asarray(r, np.float64)
        peak = int(np.argmax(np.abs(r)))
        r = r[peak:peak + int(rt60 * sample_rate)]  # from the direct path, RT60 long
        out.append((r / r[0]).astype(np.float32))
    return out[0], out[1]


def load_rooms(cfg: Any, root: Path, log=print) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``data.reverb_rooms`` seeded rooms, made once and cached under ``root``."""
    d = cfg.data
    folder = root / f"rooms-{cache.fingerprint(_key(d), ROOMS_VERSION)}"

    def build(tmp: Path) -> dict[str, Any]:
        rng = np.random.default_rng([d.gen_seed, 4243])
        log(f"[data] pyroomacoustics: {d.reverb_rooms} rooms, RT60 {d.rt60_min}-{d.rt60_max} s -> {folder}")
        arrays = {}
        for i in range(d.reverb_rooms):
            arrays[f"t{i}"], arrays[f"i{i}"] = make_room(rng, d.sample_rate, (d.rt60_min, d.rt60_max))
        tmp.mkdir(parents=True, exist_ok=True)
        np.savez(tmp / "rirs.npz", **arrays)
        return {"kind": "rooms", "config": _key(d), "rooms": d.reverb_rooms}

    cache.build_once(folder, build, log=log)
    with np.load(folder / "rirs.npz") as z:
        return [(z[f"t{i}"], z[f"i{i}"]) for i in range(d.reverb_rooms)]


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` (direct path at sample 0), cut to ``len(x)``. Shape: [T], [L] -> [T]."""
    from scipy.signal import fftconvolve

    return fftconvolve(x, rir)[: len(x)].astype(np.float32)
