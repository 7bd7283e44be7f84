"""Which of a few configs is best once each is trained with several seeds: a two-level bootstrap.

Each confirmed config ``c`` has a matrix ``V_c[s, i]``: the selection metric of its run with seed ``s`` on
frozen validation item ``i``. Seed ``s`` is the same seed for every config and item ``i`` the same item, so
the configs are paired on both. The noise of a sweep's winner has two sources, the seed it happened to draw
and the validation items it happened to be scored on; one resample here draws both (seeds with replacement,
then items with replacement, the same draw for every config), so the interval of "winner minus runner-up"
and the probability that each config is best (the share of resamples it wins) carry both.

Pure numpy, seeded; a leaf module (the sweep's confirmation step and the report both read it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

LEVEL = 0.95
N_RESAMPLES = 4000
SEED = 0


@dataclass(frozen=True)
class Confirmed:
    """The outcome. ``means``: each config's mean over its seeds and items; ``diff``: winner minus
    runner-up (``(mean, lo, hi)``, metric units; None with one config); ``p_best``: bootstrap probability
    that each config is the best."""

    winner: str
    runner_up: str | None
    means: dict[str, float]
    seed_means: dict[str, list[float]]
    diff: tuple[float, float, float] | None
    p_best: dict[str, float] = field(default_factory=dict)
    seeds: int = 0
    items: int = 0


def confirm(values: Mapping[str, np.ndarray], mode: str, seed: int = SEED, n_resamples: int = N_RESAMPLES,
            level: float = LEVEL) -> Confirmed:
    """The best config by its mean over seeds (shape ``[S, N]`` each, the same S and N for every config).

    Raises ValueError when the matrices differ in shape or hold non-finite values."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    names = list(values)
    if not names:
        raise ValueError("no confirmed config")
    stack = np.stack([np.asarray(values[n], dtype=float) for n in names])  # [C, S, N]
    if stack.ndim != 3 or len({np.asarray(values[n]).shape for n in names}) != 1:
        raise ValueError(f"every config needs the same [seeds, items] shape; got "
                         f"{[np.asarray(values[n]).shape for n in names]}")
    if not np.isfinite(stack).all():
        raise ValueError("confirmation values must be finite")
    sign = 1.0 if mode == "max" else -1.0
    means = stack.mean(axis=(1, 2))
    order = np.argsort(-sign * means, kind="stable")
    w = int(order[0])
    r = int(order[1]) if len(names) > 1 else None
    _, s_n, i_n = stack.shape
    rng = np.random.default_rng(seed)
    wins = np.zeros(len(names))
    diffs = np.empty(n_resamples)
    for b in range(n_resamples):
        si = rng.integers(0, s_n, s_n)
        ii = rng.integers(0, i_n, i_n)
        m = stack[:, si][:, :, ii].mean(axis=(1, 2))
        wins[int(np.argmax(sign * m))] += 1
        if r is not None:
            diffs[b] = m[w] - m[r]
    diff = None
    if r is not None:
        lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
        diff = (float(means[w] - means[r]), float(lo), float(hi))
    return Confirmed(winner=names[w], runner_up=None if r is None else names[r],
                     means={n: float(means[k]) for k, n in enumerate(names)},
                     seed_means={n: [float(x) for x in stack[k].mean(axis=1)] for k, n in enumerate(names)},
                     diff=diff, p_best={n: float(wins[k] / n_resamples) for k, n in enumerate(names)},
                     seeds=s_n, items=i_n)
