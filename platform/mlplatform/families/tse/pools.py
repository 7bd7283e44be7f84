"""tse pools and dynamic mixing over the audio cache, read lazily.

A :class:`Pool` holds no audio: its utterances are row numbers of the Parquet audio cache
(``index-<fp>/audio/part-*.parquet``) and its noise clips are (row, part) references; the samples are read
when a mixture needs them, through a :class:`~mlplatform.data.streaming.RowStore` that holds at most
``data.cache_mb`` of row groups. So a worker's memory does not grow with the corpus, and a rank trains on a
shard of the speakers (:func:`shard_pool`) whose rows sit together in the cache (files are indexed in path
order, and a speaker is a folder).

The draws are those of the eager pools this replaced, one for one, so a mixture is a pure function of the
generator's state and the cache's content (the frozen validation set keeps its SHA-256).
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mlplatform.config import ConfigError
from mlplatform.data.streaming import RowStore, int16_audio, shard_bounds

NOISE_TRAIN_FRACTION = 0.75  # noise clips: the first 75 % (in time) train, the rest validates


@dataclasses.dataclass
class Pool:
    """Utterances per speaker (cache row numbers) as targets, enrollments and interferers, and noise clips
    as (row, part) with part "train" (the first 75 % of the clip) or "val" (the rest)."""

    targets: dict[str, np.ndarray]
    enroll: dict[str, np.ndarray]
    interferers: dict[str, np.ndarray]
    noise: list[tuple[int, str]]
    store: RowStore
    # (target RIR, interferer RIR) per simulated room (``rooms.py``), or None for dry scenes
    rooms: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def speakers(self) -> list[str]:
        return sorted(self.targets)

    def utterance(self, row: int) -> np.ndarray:
        """Samples of one cached file. Shape: -> [T] float32."""
        return int16_audio(self.store.buffer(int(row), "pcm"))

    def noise_clip(self, i: int) -> np.ndarray:
        row, part = self.noise[i]
        x = self.utterance(row)
        cut = int(NOISE_TRAIN_FRACTION * len(x))
        return x[:cut] if part == "train" else x[cut:]


def held_out_speakers(speakers: list[str], n: int) -> list[str]:
    """The ``n`` speakers kept out of training: the first ``n`` by SHA-256 of the speaker name.

    Depends on nothing but the names, so a speaker-folder corpus (LibriSpeech ids, espeak-ng voices) splits
    the same way every time and adding a speaker moves no other speaker across the split; a hash rather
    than the sorted order, so the held-out voices are not all one espeak-ng variant or accent.
    """
    return sorted(sorted(speakers, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:n])


def speaker_rows(store: RowStore, kind: str = "speech") -> tuple[dict[str, np.ndarray], list[int]]:
    """({speaker: its rows of ``kind`` in path order}, noise rows in path order) from the cache's small columns
    only (path, speaker, kind): sorted by Arrow, so no per-file Python object is made for a large corpus.
    ``kind`` is "speech" (the training corpus) or "synth" (the unseen_synth voices)."""
    meta = store.columns(["path", "speaker", "kind"]).append_column("row", pa.array(np.arange(len(store))))
    meta = meta.take(pc.sort_indices(meta, sort_keys=[("speaker", "ascending"), ("path", "ascending")]))
    is_noise = pc.equal(meta.column("kind"), "noise")
    noise = meta.filter(is_noise).column("row").to_numpy()
    speech = meta.filter(pc.equal(meta.column("kind"), kind))
    if speech.num_rows == 0:
        return {}, [int(r) for r in noise]
    rows = speech.column("row").to_numpy()
    runs = pc.run_end_encode(speech.column("speaker").combine_chunks())
    ends = runs.run_ends.to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    names = runs.values.to_pylist()  # one entry per speaker
    return {s: rows[a:b] for s, a, b in zip(names, starts, ends)}, [int(r) for r in noise]


def shard_pool(pool: Pool, rank: int, world_size: int) -> Pool:
    """Rank ``rank``'s disjoint block of the speakers (targets, enrollments and interferers all from it) and
    of the noise clips (all clips when there are fewer clips than ranks). World size 1: the pool itself."""
    if world_size == 1:
        return pool
    spks = pool.speakers
    if len(spks) < 2 * world_size:
        raise ConfigError(f"data.corpus: {len(spks)} training speakers cannot give each of {world_size} workers the "
                          f"2 speakers a mixture needs (a target and an interferer); use fewer workers or more speakers")
    a, b = shard_bounds(len(spks), rank, world_size)
    mine = set(spks[a:b])
    noise = pool.noise
    if len(noise) >= world_size:
        na, nb = shard_bounds(len(noise), rank, world_size)
        noise = noise[na:nb]
    return Pool({s: v for s, v in pool.targets.items() if s in mine}, {s: v for s, v in pool.enroll.items() if s in mine},
                {s: v for s, v in pool.interferers.items() if s in mine}, noise, pool.store, pool.rooms)


def _crop(rng: np.random.Generator, x: np.ndarray, n: int) -> np.ndarray:
    """A random n-sample window of x; a shorter x is placed at a random offset in silence."""
    if len(x) >= n:
        o = int(rng.integers(0, len(x) - n + 1))
        return x[o:o + n]
    out = np.zeros(n, np.float32)
    o = int(rng.integers(0, n - len(x) + 1))
    out[o:o + len(x)] = x
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def _draw_sources(rng: np.random.Generator, pool: Pool, spks: list[str], all_spk: list[str], seg: int):
    """(speaker index, target, enrollment, interferer crop, noise crop) of one scene, drawn in a fixed order."""
    k = int(rng.integers(len(spks)))
    spk = spks[k]
    targets = pool.targets[spk]
    t_row = targets[int(rng.integers(len(targets)))]
    cands = pool.enroll[spk][pool.enroll[spk] != t_row]  # never the target itself
    e_row = cands[int(rng.integers(len(cands)))]
    others = [s for s in all_spk if s != spk]
    o = others[int(rng.integers(len(others)))]
    interf = _crop(rng, pool.utterance(pool.interferers[o][int(rng.integers(len(pool.interferers[o])))]), seg)
    noise = _crop(rng, pool.noise_clip(int(rng.integers(len(pool.noise)))), seg)
    return k, pool.utterance(t_row), pool.utterance(e_row), interf, noise


def _mix_scene(target: np.ndarray, interf: np.ndarray, noise: np.ndarray, ta: bool, sir: float, snr: float,
               level: float, room: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(mixture, loss target) of one scene. In a room the target and the interferer are reverberant in the
    mixture; the loss's target stays the dry source (direct path aligned, ``rooms.py``)."""
    s_mix = target
    if room is not None:
        from mlplatform.families.tse.rooms import reverberate

        s_mix, interf = reverberate(target, room[0]), reverberate(interf, room[1])
    if ta:  # target absent: interferer + noise only, the reference is silence
        target = s_mix = np.zeros_like(target)
        ref = _rms(interf)
        noise = noise * (ref / _rms(noise) / 10 ** (snr / 20))
    else:
        ref = _rms(s_mix)
        interf = interf * (ref / _rms(interf) / 10 ** (sir / 20))
        noise = noise * (ref / _rms(noise) / 10 ** (snr / 20))
    m = s_mix + interf + noise
    g = 10 ** (level / 20) / _rms(m)
    peak = float(np.abs(m).max()) * g
    if peak > 0.99:  # never clip: lower the level instead
        g *= 0.99 / peak
    return m * g, target * g


