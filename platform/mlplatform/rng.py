"""Every RNG the platform touches (python, numpy, torch, CUDA): seed, save, restore, isolate.

A leaf module: checkpoints store these states and frozen validation sets are drawn under them.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as weights_only-loadable values."""
    py = random.getstate()
    npst = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], torch.from_numpy(npst[1].astype(np.int64)), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block under a fixed seed and restore the caller's RNG state afterwards.

    Validation runs inside this, so it sees the same items every call and training follows the same
    trajectory whether or not (and how often) it validates (docs/families/tse.md: a set redrawn per
    call made scores swing by several dB between evaluations; restoring the RNG keeps training's draws
    independent of validation).
    """
    saved = get_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(saved)
