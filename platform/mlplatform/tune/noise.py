"""Noise-aware selection: paired bootstrap confidence intervals over the frozen validation items.

Every trial's selected checkpoint keeps its selection metric per validation item (``per_item.json`` beside
the "best" checkpoint, written by the loop), and the floors' values on the same items. Because every trial
is scored on the same frozen items, two trials' values can be compared item by item: the difference of
their means is the mean of the per-item differences, and resampling the items (a paired bootstrap) gives
its confidence interval. A trial whose interval for "trial minus best" contains 0 is *tied* with the best:
the validation set cannot tell them apart, so the ranking between them is noise (docs/sweep_report.md).

Pure numpy/scipy: the report reads the values from MLflow and calls :func:`analyse`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVEL = 0.95
N_RESAMPLES = 4000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap confidence interval ``[lo, hi]`` at ``LEVEL``."""

    mean: float
    lo: float
    hi: float

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


def bootstrap_mean(values: Any, seed: int = SEED, n_resamples: int = N_RESAMPLES,
                   level: float = LEVEL) -> Interval:
    """The mean of ``values`` (1-D) and its BCa bootstrap interval (``scipy.stats.bootstrap``, seeded).

    Constant values have no spread to resample: the interval is the point itself."""
    from scipy.stats import bootstrap

    d = np.asarray(values, dtype=float).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"bootstrap needs finite values; got {d.size} values"
                         + (f", {int((~np.isfinite(d)).sum())} non-finite" if d.size else ""))
    m = float(d.mean())
    if d.size < 2 or np.ptp(d) == 0.0:
        return Interval(m, m, m)
    res = bootstrap((d,), np.mean, confidence_level=level, n_resamples=n_resamples, method="BCa",
                    rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa undefined (e.g. near-degenerate): percentile
        lo, hi = (float(q) for q in np.quantile(res.bootstrap_distribution, [(1 - level) / 2, (1 + level) / 2]))
    return Interval(m, lo, hi)


@dataclass
class TrialNoise:
    """One trial against the best: ``diff`` = trial minus best (metric units, per-item paired);
    ``margin`` = trial minus its strongest floor, signed so that positive is better."""

    trial_id: str
    value: float
    diff: Interval | None = None  # None for the best itself, or when the items are not paired
    tied: bool = False  # diff's interval contains 0 (the best is tied with itself)
    margin: Interval | None = None
    floor: str = ""  # the strongest floor's name (best mean on the same items)
    note: str = ""  # why an interval is missing


@dataclass
class NoiseResult:
    metric: str
    mode: str
    best: str  # trial id
    items: int
    level: float = LEVEL
    best_value: Interval | None = None  # the best trial's mean and its interval
    trials: dict[str, TrialNoise] = field(default_factory=dict)

    @property
    def tied(self) -> list[str]:
        """Trials tied with the best (the best included), in the order they were given."""
        return [t for t, n in self.trials.items() if n.tied]


def strongest_floor(floors: dict[str, list[float]], mode: str) -> tuple[str, np.ndarray] | None:
    """The floor with the best mean on the items (min or max by ``mode``)."""
    finite = {k: np.asarray(v, dtype=float) for k, v in floors.items() if v and np.isfinite(v).all()}
    if not finite:
        return None
    pick = min if mode == "min" else max
    name = pick(finite, key=lambda k: float(finite[k].mean()))
    return name, finite[name]


def _paired(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Why two per-item records cannot be paired ('' when they can)."""
    if len(a["model"]) != len(b["model"]):
        return f"{len(a['model'])} vs {len(b['model'])} items"
    if a.get("digest") and b.get("digest") and a["digest"] != b["digest"]:
        return "different validation items (digests differ)"
    return ""


def analyse(items: dict[str, dict[str, Any]], mode: str, seed: int = SEED) -> NoiseResult | None:
    """Intervals for every trial in ``items`` (trial id -> per-item record, best trial FIRST).

    A record is what the loop writes: ``{"metric", "model": [...], "floors": {name: [...]}, "digest"}``.
    Returns None without a best trial that has per-item values."""
    usable = {t: r for t, r in items.items() if r and r.get("model")}
    if not usable:
        return None
    best_id = next(iter(usable))
    best = usable[best_id]
    b = np.asarray(best["model"], dtype=float)
    s = 1.0 if mode == "max" else -1.0
    out = NoiseResult(best.get("metric", ""), mode, best_id, int(b.size), best_value=bootstrap_mean(b, seed))
    for tid, rec in usable.items():
        x = np.asarray(rec["model"], dtype=float)
        tn = TrialNoise(tid, float(x.mean()))
        why = _paired(rec, best)
        if tid == best_id:
            tn.tied = True
        elif why:
            tn.note = why
        else:
            tn.diff = bootstrap_mean(x - b, seed)
            tn.tied = tn.diff.contains(0.0)
        top = strongest_floor(rec.get("floors", {}), mode)
        if top is not None:
            tn.floor, f = top
            tn.margin = bootstrap_mean(s * (x - f), seed)
        out.trials[tid] = tn
    return out