def mix_batch(rng: np.random.Generator, pool: Pool, n: int, p_ta: float, d) -> dict[str, torch.Tensor]:
    """``n`` mixtures. Returns mixture [n, T], target [n, T] (zeros in TA scenes), enroll [n, Te], tp [n] bool,
    spk [n] (the enrolled speaker's index in the pool: the enrollment-swap probe needs another speaker).
    With rooms, each scene's room is drawn after every other draw of the batch, so a dry and a reverberant
    run mix the same sources at the same ratios."""
    seg, seg_e = int(round(d.segment_s * d.sample_rate)), int(round(d.enroll_s * d.sample_rate))
    spks, all_spk = pool.speakers, sorted(pool.interferers)
    mix, tgt, enr, tp = (np.zeros((n, seg), np.float32), np.zeros((n, seg), np.float32),
                         np.zeros((n, seg_e), np.float32), np.ones(n, bool))
    spk_idx = np.zeros(n, np.int64)
    scenes = []
    for b in range(n):
        spk_idx[b], target, e, interf, noise = _draw_sources(rng, pool, spks, all_spk, seg)
        s = _crop(rng, target, seg)
        ta = bool(rng.random() < p_ta)
        sir, snr = rng.uniform(d.sir_db_min, d.sir_db_max), rng.uniform(d.snr_db_min, d.snr_db_max)
        level = d.mix_level_db + rng.uniform(-d.level_jitter_db, d.level_jitter_db)
        scenes.append((s, interf, noise, ta, sir, snr, level))
        ec = _crop(rng, e, seg_e)
        enr[b] = ec * (10 ** (-25 / 20) / _rms(ec))  # enrollment at a fixed level
        tp[b] = not ta
    rooms = [pool.rooms[int(i)] for i in rng.integers(len(pool.rooms), size=n)] if pool.rooms else [None] * n
    for b, (scene, room) in enumerate(zip(scenes, rooms)):
        mix[b], tgt[b] = _mix_scene(*scene, room)
    return {"mixture": torch.from_numpy(mix), "target": torch.from_numpy(tgt),
            "enroll": torch.from_numpy(enr), "tp": torch.from_numpy(tp), "spk": torch.from_numpy(spk_idx)}
