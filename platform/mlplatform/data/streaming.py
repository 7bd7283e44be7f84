"""Streaming reads of a Parquet split: rows fetched lazily by row group, a byte-bounded cache, rank shards,
and a prefetching iterator that keeps the training step fed.

Training must not hold the corpus in memory (a LibriSpeech-960-size cache is ~110 GB of PCM): a
:class:`RowStore` keeps only each part file's row-group layout (a few integers per row group) and reads a
row group when one of its rows is asked for, holding at most ``cache_bytes`` of decoded row groups (least
recently used first out). Files are read with ordinary reads, not memory-mapped: pages of a mapped file
count in the process's resident set, so a mapped cache would look like a corpus-sized leak.

Everything here is deterministic: what a caller draws depends on its own seeded generator, never on what
happens to be cached or prefetched.
"""
from __future__ import annotations

import bisect
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def split_files(folder: str | Path, split: str) -> list[Path]:
    """The Parquet parts of ``<folder>/<split>`` in order, or a one-line error naming the split."""
    files = sorted((Path(folder) / split).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files for split {split!r} in {folder}")
    return files


class RowStore:
    """Rows of a Parquet split addressed by a global row number, read one row group at a time.

    Memory: the layout (``[n_row_groups + 1]`` integers per file) plus at most ``cache_bytes`` of row groups
    (one row group more while it is being read, since a row group is the smallest unit Parquet reads).
    """

    def __init__(self, files: Sequence[str | Path], cache_bytes: int = 64 << 20):
        self.files = [Path(f) for f in files]
        self.cache_bytes = int(cache_bytes)
        starts, groups = [0], []  # groups[k] = (file index, row group index); starts[k] = its first global row
        for fi, f in enumerate(self.files):
            meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                groups.append((fi, g))
                starts.append(starts[-1] + meta.row_group(g).num_rows)
        self._starts, self._groups = starts, groups
        self._cache: OrderedDict[tuple[int, str], pa.Array] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()  # a prefetch thread and the main thread (validation) share one store
        self.reads = 0  # row groups read from disk (a test and the benchmark look at the hit rate)

    @classmethod
    def open(cls, folder: str | Path, split: str, cache_bytes: int = 64 << 20) -> "RowStore":
        return cls(split_files(folder, split), cache_bytes)

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def held_bytes(self) -> int:
        """Bytes of row groups the cache holds now (never above ``cache_bytes`` between calls)."""
        return self._held

    def columns(self, names: Sequence[str]) -> pa.Table:
        """Small columns (names, labels) of every row, read without the large ones."""
        return pa.concat_tables([pq.read_table(f, columns=list(names)) for f in self.files])

    def _group(self, k: int, column: str) -> pa.Array:
        key = (k, column)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        fi, g = self._groups[k]
        col = pq.ParquetFile(self.files[fi]).read_row_group(g, columns=[column]).column(0)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()  # one chunk: no copy
        with self._lock:
            self.reads += 1
            if key not in self._cache:
                self._cache[key] = arr
                self._held += arr.nbytes
            while self._held > self.cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._held -= old.nbytes
        return arr

    def get(self, row: int, column: str) -> Any:
        """One cell as a pyarrow scalar (``.as_buffer()`` for binary: no copy of the bytes)."""
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} outside 0..{len(self) - 1}")
        k = bisect.bisect_right(self._starts, row) - 1
        return self._group(k, column)[row - self._starts[k]]

    def buffer(self, row: int, column: str) -> memoryview:
        """A binary cell's bytes, viewed without copying (``np.frombuffer`` reads it directly)."""
        return memoryview(self.get(row, column).as_buffer())


def shard_bounds(n: int, rank: int, world_size: int, equal: bool = False) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous block of ``n`` items: blocks are disjoint and cover all items
    (sizes differ by at most one), or with ``equal`` every block has ``n // world_size`` items and the last
    ``n % world_size`` items are left out (so every DDP rank takes the same number of steps)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    if equal:
        size = n // world_size
        return rank * size, (rank + 1) * size
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class TimedIterator:
    """Wraps an iterable and adds up the seconds spent waiting in ``next()`` (the data-wait time)."""

    def __init__(self, items: Iterable[Any]):
        self._it = iter(items)
        self.wait_s = 0.0

    def __iter__(self) -> "TimedIterator":
        return self

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.wait_s += time.perf_counter() - t0

    def close(self) -> None:
        """Close the wrapped generator now (a prefetch thread stops) rather than when it is collected."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


_END = object()


def prefetch(make: Callable[[], Iterable[Any]], depth: int) -> Iterator[Any]:
    """The items of ``make()``, produced ``depth`` ahead by a background thread (``depth`` 0: inline).

    Order and content are those of ``make()`` exactly; an exception in the producer is raised here; closing
    this generator (the loop stopping early) stops the producer. Memory: at most ``depth + 1`` items ahead.
    """
    if depth <= 0:
        yield from make()
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            q.put(e)

    thread = threading.Thread(target=produce, name="mlp-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def int16_audio(buf: memoryview) -> np.ndarray:
    """Int16 PCM bytes -> float32 samples in [-1, 1] (scaled by 1/32767, as the caches were written).
    Shape: -> [T]."""
    return np.frombuffer(buf, dtype=np.int16).astype(np.float32) / 32767.0


def shard_batches(n: int, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                  world_size: int = 1) -> Iterator[np.ndarray]:
    """Row numbers of ``rank``'s batches: its fixed block of ``n // world_size`` rows (:func:`shard_bounds`,
    equal blocks), in an order fixed by ``seed`` (``torch.randperm``, as ``batching.iterate`` draws it, so a
    single rank sees the batches the in-memory path gave). Shape: -> [<= batch_size] int64 per batch."""
    import torch

    a, b = shard_bounds(n, rank, world_size, equal=world_size > 1)
    rows = np.arange(a, b)
    if shuffle:
        rows = rows[torch.randperm(b - a, generator=torch.Generator().manual_seed(seed)).numpy()]
    for i in range(0, len(rows), batch_size):
        yield rows[i:i + batch_size]
