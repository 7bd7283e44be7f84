"""In-memory batching (mlplatform.data.batching): deterministic order, disjoint equal rank shards."""
from __future__ import annotations

import torch

from mlplatform.data.batching import iterate


def data(n: int = 10) -> dict[str, torch.Tensor]:
    return {"i": torch.arange(n), "x": torch.arange(n).float()[:, None].repeat(1, 3)}


def ids(batches) -> list[int]:
    return [int(v) for b in batches for v in b["i"]]


def test_unshuffled_batches_keep_order_rows_aligned_and_a_short_last_batch():
    out = list(iterate(data(), 4, shuffle=False))
    assert [len(b["i"]) for b in out] == [4, 4, 2]
    assert ids(out) == list(range(10))
    assert all(torch.equal(b["x"][:, 0], b["i"].float()) for b in out)  # every tensor indexed alike
    assert [len(b["i"]) for b in iterate(data(), 4, shuffle=False, drop_last=True)] == [4, 4]


def test_shuffle_is_a_permutation_fixed_by_the_seed():
    a = ids(iterate(data(), 3, shuffle=True, seed=5))
    assert sorted(a) == list(range(10)) and a != list(range(10))
    assert a == ids(iterate(data(), 3, shuffle=True, seed=5))
    assert a != ids(iterate(data(), 3, shuffle=True, seed=6))


def test_rank_shards_are_disjoint_equal_and_cover_all_but_the_remainder():
    shards = [ids(iterate(data(11), 2, shuffle=True, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # equal: no rank waits for another in DDP
    flat = [i for s in shards for i in s]
    assert len(set(flat)) == 9 and set(flat) <= set(range(11))
