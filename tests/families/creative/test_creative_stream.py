"""creative streams its latent cache: the lazy split gives the eager split's values, one rank sees the batches
the in-memory path gave, and ranks read disjoint blocks of pairs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from mlplatform.config import ConfigError
from mlplatform.data import cache
from mlplatform.data.batching import iterate
from mlplatform.families.creative import data as D
from mlplatform.protocol import DataContext


def test_latent_split_reads_the_rows_of_a_cache_lazily(tmp_path):
    dim, frames, n = 8, 5, 11
    rng = np.random.default_rng(0)
    lat = rng.standard_normal((n, 2, dim, frames)).astype(np.float32)
    cache.write_table(pa.table({"name": [f"p{i}" for i in range(n)],
                                "input_latent": pa.array([x[0].tobytes() for x in lat], pa.binary()),
                                "target_latent": pa.array([x[1].tobytes() for x in lat], pa.binary())}),
                      tmp_path / "train" / "part-00000.parquet", row_group_size=4)
    split = D.LatentSplit(tmp_path, "train", dim, cache_mb=0.0005)  # ~1 row group
    assert len(split) == n
    got = split.rows(np.array([10, 0, 5]))
    assert got["input"].shape == (3, dim, frames)
    assert torch.equal(got["input"], torch.from_numpy(lat[[10, 0, 5], 0]))
    assert torch.equal(got["target"], torch.from_numpy(lat[[10, 0, 5], 1]))
    assert split.store.held_bytes <= 0.0005 * (1 << 20)


def test_training_batches_match_the_eager_split_and_shard_by_rank(creative_cfg, creative_data):
    cfg = creative_cfg
    eager = D.load_split(cfg, "train")
    one = D.build_datasets(cfg, DataContext())
    for epoch in (0, 1):
        old = list(iterate(eager, cfg.train.batch_size, shuffle=True, seed=cfg.train.seed * 100_003 + epoch))
        new = list(one.train_batches(epoch))
        assert len(new) == len(old)
        assert all(torch.equal(a[k], b[k]) for a, b in zip(old, new) for k in ("input", "target"))
    val = D.load_split(cfg, "val")
    assert all(torch.equal(a[k], b[k]) for a, b in zip(iterate(val, cfg.train.batch_size, shuffle=False),
                                                        one.val_batches(), strict=True) for k in ("input", "target"))
    # two ranks: equal, disjoint blocks of the training pairs (identified by their latents)
    seen = []
    for r in range(2):
        ds = D.build_datasets(cfg, DataContext(r, 2))
        items = {b["input"][i].numpy().tobytes() for b in ds.train_batches(0) for i in range(len(b["input"]))}
        assert len(items) == len(eager["input"]) // 2 == ds.info["rank_train"]
        seen.append(items)
    assert not seen[0] & seen[1]
    with pytest.raises(ConfigError, match="cannot be split over 64 workers"):
        D.build_datasets(cfg, DataContext(0, 64))


def test_the_loop_logs_the_data_wait_of_each_epoch(creative_run):
    res, rep, cl, run_id = creative_run
    waits = [e["sys/data_wait_frac"] for e in rep.history]
    assert len(waits) == len(rep.history) and all(0.0 <= w < 1.0 for w in waits)
    assert len(cl.get_metric_history(run_id, "sys/data_wait_frac")) == len(rep.history)
