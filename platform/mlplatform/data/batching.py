"""Batching of in-memory tensor datasets, deterministic and shardable across DDP ranks."""
from __future__ import annotations

from typing import Iterator

import torch


def iterate(tensors: dict[str, torch.Tensor], batch_size: int, *, shuffle: bool, seed: int = 0,
            rank: int = 0, world_size: int = 1, drop_last: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of a dict of equal-length tensors; order fixed by ``seed``; sharded by rank."""
    n = len(next(iter(tensors.values())))
    if shuffle:
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    order = order[: len(order) - len(order) % world_size][rank::world_size]  # equal shards: DDP never waits
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield {k: v[idx] for k, v in tensors.items()}
