"""Streaming reads: the lazy RowStore gives the eager table's cells, holds a bounded number of bytes whatever
the corpus size, rank shards are disjoint and cover the rows, and prefetching changes nothing but timing."""
from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pytest
import torch

from mlplatform.data import cache
from mlplatform.data.batching import iterate
from mlplatform.data.streaming import (RowStore, TimedIterator, int16_audio, prefetch, shard_batches, shard_bounds,
                                       split_files)


def write_split(folder, n_rows: int, row_bytes: int = 4000, rows_per_part: int = 10, group: int = 3):
    """``n_rows`` rows of int16 "audio" (a distinct pattern per row) in parts of ``rows_per_part`` rows."""
    for p, start in enumerate(range(0, n_rows, rows_per_part)):
        ids = list(range(start, min(n_rows, start + rows_per_part)))
        pcm = [((np.arange(row_bytes // 2) * (i + 1)) % 30000).astype(np.int16).tobytes() for i in ids]
        cache.write_table(pa.table({"name": [f"u{i:05d}" for i in ids], "pcm": pa.array(pcm, pa.binary())}),
                          folder / "audio" / f"part-{p:05d}.parquet", row_group_size=group)
    return folder


def test_lazy_rows_equal_the_eager_table(tmp_path):
    folder = write_split(tmp_path, 47)
    eager = cache.read_split(folder, "audio")
    store = RowStore.open(folder, "audio", cache_bytes=10_000)
    assert len(store) == eager.num_rows == 47
    assert store.columns(["name"]).column("name").to_pylist() == eager.column("name").to_pylist()
    pcm = eager.column("pcm").to_pylist()
    for row in np.random.default_rng(0).permutation(47).tolist() + [0, 46]:
        assert bytes(store.buffer(row, "pcm")) == pcm[row]
        assert store.get(row, "name").as_py() == f"u{row:05d}"
    x = int16_audio(store.buffer(5, "pcm"))
    assert x.dtype == np.float32 and np.array_equal(x, np.frombuffer(pcm[5], np.int16).astype(np.float32) / 32767.0)
    with pytest.raises(IndexError, match="row 47"):
        store.get(47, "pcm")
    with pytest.raises(FileNotFoundError, match="'val'"):
        split_files(folder, "val")


def test_cache_holds_at_most_its_bound_and_rereads_only_when_evicted(tmp_path):
    folder = write_split(tmp_path, 30, row_bytes=4000, rows_per_part=12, group=3)  # 10 row groups of ~12 kB
    small = RowStore.open(folder, "audio", cache_bytes=30_000)
    for row in range(30):
        small.buffer(row, "pcm")
        assert small.held_bytes <= 30_000
    assert small.reads == 10  # sequential: each row group read once
    for row in range(30):
        small.buffer(row, "pcm")
    assert small.reads == 20  # evicted: read again
    big = RowStore.open(folder, "audio", cache_bytes=1 << 30)
    for _ in range(2):
        for row in range(30):
            big.buffer(row, "pcm")
    assert big.reads == 10 and big.held_bytes > 100_000


def _stream_all(folder, cache_bytes: int) -> tuple[int, int]:
    """(most Arrow bytes allocated above the start while reading every row, rows read)."""
    base = pa.total_allocated_bytes()
    store = RowStore.open(folder, "audio", cache_bytes=cache_bytes)
    peak, total = 0, 0
    for row in np.random.default_rng(1).permutation(len(store)):
        total += len(int16_audio(store.buffer(int(row), "pcm")))
        peak = max(peak, pa.total_allocated_bytes() - base)
    return peak, total


def test_memory_does_not_grow_with_the_corpus(tmp_path):
    # 1x and 10x the same kind of cache (~0.5 MB and ~5 MB of audio), read through a 64 kB cache: the bytes
    # Arrow holds (every row group buffer is Arrow's) stay under the bound plus the row group being read and
    # the Parquet reader's page buffers for it (measured: 2.4 row groups), the same at both sizes
    one = write_split(tmp_path / "one", 40, row_bytes=12_000, group=2)
    ten = write_split(tmp_path / "ten", 400, row_bytes=12_000, group=2)
    bound = 64_000
    peak1, n1 = _stream_all(one, bound)
    peak10, n10 = _stream_all(ten, bound)
    assert n10 == 10 * n1  # every sample of the 10x corpus really went through the reader
    group = 2 * 12_000 + 64
    assert peak1 <= bound + 4 * group and peak10 <= bound + 4 * group, (peak1, peak10)
    # the eager path holds the whole 10x corpus
    assert cache.read_split(ten, "audio").nbytes > 10 * peak10


@pytest.mark.parametrize("n,world", [(10, 1), (10, 3), (7, 4), (100, 8), (3, 3)])
def test_shards_are_disjoint_and_cover_the_rows(n, world):
    blocks = [range(*shard_bounds(n, r, world)) for r in range(world)]
    assert sorted(i for b in blocks for i in b) == list(range(n))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    equal = [range(*shard_bounds(n, r, world, equal=True)) for r in range(world)]
    assert {len(b) for b in equal} == {n // world}
    assert len({i for b in equal for i in b}) == n - n % world


def test_shard_batches_one_rank_matches_the_in_memory_order_and_ranks_never_overlap():
    data = {"i": torch.arange(23)}
    for seed in (0, 5):
        old = [b["i"].tolist() for b in iterate(data, 4, shuffle=True, seed=seed)]
        assert [b.tolist() for b in shard_batches(23, 4, shuffle=True, seed=seed)] == old
    per_rank = [[i for b in shard_batches(23, 4, shuffle=True, seed=3, rank=r, world_size=3) for i in b.tolist()]
                for r in range(3)]
    assert all(len(p) == 7 for p in per_rank)  # equal: every DDP rank takes the same number of steps
    assert not set(per_rank[0]) & set(per_rank[1]) and not set(per_rank[1]) & set(per_rank[2])
    # a rank keeps its block across epochs (only the order changes)
    again = [i for b in shard_batches(23, 4, shuffle=True, seed=4, rank=1, world_size=3) for i in b.tolist()]
    assert sorted(again) == sorted(per_rank[1]) and again != per_rank[1]
    assert [b.tolist() for b in shard_batches(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_prefetch_yields_the_same_items_and_stops_its_thread():
    def make():
        rng = np.random.default_rng(7)
        for _ in range(20):
            yield rng.standard_normal(3)

    inline = list(prefetch(make, 0))
    ahead = list(prefetch(make, 3))
    assert len(ahead) == 20 and all(np.array_equal(a, b) for a, b in zip(inline, ahead))
    before = threading.active_count()
    it = prefetch(make, 2)
    next(it)
    time.sleep(0.05)  # the producer fills the queue and blocks
    it.close()
    assert threading.active_count() == before

    def broken():
        yield 1
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        list(prefetch(broken, 2))


def test_timed_iterator_counts_only_the_wait():
    def slow():
        for i in range(3):
            time.sleep(0.02)
            yield i

    t0 = time.perf_counter()
    it = TimedIterator(slow())
    for _ in it:
        time.sleep(0.02)  # "compute": not counted
    total = time.perf_counter() - t0
    assert it.wait_s >= 0.06 and it.wait_s <= total - 0.06, (it.wait_s, total)
