"""Strategies: per-category characteristics -> compression ratios for levels L0/L1/L2.

A ratio is the size of a category's latent at one level relative to its number of features
(``latent = max(1, round(ratio · n_features))``), so it never depends on a hard-coded dimension.
Each strategy turns the characteristics into one score ``s ∈ [0, 1]`` ("how much capacity does this
category need") and scales the base ratios by ``scale_min + (scale_max - scale_min) · s``:

- ``variance``: higher raw variance -> more capacity (large-scale features dominate a raw MSE).
- ``dimensionality``: more PCA components for 95% -> more capacity.
- ``information``: higher entropy -> more capacity.
- ``balanced``: the mean of the three scores and of ``1 - correlation`` (redundant categories compress).
- ``uniform``: every category gets the base ratios (the baseline every strategy is compared against).
"""
from __future__ import annotations

from typing import Any

STRATEGIES = ("variance", "dimensionality", "information", "balanced")
ALL_STRATEGIES = STRATEGIES + ("uniform",)
DEFAULT_BASE_RATIOS = (0.3, 0.85, 1.9)  # balanced ratios, L0 (coarse) .. L2 (fine): coarse levels compress, fine ones expand


def score(ch: dict[str, float], strategy: str) -> float:
    """The capacity score in [0, 1] of one category under ``strategy``."""
    if strategy == "variance":
        return float(ch["variance"])
    if strategy == "dimensionality":
        return float(ch["dimensionality"])
    if strategy == "information":
        return float(ch["information"])
    if strategy == "balanced":
        return float((ch["variance"] + ch["dimensionality"] + ch["information"] + (1.0 - ch["correlation"])) / 4)
    if strategy == "uniform":
        return 0.5
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(ALL_STRATEGIES)}")


def compute_ratios(characteristics: dict[str, dict[str, float]], strategy: str,
                   base_ratios: tuple[float, ...] | list[float] = DEFAULT_BASE_RATIOS,
                   scale_min: float = 0.5, scale_max: float = 1.5) -> dict[str, list[float]]:
    """{category: [r0, r1, r2]} rounded to 2 decimals (at least 0.01)."""
    if strategy == "uniform":
        return {c: [round(float(b), 2) for b in base_ratios] for c in characteristics}
    out = {}
    for cat, ch in characteristics.items():
        m = scale_min + (scale_max - scale_min) * min(1.0, max(0.0, score(ch, strategy)))
        out[cat] = [max(0.01, round(float(b) * m, 2)) for b in base_ratios]
    return out


def latent_dims(n_features: int, ratios: list[float]) -> list[int]:
    """Latent size per level for a category of ``n_features``: ``max(1, round(r · n))``."""
    return [max(1, int(round(r * n_features))) for r in ratios]


def describe_strategy(strategy: str) -> str:
    return (__doc__ or "").split(f"``{strategy}``:")[-1].split("\n")[0].strip() if strategy in ALL_STRATEGIES else ""


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the "Computed Adaptive Ratios" table: per category, its score and ratios."""
    rows = []
    for cat, ch in result["characteristics"].items():
        rows.append({"category": cat, "features": ch["n_features"], "variance": ch["variance"],
                     "dimensionality": ch["dimensionality"], "information": ch["information"],
                     "correlation": ch["correlation"], "ratios": result["ratios"][cat]})
    return rows
