"""Metric contracts: declared, not exploitable, one direction, one metric for Tune, selection and MLflow."""
from __future__ import annotations

import pytest

import hpo  # jobs/hpo.py
import train  # jobs/train.py
from mlplatform.config import ConfigError
from mlplatform.integrity.contracts import check_contract, check_declarations, selection
from mlplatform.registry import build_config, families, get_family


@pytest.mark.parametrize("name", sorted(families()))
def test_every_family_declares_its_selection_metric_and_a_safe_direction(name):
    fam = get_family(name)
    check_declarations(fam)
    assert selection(fam, build_config(name, "debug")) == (fam.selection_metric, fam.mode)
    assert fam.baselines is not None and fam.probes, "every family declares trivial baselines and probes"
    assert fam.metrics["val/loss"].exploitable, "a weighted loss with swept weights is never a selection metric"


@pytest.mark.parametrize("family,overrides,needle", [
    ("tse", ["train.selection_metric=val/loss"], "refusing to select checkpoints by val/loss"),
    ("tse", ["train.selection_metric=val/ta_energy_db"], "silence minimises it"),
    ("creative", ["train.selection_metric=val/ratio_diversity"], "refusing to select"),
    ("tse", ["train.selection_metric=val/si_sdr_tp", "train.selection_mode=min"], "contradicts its declared direction"),
    ("riscov", ["train.selection_metric=val/nmse_typo"], "is not a declared metric"),
])
def test_bad_selection_is_refused(family, overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        check_contract(get_family(family), build_config(family, "debug", overrides))


def test_a_safe_override_is_accepted_with_its_declared_direction():
    fam = get_family("riscov")
    assert check_contract(fam, build_config("riscov", "debug", ["train.selection_metric=val/doa_rmse_deg"])) == (
        "val/doa_rmse_deg", "min")


def test_tune_metric_must_equal_the_selection_metric():
    fam = get_family("riscov")
    cfg = build_config("riscov", "debug")
    with pytest.raises(ConfigError, match="disagree"):
        check_contract(fam, cfg, "val/doa_rmse_deg", "min")
    with pytest.raises(ConfigError, match="disagree"):
        check_contract(fam, cfg, "val/nmse_blend", "max")


def test_train_job_refuses_selection_by_val_loss_before_ray(capsys, monkeypatch, home):
    import mlplatform.raycluster as rc

    monkeypatch.setattr(rc, "init_ray", lambda *a, **k: pytest.fail("Ray started before the contract check"))
    code = train.main(["--family", "tse", "--set", "train.selection_metric=val/loss"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "refusing to select checkpoints by val/loss" in err


def test_sweeping_the_selection_rule_is_refused(tmp_path, capsys, home):
    space = tmp_path / "space.yaml"
    space.write_text("family: riscov\nmetric: val/nmse_blend\nmode: min\nspaces:\n  wide:\n"
                     "    train.selection_metric: {type: choice, values: [val/nmse_blend, val/doa_rmse_deg]}\n")
    code = hpo.main(["--space-file", str(space), "--storage-path", str(tmp_path / "ray")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot be swept" in err and len(err.splitlines()) == 1


def test_a_space_whose_metric_disagrees_with_selection_is_refused(tmp_path, capsys, home):
    space = tmp_path / "space.yaml"
    space.write_text("family: riscov\nmetric: val/nmse_blend\nmode: min\nspaces:\n  wide:\n"
                     "    optim.lr: {type: loguniform, low: 0.0001, high: 0.01}\n")
    code = hpo.main(["--space-file", str(space), "--storage-path", str(tmp_path / "ray"),
                     "--set", "train.selection_metric=val/doa_rmse_deg"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "disagrees" in err


@pytest.mark.parametrize("name", sorted(families()))
def test_declared_metrics_baselines_and_probes_are_produced_by_a_real_validation(name, home):
    """Declarations cannot rot: one validation of an untrained debug model yields every declared metric,
    a margin per baseline and a reliance per probe, on the frozen set."""
    import torch

    from mlplatform.integrity.frozen import freeze_validation
    from mlplatform.protocol import DataContext
    from mlplatform.train.validation import validate

    fam = get_family(name)
    # tse scores each of its three validation sets apart: enough items that each holds a target-absent scene
    extra = ["train.val_batches=3", "data.p_ta=0.5"] if name == "tse" else []
    cfg = build_config(name, "debug", ["train.val_batches=1", *extra])
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    torch.manual_seed(0)
    model = fam.build_model(cfg)
    data, record = freeze_validation(fam, cfg, fam.build_datasets(cfg, DataContext()))
    info: dict = {}
    m = validate(fam, model, data, cfg, 0, 0, fam.schedule(cfg, 0), torch.device("cpu"), {"verbose": False}, info)
    assert set(fam.metrics) <= set(m), set(fam.metrics) - set(m)
    baselines = {k.split("_", 1)[1] for k in m if k.startswith("val/margin_")}
    assert baselines, "no val/margin_<baseline>"
    assert {f"val/reliance_{p.name}" for p in fam.probes} <= set(m)
    assert info["digest"] == record["sha256"]  # what validation saw is exactly the frozen set
