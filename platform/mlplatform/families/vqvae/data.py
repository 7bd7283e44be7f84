"""vqvae data: the feature table (generated with known structure, or any Parquet table by path), the
cached compression analysis, and the layout (categories, ratios, latent sizes) resolved at run time.

``prepare_data`` runs on the driver: it generates the table once (a Ray task) and computes the analysis
for EVERY strategy once (one Ray task), so a sweep over ``model.auto_compression_strategy`` never
recomputes it per trial; trials and ``build_model`` only read the cache.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplatform.config import ConfigError
from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.data.batching import iterate
from mlplatform.families.vqvae import features as feat
from mlplatform.families.vqvae.analysis.runner import AnalysisParams, analyze
from mlplatform.families.vqvae.analysis.strategies import STRATEGIES, compute_ratios, latent_dims
from mlplatform.paths import repo_root
from mlplatform.protocol import DataContext, Datasets

TABLE_DIR = "table"
TRUTH_FILE = "ground_truth.json"


def data_root(cfg: Any) -> Path:
    return Path(cfg.data.root) if cfg.data.root else repo_root() / "data" / "vqvae"


def generated_dir(cfg: Any) -> Path:
    key: dict[str, Any] = {"n_rows": cfg.data.n_rows, "seed": cfg.data.seed}
    if cfg.data.generator != "six":  # the six-group key predates the choice: its caches stay valid
        key["generator"] = cfg.data.generator
    return data_root(cfg) / f"features-{cache.fingerprint(key, feat.GENERATOR_VERSION)}"


def _generate(n_rows: int, seed: int, out: str, generator: str = "six") -> int:
    df, truth = feat.generate(n_rows, seed, feat.GENERATORS[generator])
    feat.write_table(df, Path(out) / TABLE_DIR / "part-00000.parquet")
    (Path(out) / TRUTH_FILE).write_text(json.dumps(truth, indent=1))
    return len(df)


def ensure_table(cfg: Any) -> Path:
    """The table's path: ``data.table`` if set, else the generated table (built once, by a Ray task)."""
    if cfg.data.table:
        p = Path(cfg.data.table)
        if not p.exists():
            raise ConfigError(f"data.table: {p} does not exist (give a Parquet file or folder, or leave it empty)")
        return p
    folder = generated_dir(cfg)

    def build(tmp: Path) -> dict[str, Any]:
        ray = ray_if_up()  # None: build here (Ray not started or not installed)

        n, seed, gen = cfg.data.n_rows, cfg.data.seed, cfg.data.generator
        print(f"[data] generating a {n}-row feature table ({gen} groups) with known structure -> {folder}", flush=True)
        rows = (ray.get(ray.remote(num_cpus=1)(_generate).remote(n, seed, str(tmp), gen)) if ray is not None
                else _generate(n, seed, str(tmp), gen))
        return {"family": "vqvae", "generator": feat.GENERATOR_VERSION, "groups": gen, "rows": rows, "seed": seed,
                "table": TABLE_DIR, "ground_truth": TRUTH_FILE}

    cache.build_once(folder, build)
    return folder / TABLE_DIR


def analysis_params(cfg: Any) -> AnalysisParams:
    d, m = cfg.data, cfg.model
    return AnalysisParams(n_categories=d.n_categories, max_nan_frac=d.max_nan_frac, analysis_rows=d.analysis_rows,
                          pca_variance=d.pca_variance, entropy_bins=d.entropy_bins, seed=d.seed,
                          base_ratios=tuple(m.base_ratios), scale_min=m.ratio_scale_min, scale_max=m.ratio_scale_max)


def analysis_root(cfg: Any) -> Path:
    return data_root(cfg) / "analysis"


def run_all_analyses(cfg: Any) -> dict[str, dict[str, Any]]:
    return analyze(ensure_table(cfg), list(STRATEGIES), analysis_params(cfg), analysis_root(cfg))


