"""creative data: a fluidsynth corpus (or the user's wav pairs) -> EnCodec latents in a Parquet cache.

1. Corpus. ``data.pairs`` empty: ``n_pairs`` input/target songs are generated and rendered by Ray tasks
   into ``<root>/corpus/<fingerprint>/{input,target}/pair_XXXXX.wav``. Otherwise the user's folder
   (``input/*.wav`` + ``target/*.wav`` matched by name, or a ``pairs.csv``) is used as is.
2. Latents. A Ray Data pipeline (``from_items -> map_batches``) reads, checks and encodes every pair
   ONCE into ``<root>/latents/<fingerprint>/{train,val}/part-*.parquet`` + manifest. The fingerprint
   covers the corpus content, the codec's identity (checkpoint digest or random seed), clip length and
   split, so a sweep encodes once and other settings never read a stale cache. Bad files (corrupt,
   too short, silent) are reported one line each and skipped.
3. Training reads only the cache, lazily (:class:`LatentSplit`): each rank a disjoint block of the rows.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mlplatform.config import ConfigError
from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.data.streaming import RowStore, prefetch, shard_batches, shard_bounds
from mlplatform.families.creative import music
from mlplatform.families.creative.corpus import (  # noqa: F401 - re-exported
    CORPUS_VERSION, SAMPLE_RATE, corpus_key, data_root, make_corpus)
from mlplatform.families.creative.codec import load_codec
from mlplatform.families.creative.pretrained import resolve_checkpoint
from mlplatform.protocol import DataContext, Datasets

LATENT_VERSION = "creative-latents-1"


# ----------------------------------------------------------------------------------------------
# 2. latents (Ray Data)
# ----------------------------------------------------------------------------------------------

def encode_batch(batch: Any, codec_checkpoint: str, codec_seed: int, clip_s: float) -> Any:
    """Ray Data UDF (pandas batch): read + check + encode each pair; bad files become an ``error`` row."""
    codec = load_codec(codec_checkpoint, codec_seed, quiet=True)
    n = codec.samples(clip_s)
    rows = []
    for name, split, a, b in zip(batch["name"], batch["split"], batch["input"], batch["target"]):
        row = {"name": name, "split": split, "input_latent": b"", "target_latent": b"", "frames": 0, "error": ""}
        try:
            wavs = torch.from_numpy(np.stack([music.load_clip(a, codec.sample_rate, n),
                                              music.load_clip(b, codec.sample_rate, n)]))
        except music.BadAudio as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        with torch.no_grad():
            z = codec.encode(wavs[:, None]).float().numpy()  # [2, 128, T]
        row.update(input_latent=z[0].tobytes(), target_latent=z[1].tobytes(), frames=int(z.shape[-1]))
        rows.append(row)
    import pandas as pd

    return pd.DataFrame(rows)


def _pairs(cfg: Any) -> tuple[list[tuple[str, Path, Path]], list[str], Any]:
    """(pairs, problems, content identity for the fingerprint)."""
    if cfg.data.pairs:
        p = Path(cfg.data.pairs)
        if not p.exists():
            raise ConfigError(f"data.pairs: {p} does not exist (a folder with input/ and target/, or a pairs.csv)")
        try:
            pairs, problems = music.scan_pairs(p)
        except FileNotFoundError as e:
            raise ConfigError(f"data.pairs: {e}") from None
        ident = [(n, str(a), str(b), _stat(a), _stat(b)) for n, a, b in pairs]
        return pairs, problems, {"pairs": ident}
    folder = make_corpus(cfg)
    pairs, problems = music.scan_pairs(folder)
    return pairs, problems, {"corpus": folder.name}


def _stat(p: Path) -> Any:
    try:
        st = p.stat()
        return [st.st_size, int(st.st_mtime)]
    except OSError:
        return None


def split_names(names: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Deterministic train/val assignment: at least one pair in each split when there are two or more."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(val_fraction * len(order))), max(0, len(order) - 1))
    return {n: ("val" if i < n_val else "train") for i, n in enumerate(order)}


def latent_dir(cfg: Any, ident: Any, codec_identity: str) -> Path:
    d = cfg.data
    key = {"source": ident, "codec": codec_identity, "clip_s": d.clip_s, "val_fraction": d.val_fraction,
           "seed": d.seed}
    return data_root(cfg) / "latents" / cache.fingerprint(key, LATENT_VERSION)


def prepare_data(cfg: Any) -> dict[str, Any]:
    """Corpus (if generated) and the latent cache, each built once. Returns the cache's manifest + path."""
    ray = ray_if_up()  # None: build here (Ray not started or not installed)

    d = cfg.data
    pairs, problems, ident = _pairs(cfg)
    ckpt = resolve_checkpoint(cfg)  # trains the codec family's preset once when no checkpoint is given
    codec = load_codec(ckpt, d.codec_seed)  # loud warning here when the weights are random
    folder = latent_dir(cfg, ident, codec.identity)

    def build(tmp: Path) -> dict[str, Any]:
        if not pairs:
            raise ConfigError(f"data.pairs: no input/target pairs found in {d.pairs or 'the generated corpus'}")
        splits = split_names([n for n, _, _ in pairs], d.val_fraction, d.seed)
        items = [{"name": n, "split": splits[n], "input": str(a), "target": str(b)} for n, a, b in pairs]
        kw = {"codec_checkpoint": ckpt, "codec_seed": d.codec_seed, "clip_s": d.clip_s}
        print(f"[data] encoding {len(items)} pairs ({d.clip_s:g} s, {codec.frames(d.clip_s)} frames at "
              f"{codec.frame_rate:g}/s) with {'Ray Data' if ray is not None else 'a local loop'} -> {folder}",
              flush=True)
        if ray is not None:
            ds = ray.data.from_items(items).map_batches(encode_batch, batch_size=d.encode_batch, batch_format="pandas",
                                                        fn_kwargs=kw, num_cpus=1)
            df = ds.to_pandas()
        else:
            import pandas as pd

            df = pd.concat([encode_batch(pd.DataFrame(items[i:i + d.encode_batch]), **kw)
                            for i in range(0, len(items), d.encode_batch)])
        skipped = [f"[data] skipped pair {r.name}: {r.error}" for r in df.itertuples() if r.error]
        for line in problems + skipped:
            print(line if line.startswith("[data]") else f"[data] skipped: {line}", flush=True)
        good = df[df["error"] == ""]
        counts = {}
        for split in ("train", "val"):
            part = good[good["split"] == split].sort_values("name")
            if len(part) == 0:
                raise ConfigError(f"data: no usable pairs left for the {split} split after skipping bad files "
                                  f"({len(skipped) + len(problems)} problems); add pairs or fix the files")
            table = pa.table({"name": list(part["name"]), "input_latent": pa.array(list(part["input_latent"]), pa.binary()),
                              "target_latent": pa.array(list(part["target_latent"]), pa.binary()),
                              "frames": pa.array(list(part["frames"]), pa.int32())})
            # 4 pairs per row group: the unit LatentSplit reads (24 s clips are ~1.8 MB a pair)
            counts[split] = cache.write_table(table, tmp / split / "part-00000.parquet", row_group_size=4)
        return {"family": "creative", "kind": "latents", "version": LATENT_VERSION, "fingerprint": folder.name,
                "codec": codec.identity, "codec_pretrained": codec.pretrained, "codec_source": codec.source,
                "codec_run_id": codec.run_id, "frame_rate": codec.frame_rate,
                "dim": codec.dim, "frames": codec.frames(d.clip_s), "rows": counts,
                "skipped": problems + [s.split(": ", 1)[1] for s in skipped], "source": ident}

    man = cache.build_once(folder, build)
    return {"path": str(folder), **man}


