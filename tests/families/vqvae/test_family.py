"""vqvae family: config rules, prepare_data computes every strategy once, debug smoke run, the
codebook-utilisation guard, explicit ratios, the search space."""
from __future__ import annotations

import pytest

from mlplatform.config import ConfigError
from mlplatform.registry import build_config, get_family
from mlplatform.train.executors import run_local

SMALL = ["data.n_rows=3000", "data.analysis_rows=3000", "train.epochs=2", "train.val_batches=2"]


def test_presets_build_and_config_rules():
    fam = get_family("vqvae")
    for name in fam.presets:
        build_config("vqvae", name)
    cfg = build_config("vqvae", "debug", ["model.compression_ratios={cluster_1: [0.2, 0.5, 1.0]}"])
    assert cfg.model.compression_ratios == {"cluster_1": [0.2, 0.5, 1.0]}
    again = fam.config_cls.from_dict(cfg.to_dict())  # checkpoint round trip keeps the mapping
    assert again.model.compression_ratios == {"cluster_1": [0.2, 0.5, 1.0]}
    bad = [("model.compression_ratios=sometimes", "model.compression_ratios"),
           ("model.compression_ratios={cluster_1: [0.2, 0.5]}", "model.compression_ratios.cluster_1"),
           ("model.auto_compression_strategy=magic", "model.auto_compression_strategy"),
           ("model.codebook_sizes=[16, 16]", "model.codebook_sizes")]
    for ov, key in bad:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            build_config("vqvae", "debug", [ov])


def test_prepare_data_computes_every_strategy_once_then_trials_read(home, ray_session):
    from mlplatform.families.vqvae import data as D

    fam = get_family("vqvae")
    cfg = build_config("vqvae", "debug", SMALL)
    info = fam.prepare_data(cfg)
    assert set(info["analysis"]) == {"variance", "dimensionality", "information", "balanced"}
    assert info["categories"] >= 6
    for s in ("variance", "dimensionality", "information", "balanced"):
        trial = cfg.override([f"model.auto_compression_strategy={s}"])
        assert D.analysis_result(trial)["cached"], s  # a trial never recomputes the analysis
    assert fam.prepare_data(cfg)["analysis"]["balanced"]["cached"]
    truth = (D.generated_dir(cfg) / D.TRUTH_FILE)
    assert truth.exists()  # the generator's ground truth sits beside the table


def test_debug_smoke_run_reports_note_metrics(home):
    cfg = build_config("vqvae", "debug", SMALL)
    summary, rep = run_local({"family": "vqvae", "cfg": cfg.to_dict()})
    m = rep.history[-1]
    for k in ("val/recon_error", "val/quality", "val/codebook_utilization", "val/perplexity", "val/dead_codes",
              "val/codebook_utilization_L0", "val/mse/cluster_1", "val/rel_error/cluster_1", "val/util/cluster_1/L2",
              "guard/codebook_utilization", "train/recon", "train/commitment"):
        assert k in m, k
    assert m["val/quality"] == pytest.approx(1 - m["val/recon_error"])
    assert min(v for k, v in m.items() if k.startswith("val/rel_error/")) == pytest.approx(1.0)
    assert m["val/recon_error"] < 1.0  # better than predicting the mean of standardised features
    assert summary["stop_reason"] == "completed"


def test_uniform_and_explicit_ratios_set_latent_sizes(home):
    from mlplatform.families.vqvae import data as D

    cfg = build_config("vqvae", "debug", SMALL + ["model.compression_ratios=uniform"])
    lay = D.layout(cfg)
    assert lay.strategy == "uniform" and len(set(lay.ratios)) == 1
    explicit = {c: [0.1, 0.2, 0.3] for c in lay.categories}
    lay2 = D.layout(cfg.override({"model.compression_ratios": explicit}))
    assert lay2.strategy == "explicit" and all(d[2] == max(1, round(0.3 * n)) for d, n in zip(lay2.latent_dims, lay2.sizes))
    wrong = {**explicit, "cluster_99": [0.1, 0.2, 0.3]}
    with pytest.raises(ConfigError, match="cluster_99"):
        D.layout(cfg.override({"model.compression_ratios": wrong}))


def test_collapsed_codebook_guard_stops_run(home):
    # 512 codes per level cannot all be used by 512 validation rows: utilisation < 0.99 -> guard fires
    cfg = build_config("vqvae", "debug", SMALL + ["model.codebook_sizes=[512, 512, 512]", "train.epochs=3",
                                                  "train.min_codebook_utilization=0.99", "train.guard_patience=1",
                                                  "train.guard_action=stop"])
    summary, rep = run_local({"family": "vqvae", "cfg": cfg.to_dict()})
    assert summary["stop_reason"].startswith("guard:codebook_utilization")
    assert summary["epochs"] == 1 and rep.history[-1]["guard/codebook_utilization"] == 1


def test_search_space_loads():
    from mlplatform.tune.search_space import default_path, load_search_space

    cfg = build_config("vqvae", "debug")
    for space in ("wide", "narrow"):
        sp = load_search_space(default_path("vqvae"), space, cfg, "vqvae", "val/recon_error", "min")
        assert "model.auto_compression_strategy" in sp.tune_domains()
