"""hpo.py --plan: ASHA's rungs from the flags, a one-epoch probe, the frozen set's resolution; no Ray, no MLflow."""
import pytest

import hpo  # jobs/hpo.py
from mlplatform.tune.plan import asha_rungs, expected_epochs, separation


def test_asha_rungs_divide_by_the_reduction_factor():
    rungs = asha_rungs(27, max_t=20, grace=2, rf=3)
    assert rungs == [(2, 27.0), (6, 9.0), (18, 3.0), (20, 1.0)]
    assert expected_epochs(rungs) == pytest.approx(27 * 2 + 9 * 4 + 3 * 12 + 1 * 2)
    assert asha_rungs(5, max_t=2, grace=4, rf=3) == [(2, 5.0)]  # grace above max_t: every trial runs max_t


def test_separation_is_paired_on_the_items():
    a = [0.1 * i for i in range(40)]
    assert separation(a, [v + 0.05 for v in a])["lo"] == pytest.approx(0.05)  # a constant shift: no spread
    assert separation(a, a[:-1]) is None


def test_plan_prints_and_exits_before_any_sweep(mlflow_uri, monkeypatch, capsys, home):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    rc = hpo.main(["--plan", "--n_trials", "9", "--epochs_per_trial", "6", "--confirm-top", "2",
                   "--set", "data.n_train=1024"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "rung at epoch   2: ~9.0 trials" in out and "rung at epoch   6: ~3.0 trials" in out
    assert "expected 30 trial epochs" in out and "confirmation (6 runs of 6 epochs)" in out
    assert "paired 95% interval" in out or "separable" in out
    assert "[sweep]" not in out and "MLflow run" not in out  # nothing ran, nothing was logged
    from mlflow.tracking import MlflowClient

    assert MlflowClient(mlflow_uri).get_experiment_by_name("riscov") is None
