"""vqvae metrics: per-category MSE and relative error, quality, codebook utilisation, dead codes, perplexity.

The loop averages per-sample values, but utilisation and perplexity are functions of the code
*distribution*. ``usage_onehots`` emits, per (category, level, code), a per-sample 0/1 "this sample
used this code"; its mean over the validation items is exactly that code's frequency p_k, from which
``finalize`` derives utilisation (share of codes with p_k > 0), dead codes and perplexity exp(H(p)).
The helper keys start with ``_u/`` and are removed by ``finalize``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch

PREFIX = "_u/"


def usage_onehots(indices: torch.Tensor, categories: list[str], codebook_sizes: list[int]) -> dict[str, torch.Tensor]:
    """Shape: indices [B, C, L] long -> {"_u/<cat>/L<l>/<k>": [B] 0/1} for every code k of every codebook."""
    out = {}
    for ci, cat in enumerate(categories):
        for lv, k in enumerate(codebook_sizes):
            oh = torch.nn.functional.one_hot(indices[:, ci, lv].long(), k).float()  # [B, K]
            for j in range(k):
                out[f"{PREFIX}{cat}/L{lv}/{j}"] = oh[:, j]
    return out


def codebook_stats(freqs: dict[tuple[str, int], list[float]]) -> dict[str, float]:
    """From code frequencies per (category, level): utilisation, dead codes, perplexity, perplexity / K
    and entropy / log K (overall, per level, per category and level). Entropy / log K is 1 for uniform
    use of all K codes; perplexity / K is its exponential counterpart (harsher on a skewed codebook)."""
    out: dict[str, float] = {}
    dead = 0
    per_level: dict[int, list[tuple[float, float, float, float]]] = defaultdict(list)
    for (cat, lv), p in sorted(freqs.items()):
        used = sum(1 for v in p if v > 0)
        tot = sum(p)
        h = -sum((v / tot) * math.log(v / tot) for v in p if v > 0) if tot > 0 else 0.0
        u, perp = used / len(p), math.exp(h)
        out[f"util/{cat}/L{lv}"] = u
        out[f"perplexity/{cat}/L{lv}"] = perp
        dead += len(p) - used
        per_level[lv].append((u, perp, perp / len(p), h / math.log(len(p)) if len(p) > 1 else 1.0))
    if per_level:
        allv = [v for vals in per_level.values() for v in vals]
        for key, i in (("codebook_utilization", 0), ("perplexity", 1), ("perplexity_norm", 2), ("entropy_norm", 3)):
            out[key] = sum(v[i] for v in allv) / len(allv)
            for lv, vals in per_level.items():
                out[f"{key}_L{lv}"] = sum(v[i] for v in vals) / len(vals)
        out["dead_codes"] = float(dead)
        out["total_codes"] = float(sum(len(p) for p in freqs.values()))
    return out


def relative_errors(mse: dict[str, float]) -> dict[str, float]:
    """Each category's MSE relative to the best (lowest) one: the "Relative Error" column of the diagnostics table."""
    best = min(mse.values()) if mse else 0.0
    return {c: (v / best if best > 0 else math.inf if v > 0 else 1.0) for c, v in mse.items()}


def finalize(means: dict[str, float]) -> dict[str, float]:
    out = {k: v for k, v in means.items() if not k.startswith(PREFIX)}
    freqs: dict[tuple[str, int], list[float]] = defaultdict(list)
    for k, v in means.items():
        if k.startswith(PREFIX):
            cat, lv, j = k[len(PREFIX):].rsplit("/", 2)
            freqs[(cat, int(lv[1:]))].append((int(j), v))  # type: ignore[arg-type]
    freqs = {key: [v for _, v in sorted(vals)] for key, vals in freqs.items()}  # type: ignore[misc]
    out.update(codebook_stats(freqs))  # type: ignore[arg-type]
    mse = {k[len("mse/"):]: v for k, v in out.items() if k.startswith("mse/")}
    for c, r in relative_errors(mse).items():
        if math.isfinite(r):
            out[f"rel_error/{c}"] = r
    if mse:
        out["category_mse_spread"] = max(mse.values()) / max(min(mse.values()), 1e-12)
    return out


def full_pass(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> dict[str, Any]:
    """Diagnostics over a whole matrix (``jobs/diagnose.py``, ``compare_compression``): per-category MSE,
    relative error, total recon error, quality, codebook health. Shape: x [N, P]."""
    from mlplatform.families.vqvae.losses import per_category_mse, per_sample_mse

    model.eval()
    cats, ks = model.categories, model.codebook_sizes
    counts = {(c, lv): torch.zeros(k) for c in cats for lv, k in enumerate(ks)}
    se_cat = torch.zeros(len(cats))
    se = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            out = model(xb)
            se += float(per_sample_mse(out["recon"], xb).sum())
            se_cat += per_category_mse(out["recon"], xb, model.sizes).sum(0)
            for ci, c in enumerate(cats):
                for lv, k in enumerate(ks):
                    counts[(c, lv)] += torch.bincount(out["indices"][:, ci, lv], minlength=k).float()
    n = len(x)
    mse = {c: float(se_cat[i]) / n for i, c in enumerate(cats)}
    stats = codebook_stats({key: (v / n).tolist() for key, v in counts.items()})
    return {"recon_error": se / n, "quality": 1.0 - se / n, "mse": mse, "rel_error": relative_errors(mse),
            "dims": dict(zip(cats, model.sizes)), **stats}
