"""The sweep's Optuna study: trials told as they ended (pruned as PRUNED, with intermediate values), stored
in a database beside the MLflow store, each trial linked to its MLflow run, and continued on restore."""
import math

import optuna
import pytest
from optuna.trial import TrialState
from ray import tune

import hpo  # jobs/hpo.py
from mlplatform.config import ConfigError
from mlplatform.tune.study import StudySearch, decide
from mlplatform.tune.study_store import check_new_study, resolve_storage

def test_decide_follows_the_trials_ending():
    m = "val/x"
    assert decide({m: 0.5, f"best/{m}": 0.4, "stop_reason": "completed"}, False, m)[:2] == (TrialState.COMPLETE, 0.4)
    st, v, ended = decide({m: 0.5, "epoch": 2}, False, m)  # no reason of ours: ASHA
    assert (st, v, ended.render()) == (TrialState.PRUNED, None, "pruned by ASHA after epoch 2")
    for reason in ("early_stop: no improvement in 3 validations", "guard:rms_ratio: output too quiet",
                   "alarm:floor_gap: below the floor"):
        st, v, ended = decide({m: 0.5, "stop_reason": reason}, False, m)
        assert (st, v, ended.render()) == (TrialState.PRUNED, None, reason)
    assert decide(None, True, m)[0] == TrialState.FAIL
    assert decide({m: math.nan, "stop_reason": "completed"}, False, m)[0] == TrialState.FAIL
    assert decide({"a": 1.0, "b": 2.0, "stop_reason": "completed"}, False, ["a", "b"])[:2] == (
        TrialState.COMPLETE, [1.0, 2.0])


def test_storage_sits_beside_a_sqlite_tracking_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPLATFORM_OPTUNA_STORAGE", raising=False)
    assert resolve_storage(f"sqlite:///{tmp_path}/mlruns.db") == f"sqlite:///{tmp_path}/optuna.db"
    assert resolve_storage("http://127.0.0.1:5000", "postgresql://u@h/optuna") == "postgresql://u@h/optuna"
    monkeypatch.setenv("MLPLATFORM_OPTUNA_STORAGE", "sqlite:////x/y.db")
    assert resolve_storage(f"sqlite:///{tmp_path}/mlruns.db") == "sqlite:////x/y.db"


def test_restore_reloads_the_study_and_retires_trials_the_snapshot_missed(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    s = StudySearch(storage_url=url, study_name="s", metric="m", mode="min")
    s.set_search_properties("m", "min", {"a": tune.uniform(0, 1)})
    s.suggest("t1")
    for step, v in ((1, 0.5), (2, 0.4)):
        s.on_trial_result("t1", {"m": v, "training_iteration": step, "epoch": step})
    s.suggest("t2")
    s.save(str(tmp_path / "snap.pkl"))  # Tune's snapshot: t1 and t2 running
    s.on_trial_complete("t1", {"m": 0.4, "training_iteration": 2, "epoch": 2})  # ASHA, after the snapshot
    s.suggest("t3")  # asked after the snapshot: the restored sweep never hears of it
    with pytest.raises(ConfigError, match="already has a study named 's'"):
        check_new_study(url, "s")
    r = StudySearch(storage_url=url, study_name="s", metric="m", mode="min")
    r.restore(str(tmp_path / "snap.pkl"))
    r.on_trial_result("t1", {"m": 0.3, "training_iteration": 3})  # already told: ignored, not an error
    r.on_trial_complete("t2", {"m": 0.2, "best/m": 0.2, "stop_reason": "completed", "training_iteration": 1})
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.4} and trials[0].value == 0.4
    assert trials[1].value == 0.2 and trials[2].user_attrs["stop_reason"].endswith("superseded on resume")
    assert [t.user_attrs["tune_trial_id"] for t in trials] == ["t1", "t2", "t3"]


def test_a_sweep_stores_its_study_as_it_ended(ray_session, mlflow_uri, tmp_path, monkeypatch, check_study):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.delenv("MLPLATFORM_OPTUNA_STORAGE", raising=False)
    out = tmp_path / "s.json"
    args = ["--n_trials", "6", "--epochs_per_trial", "4", "--preset", "debug", "--name", "t-study",
            "--grace-period", "1", "--early_stop_patience", "2", "--storage-path", str(tmp_path / "ray"),
            "--set", "data.n_train=512", "--set", "train.val_batches=2", "--json-out", str(out)]
    assert hpo.main(args) == 0
    import json

    summary = json.loads(out.read_text())
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert summary["optuna_storage"] == url
    trials = check_study(url, "t-study", mlflow_uri, summary["parent_run_id"])
    assert len(trials) == 6 and any(t.state == TrialState.PRUNED for t in trials)
    assert hpo.main(args) == 2  # the same name again would mix two sweeps in one study


def test_an_unusable_optuna_store_is_refused_before_any_store_is_made(tmp_path, monkeypatch, capsys):
    """As a new user would type it: a refused PostgreSQL URL exits 2 with one line on stderr, before the
    MLflow store is created and before Ray starts."""
    def tripwire(*a, **k):
        raise AssertionError("Ray started for an Optuna store known to be bad")

    monkeypatch.setattr("mlplatform.raycluster.init_ray", tripwire)
    store = tmp_path / "mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    rc = hpo.main(["--family", "riscov", "--optuna-storage", "postgresql://nobody@127.0.0.1:1/x",
                   "--storage-path", str(tmp_path / "ray")])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: Optuna storage"), err
    assert "127.0.0.1" in lines[0] and not out.strip()
    assert not store.exists() and not (tmp_path / "ray").exists()
