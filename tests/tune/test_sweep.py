"""A real sweep on a real local Ray with a real MLflow store: 1 parent + one child run per trial."""
import json

from mlflow.tracking import MlflowClient

import hpo  # jobs/hpo.py


def test_sweep_of_three_trials_lands_parent_and_children(ray_session, mlflow_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    out = tmp_path / "summary.json"
    rc = hpo.main(["--n_trials", "3", "--epochs_per_trial", "3", "--preset", "debug", "--name", "t-sweep",
                   "--storage-path", str(tmp_path / "ray"), "--set", "data.n_train=1024",
                   "--set", "train.val_batches=4", "--json-out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "best trial" in printed and "MLflow run" in printed
    assert f"mlflow ui --backend-store-uri {mlflow_uri}" in printed  # the exact command that opens the UI
    summary = json.loads(out.read_text())
    cl = MlflowClient(mlflow_uri)
    exp = cl.get_experiment_by_name("riscov")
    runs = cl.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["parent_run_id"]]
    assert len(parents) == 1 and len(children) == 3
    assert len({c.data.tags["trial_id"] for c in children}) == 3
    for c in children:
        assert c.info.status in ("FINISHED", "KILLED"), c.info.status  # nothing left RUNNING
        assert "stop_reason" in c.data.tags
        assert c.data.params["loss.lam_cov"] == "1.0"  # the full resolved config
        assert "val/nmse_blend" in c.data.metrics and "train/beta" in c.data.metrics
        hist = cl.get_metric_history(c.info.run_id, "val/nmse_blend")
        assert len(hist) >= 2  # per-epoch
        arts = [a.path for a in cl.list_artifacts(c.info.run_id)]
        assert "config" in arts and "checkpoints" in arts
    assert parents[0].info.status == "FINISHED"
    assert summary["best_run_id"] in {c.info.run_id for c in children}
    # manifest.json on the parent (the sweep as asked, its frozen set) and on each trial (its own config)
    pm = _manifest(cl, parents[0].info.run_id)
    assert pm["kind"] == "sweep" and pm["sweep"]["n_trials"] == 3 and pm["seeds"]["sweep.seed"] == 0
    assert pm["frozen_val"]["sha256"] == parents[0].data.tags["val_set.sha256"] and pm["git"]["commit"]
    for c in children:
        tm = _manifest(cl, c.info.run_id)
        assert tm["kind"] == "train" and tm["sweep"] == "t-sweep" and tm["frozen_val"] == pm["frozen_val"]
        assert tm["config"]["loss"]["lam_cov_pred"] == float(c.data.params["loss.lam_cov_pred"])


def _manifest(cl, run_id):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        return json.loads(Path(cl.download_artifacts(run_id, "manifest.json", d)).read_text())


def test_multi_worker_trials_run_a_torchtrainer_per_trial(ray_session, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    # 2 workers x 0.9 CPU + 0.01 for the trial driver fits the session's 2 CPUs
    rc = hpo.main(["--n_trials", "1", "--epochs_per_trial", "2", "--preset", "debug", "--name", "t-mw",
                   "--workers-per-trial", "2", "--cpus-per-worker", "0.9", "--storage-path", str(tmp_path / "ray"),
                   "--set", "data.n_train=512", "--set", "train.val_batches=2"])
    assert rc == 0
    cl = MlflowClient(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id])
    child = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(child) == 1
    assert child[0].data.tags["world_size"] == "2" and child[0].data.tags["executor"] == "tune-torchtrainer"
    assert child[0].info.status == "FINISHED"


def test_a_trial_that_cannot_fit_is_refused(ray_session, mlflow_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    rc = hpo.main(["--n_trials", "1", "--workers-per-trial", "2", "--storage-path", str(tmp_path / "ray")])
    assert rc == 2
    assert "one trial needs 2.01 CPUs" in capsys.readouterr().err


def test_a_nan_trial_fails_with_its_reason_and_the_sweep_completes(ray_session, mlflow_uri, tmp_path, monkeypatch,
                                                                    capsys, check_study):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    space = tmp_path / "nan_space.yaml"
    space.write_text("family: riscov\nmetric: val/nmse_blend\nmode: min\nspaces:\n  drill:\n"
                     "    train.inject_nan_at_step: {type: choice, values: [-1, 3]}\n"
                     "    optim.lr: {type: loguniform, low: 0.001, high: 0.003}\n")
    out = tmp_path / "s.json"
    rc = hpo.main(["--n_trials", "4", "--epochs_per_trial", "2", "--preset", "debug", "--name", "t-nan",
                   "--space-file", str(space), "--space", "drill", "--storage-path", str(tmp_path / "ray"),
                   "--set", "data.n_train=512", "--set", "train.val_batches=2", "--json-out", str(out)])
    summary = json.loads(out.read_text())
    cl = MlflowClient(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["parent_run_id"]]
    nan = [c for c in children if c.data.params["train.inject_nan_at_step"] == "3"]
    ok = [c for c in children if c.data.params["train.inject_nan_at_step"] == "-1"]
    assert len(children) == 4 and nan and ok  # seed 0 draws both values
    assert summary["n_errors"] == len(nan) and rc == 0
    for c in nan:
        assert c.info.status == "FAILED"
        assert "not finite at step 3" in c.data.tags["stop_reason"]
    assert all(c.info.status in ("FINISHED", "KILLED") for c in ok)
    # the driver counts them by the exception's type (pickled by Tune), not by grepping its text
    assert f"{len(nan)} LOSS-GUARD" in capsys.readouterr().out
    # the Optuna study has them as FAIL with the loss guard's reason, the others as they ended
    trials = check_study(summary["optuna_storage"], "t-nan", mlflow_uri, summary["parent_run_id"])
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == len(nan) and all(t.user_attrs["outcome"] == "loss_guard" for t in failed)
