"""Floors, ceilings and captured gain: where a model's selection metric sits between free and perfect.

A *floor* is the strongest estimator that needs no training (a closed form, a classical estimator, the
input itself); a *ceiling* is an oracle that uses information the model cannot have. Both are scored on
the same frozen validation batches as the model, so

    captured_gain = (model - best floor) / (best ceiling - best floor)

reads 0 for "no better than free", 1 for "as good as the oracle", and < 0 below the floor. NMSE-like
metrics (``MetricSpec.scale == "log"``) are compared in dB, so a gain is a fraction of the oracle's
improvement in dB; dB metrics (SI-SDR) and plain scores are compared as they are. See
``docs/integrity.md`` for why the trivial baselines alone were not enough.
"""
from __future__ import annotations

import math
from typing import Literal

Scale = Literal["linear", "log", "db"]

FLOOR_PREFIXES = ("baseline_", "floor_")  # every trivial baseline is a floor too
CEILING_PREFIX = "ceiling_"


def on_gain_scale(value: float, scale: Scale) -> float:
    """The value on the scale gains are measured on: dB of the value for ``log`` metrics."""
    if scale == "log":
        return 10.0 * math.log10(max(value, 1e-30))
    return value


def best(values: dict[str, float], mode: str) -> tuple[str, float] | None:
    """The best (name, value) of ``values`` for ``mode`` (finite values only), or None."""
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return None
    pick = min if mode == "min" else max
    name = pick(finite, key=finite.__getitem__)
    return name, finite[name]


def captured_gain(model: float, floor: float, ceiling: float, scale: Scale) -> float | None:
    """Fraction of the floor-to-ceiling gap the model closes (signed; None where the gap is empty)."""
    m, f, c = (on_gain_scale(v, scale) for v in (model, floor, ceiling))
    gap = c - f
    if not all(math.isfinite(v) for v in (m, f, c)) or abs(gap) < 1e-12:
        return None
    return (m - f) / gap


def split(extra: dict[str, float], metric: str) -> tuple[dict[str, float], dict[str, float]]:
    """Floors and ceilings on ``metric`` (no ``val/`` prefix) from validation means keyed
    ``baseline_<name>_<metric>``, ``floor_<name>_<metric>`` or ``ceiling_<name>_<metric>``."""
    floors: dict[str, float] = {}
    ceilings: dict[str, float] = {}
    suffix = f"_{metric}"
    for key, v in extra.items():
        if not key.endswith(suffix):
            continue
        for prefix in FLOOR_PREFIXES:
            if key.startswith(prefix):
                floors[key[len(prefix):-len(suffix)]] = v
        if key.startswith(CEILING_PREFIX):
            ceilings[key[len(CEILING_PREFIX):-len(suffix)]] = v
    return floors, ceilings


def gain_metrics(extra: dict[str, float], model_value: float | None, metric: str, mode: str,
                 scale: Scale, reference: str = "") -> dict[str, float]:
    """``floor_<name>``, ``ceiling_<name>`` and ``captured_gain`` (no ``val/`` prefix).

    ``reference`` names the ceiling the gain is measured against (empty: the best ceiling). No gain is
    returned without a floor, a ceiling or a model value.
    """
    floors, ceilings = split(extra, metric)
    out = {f"floor_{k}": v for k, v in floors.items()}
    out.update({f"ceiling_{k}": v for k, v in ceilings.items()})
    top_floor = best(floors, mode)
    if reference:
        top_ceiling = (reference, ceilings[reference]) if reference in ceilings else None
    else:
        top_ceiling = best(ceilings, mode)
    if model_value is None or top_floor is None or top_ceiling is None:
        return out
    gain = captured_gain(model_value, top_floor[1], top_ceiling[1], scale)
    if gain is not None:
        out["captured_gain"] = gain
    return out


def below_floor(best_value: float | None, floors: dict[str, float], mode: str) -> str:
    """A message when the best checkpoint's value is worse than the best floor, else ''."""
    top = best(floors, mode)
    if best_value is None or top is None or not math.isfinite(best_value):
        return ""
    worse = best_value > top[1] if mode == "min" else best_value < top[1]
    if not worse:
        return ""
    return (f"the best checkpoint ({best_value:.4g}) is worse than the floor {top[0]!r} ({top[1]:.4g}), "
            f"an estimator that needs no training")