def prepare_data(cfg: Any) -> dict[str, Any]:
    """Table once + the analysis of every strategy once (Ray tasks); returns a summary."""
    table = ensure_table(cfg)
    res = run_all_analyses(cfg)
    any_r = next(iter(res.values()))
    return {"path": str(table), "categories": any_r["category_info"]["n_categories"],
            "dropped": any_r["cleaning"]["dropped"], "n_rows": any_r["n_rows"],
            "analysis": {s: {"cache_dir": r["cache_dir"], "cached": r["cached"], "ratios": r["ratios"]}
                         for s, r in res.items()}}


@dataclass(frozen=True)
class Layout:
    """Everything the model's shape depends on, inferred from the data and the analysis."""

    categories: tuple[str, ...]
    columns: tuple[tuple[str, ...], ...]  # per category, in the analysis' order
    ratios: tuple[tuple[float, ...], ...]
    latent_dims: tuple[tuple[int, ...], ...]
    strategy: str  # "uniform", a strategy name, or "explicit"

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.columns]


def _strategy_of(cfg: Any) -> str:
    cr = cfg.model.compression_ratios
    if isinstance(cr, dict):
        return "explicit"
    if cr == "uniform" or cfg.model.auto_compression_strategy == "uniform":
        return "uniform"
    return cfg.model.auto_compression_strategy


def analysis_result(cfg: Any) -> dict[str, Any]:
    """The cached analysis this run uses (the profile is shared by all strategies)."""
    s = _strategy_of(cfg)
    key = s if s in STRATEGIES else "balanced"
    return analyze(ensure_table(cfg), [key], analysis_params(cfg), analysis_root(cfg))[key]


@functools.lru_cache(maxsize=16)
def _layout(cfg_json: str) -> Layout:
    from mlplatform.families.vqvae.config import VqvaeConfig

    cfg = VqvaeConfig.from_dict(json.loads(cfg_json))
    res = analysis_result(cfg)
    s = _strategy_of(cfg)
    cats = list(res["categories"])
    if s == "explicit":
        given = cfg.model.compression_ratios
        unknown = sorted(set(given) - set(cats))
        missing = [c for c in cats if c not in given]
        if unknown or missing:
            raise ConfigError(f"model.compression_ratios: categories of this table are {', '.join(cats)}; "
                              f"unknown {unknown or '[]'}, missing {missing or '[]'}")
        ratios = {c: list(given[c]) for c in cats}
    elif s == "uniform":
        ratios = compute_ratios(res["characteristics"], "uniform", cfg.model.base_ratios)
    else:
        ratios = res["ratios"]
    cols = tuple(tuple(res["categories"][c]) for c in cats)
    return Layout(tuple(cats), cols, tuple(tuple(ratios[c]) for c in cats),
                  tuple(tuple(latent_dims(len(cc), ratios[c])) for c, cc in zip(cats, cols)), s)


def layout(cfg: Any) -> Layout:
    return _layout(json.dumps(cfg.to_dict(), sort_keys=True, default=str))


def load_matrix(cfg: Any) -> tuple[np.ndarray, Layout]:
    """The cleaned, imputed table (standardised unless ``data.standardize=false``) with columns grouped by
    category. Shape: [N, P]."""
    lay = layout(cfg)
    res = analysis_result(cfg)
    cleaning = feat.Cleaning.from_dict(res["cleaning"])
    x = cleaning.apply(feat.read_table(ensure_table(cfg)), standardize=cfg.data.standardize)
    idx = {c: i for i, c in enumerate(cleaning.kept)}
    order = [idx[c] for cols in lay.columns for c in cols]
    return x[:, order], lay


def split_indices(n: int, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_frac)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def build_datasets(cfg: Any, ctx: DataContext) -> Datasets:
    x, lay = load_matrix(cfg)
    tr, va = split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    train = {"x": torch.from_numpy(x[tr])}
    val = {"x": torch.from_numpy(x[va])}
    bs = cfg.train.batch_size
    return Datasets(
        train_batches=lambda epoch: iterate(train, bs, shuffle=True, seed=cfg.train.seed * 100_003 + epoch,
                                            rank=ctx.rank, world_size=ctx.world_size, drop_last=True),
        val_batches=lambda: iterate(val, bs, shuffle=False),
        info={"n_train": len(tr), "n_val": len(va), "categories": list(lay.categories), "strategy": lay.strategy},
    )
