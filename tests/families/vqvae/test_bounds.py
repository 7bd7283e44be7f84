"""vqvae at the research model's scale, tested small: the `note` generator's per-category error spread,
the PCA reference and the unquantised ceiling (with captured gain), and the held-out codebook-usage alarm."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlplatform.data import cache
from mlplatform.families.vqvae import bounds as B
from mlplatform.families.vqvae import features as feat
from mlplatform.families.vqvae.metrics import codebook_stats
from mlplatform.integrity.monitor import Monitor, fresh_state
from mlplatform.registry import build_config, get_family
from mlplatform.train.executors import run_local

SMALL = ["data.n_rows=3000", "data.analysis_rows=3000", "train.epochs=2", "train.val_batches=2"]


def test_note_generator_starves_large_categories_under_one_uniform_ratio():
    df, truth = feat.generate(3000, seed=0, groups=feat.NOTE_GROUPS)
    groups = truth["groups"]
    sizes = sorted(len(g["columns"]) for g in groups.values())
    assert len(groups) == 12 and sizes[0] == 5 and sizes[-1] == 33  # the research model's category sizes
    assert max(g["variance"] for g in groups.values()) / min(g["variance"] for g in groups.values()) >= 1e8
    cl = feat.clean(df)
    x = cl.apply(df)
    col = {c: i for i, c in enumerate(cl.kept)}
    err = {}
    for name, g in groups.items():  # one uniform latent share (30%, the coarse level) per category
        xc = torch.from_numpy(x[:, [col[c] for c in g["columns"] if c in col]]).double()
        _, _, vh = torch.linalg.svd(xc - xc.mean(0), full_matrices=False)
        v = vh[: max(1, round(0.3 * xc.shape[1]))].T
        err[name] = float(((xc - xc.mean(0)) @ (torch.eye(xc.shape[1], dtype=xc.dtype) - v @ v.T)).pow(2).mean())
    assert max(err.values()) / min(err.values()) >= 1e3  # the errors span three orders of magnitude or more
    assert max(err, key=err.get) in ("temporal_a", "temporal_b")  # a near-full-rank group is the worst


def test_pca_reference_with_every_component_is_exact(home):
    cfg = build_config("vqvae", "debug", SMALL + ["model.compression_ratios={c: [1.0, 1.0, 1.0]}"])
    from mlplatform.families.vqvae import data as D

    get_family("vqvae").prepare_data(cfg.override(["train.integrity=false"]))
    lay = D.layout(cfg.override(["model.compression_ratios=uniform"]))
    full = cfg.override({"model.compression_ratios": {c: [1.0, 1.0, 1.0] for c in lay.categories}})
    x, _ = D.load_matrix(full)
    xb = torch.from_numpy(x[:64])
    assert torch.allclose(B.pca_reconstruct(full, xb), xb, atol=1e-4)
    coarse = B.pca_reconstruct(cfg.override(["model.compression_ratios=uniform"]), xb)
    assert float((coarse - xb).pow(2).mean()) > 1e-3  # 30% of the components lose information


def test_raw_scales_option_keeps_the_tables_scales_and_its_own_ceiling(home):
    """``data.standardize=false`` (the research baseline's setting) trains on the raw columns; its ceiling
    is cached apart from the standardised one, whose cache key does not change with the option's arrival."""
    from mlplatform.families.vqvae import data as D

    cfg = build_config("vqvae", "debug", SMALL + ["train.integrity=false"])
    get_family("vqvae").prepare_data(cfg)
    raw = cfg.override(["data.standardize=false"])
    x, _ = D.load_matrix(cfg)
    xr, _ = D.load_matrix(raw)
    assert x.shape == xr.shape and np.allclose(x.std(0), 1.0, atol=1e-2)
    sd = xr.std(0)
    assert sd.max() / sd.min() > 100  # the generated groups' scales differ by orders of magnitude
    assert B.ceiling_dir(raw) != B.ceiling_dir(cfg)
    d = B.ceiling_config(cfg).to_dict()
    assert "standardize" in d["data"] and "standardize" not in B._ceiling_key(cfg)["data"]


def test_floor_ceiling_and_captured_gain_logged_and_ceiling_cached(home):
    cfg = build_config("vqvae", "debug", SMALL)
    summary, rep = run_local({"family": "vqvae", "cfg": cfg.to_dict()})
    m = rep.history[-1]
    for k in ("val/reference_pca", "val/ceiling_unquantised", "val/captured_gain", "val/floor_feature_mean"):
        assert k in m and np.isfinite(m[k]), k
    assert m["val/ceiling_unquantised"] < m["val/floor_feature_mean"]  # the ceiling learnt something
    folder = B.ceiling_dir(cfg)
    assert (folder / "best" / "state.pt").exists() and (folder / cache.MANIFEST).exists()
    stamp = folder.stat().st_mtime_ns
    assert B.ensure_ceiling(cfg.override(["model.auto_compression_strategy=variance"]), get_family("vqvae")) == folder / "best"
    assert folder.stat().st_mtime_ns == stamp  # another strategy reuses the same ceiling: trained once


def _usage(freqs: list[float]) -> float:
    return codebook_stats({("cluster_1", lv): freqs for lv in range(3)})["codebook_utilization"]


@pytest.mark.parametrize("collapsed", [True, False])
def test_usage_alarm_fires_on_a_collapsed_codebook_only(collapsed):
    cfg = build_config("vqvae", "debug")
    fam = get_family("vqvae")
    k = cfg.model.codebook_sizes[0]
    # collapsed: 3 codes of 16 take every held-out item; healthy: all used, mildly skewed
    freqs = [0.5, 0.3, 0.2] + [0.0] * (k - 3) if collapsed else list(np.linspace(1.0, 2.0, k) / np.linspace(1.0, 2.0, k).sum())
    util = _usage(freqs)
    assert (util < 0.5) == collapsed
    mon = Monitor(fam, cfg, fam.guards(cfg), fam.selection_metric, fam.mode)
    state, events = fresh_state(), []
    for epoch in range(cfg.train.guard_patience):
        events += mon.update(state, {"val/codebook_utilization": util, "val/recon_error": 0.5}, epoch, None, [])
    names = [e.name for e in events]
    assert ("guard:codebook_utilization" in names) == collapsed
    if collapsed:
        assert "20%" in events[0].message  # the reason names the research baseline's usage