# ----------------------------------------------------------------------------------------------
# 3. training reads the cache
# ----------------------------------------------------------------------------------------------

def load_split(cfg: Any, split: str) -> dict[str, torch.Tensor]:
    """A whole split in memory (the eager reference :class:`LatentSplit` is tested against; training streams)."""
    info = prepare_data(cfg)  # cheap when the cache exists (the manifest is read, nothing encoded)
    t = cache.read_split(info["path"], split)
    dim = int(info["dim"])

    def col(name: str) -> torch.Tensor:
        arr = [np.frombuffer(v, dtype=np.float32).reshape(dim, -1) for v in t.column(name).to_pylist()]
        return torch.from_numpy(np.stack(arr).copy())

    return {"input": col("input_latent"), "target": col("target_latent")}


class LatentSplit:
    """One split of the latent cache, read lazily: a batch of rows is read from its Parquet row groups when
    asked for (at most ``data.cache_mb`` of row groups held), never the whole split."""

    def __init__(self, folder: str | Path, split: str, dim: int, cache_mb: float):
        self.store = RowStore.open(folder, split, cache_bytes=int(cache_mb * (1 << 20)))
        self.dim = dim

    def __len__(self) -> int:
        return len(self.store)

    def rows(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Shape: -> input, target [len(rows), dim, T] float32 (the values ``load_split`` gives)."""
        def col(name: str) -> torch.Tensor:
            arr = [np.frombuffer(self.store.buffer(int(r), name), dtype=np.float32).reshape(self.dim, -1) for r in rows]
            return torch.from_numpy(np.stack(arr))

        return {"input": col("input_latent"), "target": col("target_latent")}


def build_datasets(cfg: Any, ctx: DataContext) -> Datasets:
    info = prepare_data(cfg)  # cheap when the cache exists (the manifest is read, nothing encoded)
    d, bs = cfg.data, cfg.train.batch_size
    train, val = (LatentSplit(info["path"], s, int(info["dim"]), d.cache_mb) for s in ("train", "val"))
    if len(train) < ctx.world_size:
        raise ConfigError(f"data: {len(train)} training pairs cannot be split over {ctx.world_size} workers; "
                          "add pairs or use fewer workers")

    def train_batches(epoch: int):
        # rank's fixed block of rows, reshuffled per (seed, epoch); read data.prefetch batches ahead in a thread
        order = shard_batches(len(train), bs, shuffle=True, seed=cfg.train.seed * 100_003 + epoch, rank=ctx.rank,
                              world_size=ctx.world_size)
        return prefetch(lambda: map(train.rows, order), d.prefetch)

    return Datasets(
        train_batches=train_batches,
        val_batches=lambda: map(val.rows, shard_batches(len(val), bs, shuffle=False)),
        info={"n_train": len(train), "n_val": len(val),
              "rank_train": len(range(*shard_bounds(len(train), ctx.rank, ctx.world_size, equal=ctx.world_size > 1)))},
    )


def describe(info: dict[str, Any]) -> str:
    return json.dumps({k: info[k] for k in ("path", "rows", "codec", "codec_pretrained", "frames") if k in info})

