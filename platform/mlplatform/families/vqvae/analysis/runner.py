"""The "auto" compression analysis as a cached Ray task.

Two cache entries, both fingerprinted folders with a manifest (``mlplatform.data.cache`` conventions):

- ``profile-<fp(data, profile params)>``: cleaning report, discovered categories, characteristics.
  Strategy-independent, so every strategy (and ``jobs/compare_compression.py``) sees the *same*
  cleaning and the *same* clustering of the same sample.
- ``<strategy>-<fp(data, strategy, all params)>``: the ratios of one strategy (+ the profile).

``analyze`` checks the cache on the driver; only what is missing is computed, in ONE Ray task (or in
process when Ray is not initialised, e.g. a worker on a fresh node). A sweep over strategies calls it
once for all strategies before the trials (``vqvae`` family's ``prepare_data``); trials only read.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.families.vqvae import features as feat
from mlplatform.families.vqvae.analysis.characteristics import characterize, discover_categories
from mlplatform.families.vqvae.analysis.strategies import ALL_STRATEGIES, DEFAULT_BASE_RATIOS, compute_ratios

ANALYSIS_VERSION = "vqvae-analysis-2"
RESULT_FILE = "analysis.json"
PROFILE_FIELDS = ("n_categories", "max_nan_frac", "analysis_rows", "pca_variance", "entropy_bins", "seed")


@dataclass(frozen=True)
class AnalysisParams:
    n_categories: int = 0  # 0 = choose the count from the data (silhouette)
    max_nan_frac: float = 0.5  # drop columns with more NaN than this
    analysis_rows: int = 20000  # rows sampled (seeded) for clustering and characteristics
    pca_variance: float = 0.95
    entropy_bins: int = 32
    seed: int = 0
    base_ratios: tuple[float, ...] = DEFAULT_BASE_RATIOS
    scale_min: float = 0.5
    scale_max: float = 1.5

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["base_ratios"] = [float(r) for r in self.base_ratios]
        return d

    def profile_key(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PROFILE_FIELDS}


def profile_dir(cache_root: str | Path, data_fp: str, params: AnalysisParams) -> Path:
    return Path(cache_root) / f"profile-{cache.fingerprint({'data': data_fp, **params.profile_key()}, ANALYSIS_VERSION)}"


def strategy_dir(cache_root: str | Path, data_fp: str, strategy: str, params: AnalysisParams) -> Path:
    key = {"data": data_fp, "strategy": strategy, **params.to_dict()}
    return Path(cache_root) / f"{strategy}-{cache.fingerprint(key, ANALYSIS_VERSION)}"


def compute_profile(table_path: str, params: AnalysisParams) -> dict[str, Any]:
    """Read, validate and clean the table; discover categories; measure their characteristics."""
    df = feat.read_table(table_path)
    cleaning = feat.clean(df, params.max_nan_frac, source=str(table_path))
    x_raw = cleaning.apply(df, standardize=False).astype(np.float64)
    if len(x_raw) > params.analysis_rows:
        rows = np.random.default_rng(params.seed).choice(len(x_raw), params.analysis_rows, replace=False)
        x_raw = x_raw[np.sort(rows)]
    x_std = (x_raw - np.asarray(cleaning.means)) / np.asarray(cleaning.stds)
    cats, info = discover_categories(x_std, cleaning.kept, params.n_categories)
    ch = characterize(x_raw, x_std, cleaning.kept, cats, params.pca_variance, params.entropy_bins)
    return {"table": str(table_path), "n_rows": int(len(df)), "n_columns": int(df.shape[1]),
            "cleaning": cleaning.to_dict(), "categories": cats, "category_info": info, "characteristics": ch}


def _build(folder: Path, make: Any, summary: dict[str, Any]) -> dict[str, Any]:
    def build(tmp: Path) -> dict[str, Any]:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / RESULT_FILE).write_text(json.dumps(make(), indent=1, default=float))
        return dict(summary)
    return cache.build_once(folder, build, log=lambda s: print(s.replace("[data]", "[analysis]"), flush=True))


def _load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / RESULT_FILE).read_text())


def run_analysis(table_path: str, strategies: list[str], params_d: dict[str, Any], cache_root: str,
                 data_fp: str) -> list[str]:
    """The task body: build the profile once, then each strategy's entry. Returns the folders."""
    params = AnalysisParams(**{**params_d, "base_ratios": tuple(params_d["base_ratios"])})
    pdir = profile_dir(cache_root, data_fp, params)
    _build(pdir, lambda: {"data_fingerprint": data_fp, "params": params.profile_key(),
                          **compute_profile(table_path, params)},
           {"kind": "profile", "data_fingerprint": data_fp, "version": ANALYSIS_VERSION})
    profile = _load(pdir)
    out = []
    for s in strategies:
        sdir = strategy_dir(cache_root, data_fp, s, params)

        def make(s: str = s) -> dict[str, Any]:
            ratios = compute_ratios(profile["characteristics"], s, params.base_ratios, params.scale_min, params.scale_max)
            return {**profile, "strategy": s, "params": params.to_dict(), "ratios": ratios}
        _build(sdir, make, {"kind": "strategy", "strategy": s, "data_fingerprint": data_fp, "version": ANALYSIS_VERSION})
        out.append(str(sdir))
    return out


def analyze(table_path: str | Path, strategies: list[str] | tuple[str, ...], params: AnalysisParams,
            cache_root: str | Path) -> dict[str, dict[str, Any]]:
    """{strategy: result} for each strategy; each result carries ``cached`` (True when nothing ran).

    Missing entries are computed in one Ray task when Ray is initialised, else in this process.
    Table errors surface as the one-line ``FeatureTableError`` either way.
    """
    for s in strategies:
        if s not in ALL_STRATEGIES:
            raise feat.FeatureTableError(f"unknown strategy {s!r}; choose one of {', '.join(ALL_STRATEGIES)}")
    table_path = str(table_path)
    data_fp = feat.table_fingerprint(table_path)
    dirs = {s: strategy_dir(cache_root, data_fp, s, params) for s in strategies}
    missing = [s for s, d in dirs.items() if cache.read_manifest(d) is None]
    if missing:
        ray = ray_if_up()  # None: build here (Ray not started or not installed)

        args = (table_path, missing, params.to_dict(), str(cache_root), data_fp)
        if ray is not None:
            print(f"[analysis] computing {', '.join(missing)} for table {data_fp} in a Ray task", flush=True)
            task = ray.remote(num_cpus=1)(run_analysis)
            try:
                ray.get(task.remote(*args))
            except ray.exceptions.RayTaskError as e:
                if isinstance(getattr(e, "cause", None), feat.FeatureTableError):
                    raise feat.FeatureTableError(str(e.cause)) from None
                raise
        else:
            run_analysis(*args)
    out = {}
    for s, d in dirs.items():
        res = _load(d)
        res["cached"] = s not in missing
        res["cache_dir"] = str(d)
        out[s] = res
    return out
