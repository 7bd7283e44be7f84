"""The compression analysis: recovers the generator's groups, orders them by dimensionality, each
strategy moves the ratios with its characteristic, and the cache is hit on the second call (Ray task)."""
from __future__ import annotations

import json

import pytest
from scipy.stats import spearmanr

from mlplatform.families.vqvae import features as feat
from mlplatform.families.vqvae.analysis import report
from mlplatform.families.vqvae.analysis.runner import AnalysisParams, analyze
from mlplatform.families.vqvae.analysis.strategies import STRATEGIES, compute_ratios, score


def _col_to_group(truth):
    return {c: g for g, v in truth["groups"].items() for c in v["columns"]}


def test_recovers_groups_and_orders_them_by_dimensionality(small_table, tmp_path):
    path, truth = small_table
    res = analyze(path, ["balanced"], AnalysisParams(), tmp_path / "cache")["balanced"]
    c2g = _col_to_group(truth)
    assert res["category_info"]["n_categories"] == len(truth["groups"])  # count found from the data
    matched = {}
    for cat, cols in res["categories"].items():
        groups = {c2g[c] for c in cols}
        assert len(groups) == 1, f"{cat} mixes groups {groups}"
        matched[groups.pop()] = cat
    assert set(matched) == set(truth["groups"])
    assert set(res["cleaning"]["dropped"]) == set(truth["junk"])
    true_dim = [truth["groups"][g]["intrinsic_dim"] for g in matched]
    ch = res["characteristics"]
    comps = [ch[matched[g]]["n_components"] for g in matched]
    order_true = sorted(matched, key=lambda g: truth["groups"][g]["intrinsic_dim"])
    order_found = sorted(matched, key=lambda g: (ch[matched[g]]["n_components"], ch[matched[g]]["dimensionality"]))
    assert order_found == order_true, (true_dim, comps)
    # variance score follows the generator's scales (raw, not standardised: the note's 1.000 column)
    rho = spearmanr([truth["groups"][g]["variance"] for g in matched], [ch[matched[g]]["variance"] for g in matched])
    assert rho.statistic > 0.99


def test_config_category_count_is_honoured(small_table, tmp_path):
    path, _ = small_table
    res = analyze(path, ["balanced"], AnalysisParams(n_categories=3), tmp_path / "c")["balanced"]
    assert res["category_info"]["n_categories"] == 3 and res["category_info"]["chosen_by"] == "config"


def _chars(**over):
    base = {"n_features": 10, "variance": 0.5, "dimensionality": 0.5, "information": 0.5, "correlation": 0.5}
    return {"lo": {**base, **{k: v[0] for k, v in over.items()}}, "hi": {**base, **{k: v[1] for k, v in over.items()}}}


@pytest.mark.parametrize("strategy,characteristic,lo,hi", [
    ("variance", "variance", 0.1, 0.9),
    ("dimensionality", "dimensionality", 0.1, 0.9),
    ("information", "information", 0.2, 0.95),
    ("balanced", "dimensionality", 0.1, 0.9),
    ("balanced", "correlation", 0.9, 0.1),  # redundant (highly correlated) categories compress more
])
def test_each_strategy_moves_ratios_with_its_characteristic(strategy, characteristic, lo, hi):
    ch = _chars(**{characteristic: (lo, hi)})
    r = compute_ratios(ch, strategy)
    assert all(h > l for l, h in zip(r["lo"], r["hi"])), r
    assert r["lo"][0] < r["lo"][1] < r["lo"][2]  # L0 coarse .. L2 fine
    # characteristics a strategy ignores do not move its ratios
    if strategy != "balanced":
        other = next(c for c in ("variance", "dimensionality", "information") if c != characteristic)
        r2 = compute_ratios(_chars(**{other: (0.1, 0.9)}), strategy)
        assert r2["lo"] == r2["hi"]
    u = compute_ratios(ch, "uniform")
    assert u["lo"] == u["hi"]


def test_strategies_on_real_table_follow_their_characteristic(small_table, tmp_path):
    path, _ = small_table
    res = analyze(path, list(STRATEGIES), AnalysisParams(), tmp_path / "cache")
    for s in ("variance", "dimensionality"):
        ch = res[s]["characteristics"]
        cats = list(ch)
        rho = spearmanr([score(ch[c], s) for c in cats], [res[s]["ratios"][c][2] for c in cats]).statistic
        assert rho > 0.9, (s, rho)


def test_analysis_runs_as_ray_task_and_cache_is_hit(small_table, tmp_path, ray_session):
    path, _ = small_table
    cache_root = tmp_path / "cache"
    first = analyze(path, ["balanced", "variance"], AnalysisParams(), cache_root)
    assert not first["balanced"]["cached"] and not first["variance"]["cached"]
    made = {s: json.loads((tmp_path / "cache" / r["cache_dir"].split("/")[-1] / "manifest.json").read_text())["created"]
            for s, r in first.items()}
    n_entries = len(list(cache_root.iterdir()))
    second = analyze(path, ["balanced", "variance"], AnalysisParams(), cache_root)
    assert second["balanced"]["cached"] and second["variance"]["cached"]
    assert second["balanced"]["ratios"] == first["balanced"]["ratios"]
    assert len(list(cache_root.iterdir())) == n_entries
    for s, r in second.items():
        assert json.loads((cache_root / r["cache_dir"].split("/")[-1] / "manifest.json").read_text())["created"] == made[s]
    # other parameters are another cache entry; the same profile is reused for a new strategy
    third = analyze(path, ["dimensionality"], AnalysisParams(), cache_root)
    assert not third["dimensionality"]["cached"]
    assert third["dimensionality"]["categories"] == first["balanced"]["categories"]
    other = analyze(path, ["balanced"], AnalysisParams(scale_max=2.0), cache_root)
    assert not other["balanced"]["cached"]


def test_bad_table_error_surfaces_from_ray_task(tmp_path, ray_session):
    import numpy as np
    import pandas as pd

    p = feat.write_table(pd.DataFrame({"a": np.arange(4.0), "dead": np.nan}), tmp_path / "bad.parquet")
    with pytest.raises(feat.FeatureTableError, match="'dead'"):
        analyze(p, ["balanced"], AnalysisParams(), tmp_path / "cache")


def test_report_writes_json_markdown_and_plot(small_table, tmp_path):
    path, _ = small_table
    res = analyze(path, ["balanced"], AnalysisParams(), tmp_path / "cache")["balanced"]
    files = report.write(res, tmp_path / "out")
    assert [f.suffix for f in files] == [".json", ".md", ".png"] and all(f.stat().st_size > 0 for f in files)
    md = files[1].read_text()
    assert "Ratios (L0/L1/L2)" in md and "temporal_duplicate" in md


def test_full_size_table_is_not_over_split(tmp_path):
    """At the full preset's size (100k rows, 20k sampled) the silhouette plateaus from 6 to 23
    categories; the analysis must take the start of the plateau (the generator's groups), not split
    groups into tighter sub-groups."""
    df, truth = feat.generate(100_000, seed=7)
    path = feat.write_table(df, tmp_path / "t" / "part-00000.parquet").parent
    res = analyze(path, ["balanced"], AnalysisParams(seed=7), tmp_path / "cache")["balanced"]
    c2g = _col_to_group(truth)
    assert res["category_info"]["n_categories"] == len(truth["groups"])
    assert all(len({c2g[c] for c in cols}) == 1 for cols in res["categories"].values())
