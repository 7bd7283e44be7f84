"""Category discovery and per-category feature characteristics (docs/families/vqvae.md, "Data and the analysis").

Categories are found by hierarchical clustering on the correlation distance ``1 - |corr|`` (average
linkage); their count comes from the config or, when 0, from the data (the start of the silhouette
plateau on that distance: the fewest categories within 0.02 of the best silhouette). Per category we measure:

- ``variance``: mean raw (unstandardised) feature variance, as a score in [0, 1] on a log10 scale
  across categories. Measured *after* standardisation it is 1.000 for every category and carries
  no information. Here it is measured on the raw imputed values.
- ``dimensionality``: share of PCA components (standardised features) needed for 95% of the variance.
- ``information``: mean normalised histogram entropy of the features (1 = uniform over the bins).
- ``correlation``: mean |corr| between distinct features of the category (redundancy).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def correlation_distance(x_std: np.ndarray) -> np.ndarray:
    """Shape: [N, P] standardised -> [P, P] distance ``1 - |corr|`` with a zero diagonal."""
    c = np.corrcoef(x_std, rowvar=False)
    c = np.nan_to_num(np.atleast_2d(c), nan=0.0)
    d = 1.0 - np.abs(c)
    np.fill_diagonal(d, 0.0)
    return np.clip((d + d.T) / 2, 0.0, 1.0)


def discover_categories(x_std: np.ndarray, columns: list[str], n_categories: int = 0,
                        max_categories: int = 24, tolerance: float = 0.02) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Cluster columns into categories. Returns ({cluster_i: [columns]}, info).

    Categories are named ``cluster_1..K`` in the order of their first column in the table, so the
    names are stable for a given table and clustering.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    p = x_std.shape[1]
    if p != len(columns):
        raise ValueError(f"{p} data columns but {len(columns)} names")
    info: dict[str, Any] = {"method": "average-linkage on 1-|corr|"}
    if p == 1:
        return {"cluster_1": list(columns)}, {**info, "n_categories": 1, "chosen_by": "single column"}
    dist = correlation_distance(x_std)
    tree = linkage(squareform(dist, checks=False), method="average")
    if n_categories > 0:
        k = min(n_categories, p)
        labels = fcluster(tree, k, criterion="maxclust")
        info["chosen_by"] = "config"
    else:
        scores: dict[int, float] = {}
        labs: dict[int, np.ndarray] = {}
        for k in range(2, min(max_categories, p - 1) + 1):
            lab = fcluster(tree, k, criterion="maxclust")
            n = len(set(lab))
            if n < 2 or n in scores:
                continue
            scores[n] = round(float(silhouette_score(dist, lab, metric="precomputed")), 4)
            labs[n] = lab
        if scores:
            # the silhouette of average linkage plateaus once the true groups are found (splitting a
            # group into tighter sub-groups scores about the same): take the FEWEST categories within
            # `tolerance` of the best score, i.e. the start of the plateau
            top = max(scores.values())
            k_best = min(n for n, v in scores.items() if v >= top - tolerance)
            labels = labs[k_best]
        else:
            labels = np.ones(p, dtype=int)
        info["chosen_by"] = f"silhouette (fewest categories within {tolerance} of the best)"
        info["silhouette"] = {str(k): v for k, v in scores.items()}
    first: dict[int, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(int(lab), i)
    ordered = sorted(first, key=first.get)
    cats = {f"cluster_{j + 1}": [columns[i] for i in range(p) if labels[i] == lab] for j, lab in enumerate(ordered)}
    info["n_categories"] = len(cats)
    return cats, info


def pca_share(x_std: np.ndarray, threshold: float = 0.95) -> tuple[int, float]:
    """(components needed for ``threshold`` of the variance, that count / n_features)."""
    p = x_std.shape[1]
    if p == 1:
        return 1, 1.0
    ev = np.linalg.eigvalsh(np.cov(x_std, rowvar=False))[::-1].clip(min=0)
    frac = np.cumsum(ev) / max(ev.sum(), 1e-12)
    n = int(np.searchsorted(frac, threshold - 1e-9) + 1)
    n = min(n, p)
    return n, n / p


def entropy_score(x: np.ndarray, bins: int = 32) -> float:
    """Mean normalised histogram entropy over columns, in [0, 1]. Bins span the 0.5-99.5 percentiles."""
    out = []
    for j in range(x.shape[1]):
        v = x[:, j]
        lo, hi = np.percentile(v, [0.5, 99.5])
        if hi <= lo:
            out.append(0.0)
            continue
        h, _ = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
        pr = h[h > 0] / h.sum()
        out.append(float(-(pr * np.log(pr)).sum() / np.log(bins)))
    return float(np.mean(out))


def mean_abs_corr(x_std: np.ndarray) -> float:
    p = x_std.shape[1]
    if p == 1:
        return 0.0  # no pair to be redundant with
    c = np.abs(np.nan_to_num(np.corrcoef(x_std, rowvar=False)))
    return float((c.sum() - np.trace(c)) / (p * (p - 1)))


def characterize(x_raw: np.ndarray, x_std: np.ndarray, columns: list[str], categories: dict[str, list[str]],
                 pca_variance: float = 0.95, entropy_bins: int = 32) -> dict[str, dict[str, float]]:
    """Per-category characteristics (all scores in [0, 1]). Shapes: x_raw, x_std [N, P]."""
    idx = {c: i for i, c in enumerate(columns)}
    out: dict[str, dict[str, float]] = {}
    for name, cols in categories.items():
        j = [idx[c] for c in cols]
        n95, share = pca_share(x_std[:, j], pca_variance)
        out[name] = {
            "n_features": len(j),
            "variance_raw": float(np.mean(x_raw[:, j].var(0))),
            "n_components": n95,
            "dimensionality": round(share, 4),
            "information": round(entropy_score(x_raw[:, j], entropy_bins), 4),
            "correlation": round(mean_abs_corr(x_std[:, j]), 4),
        }
    logv = {k: np.log10(max(v["variance_raw"], 1e-300)) for k, v in out.items()}
    lo, hi = min(logv.values()), max(logv.values())
    for k, v in out.items():
        v["variance"] = round(float((logv[k] - lo) / (hi - lo)) if hi > lo else 1.0, 4)
    return out
