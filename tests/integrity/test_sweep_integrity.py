"""In a real sweep: an alarm stops a trial with its reason in Tune and MLflow, every trial is scored on
the one frozen validation set attached (with its hash) to the parent run, and the report lands there."""
from __future__ import annotations

import json
import re

from mlflow.tracking import MlflowClient

import hpo  # jobs/hpo.py


def test_alarm_stops_trials_and_frozen_val_set_is_shared(ray_session, mlflow_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    out = tmp_path / "summary.json"
    space = tmp_path / "space.yaml"  # sweep only lr: the default space would resample beta and lam_cov_pred
    space.write_text("family: riscov\nmetric: val/nmse_blend\nmode: min\nspaces:\n  wide:\n"
                     "    optim.lr: {type: loguniform, low: 0.0005, high: 0.005}\n")
    rc = hpo.main(["--space-file", str(space), "--n_trials", "2", "--epochs_per_trial", "7", "--grace-period", "7", "--name", "t-alarm",
                   "--storage-path", str(tmp_path / "ray"), "--json-out", str(out),
                   "--set", "data.n_train=512", "--set", "train.val_batches=2", "--set", "train.num_threads=1",
                   "--set", "train.beta_start=1", "--set", "train.beta_final=1", "--set", "loss.lam_cov_pred=0",
                   "--set", "loss.beta_safety=false", "--set", "model.core=spectrum"])
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert rc == 0, printed[-2000:]
    assert "ALARM" in printed  # the progress line counts trials stopped by an alarm
    cl = MlflowClient(mlflow_uri)
    parent = cl.get_run(summary["parent_run_id"])
    exp = parent.info.experiment_id
    children = [r for r in cl.search_runs([exp]) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    sha = parent.data.tags["val_set.sha256"]
    assert len(sha) == 64
    val_files = [a.path for a in cl.list_artifacts(parent.info.run_id, "validation")]
    assert any(p.endswith(".pt") for p in val_files) and "validation/val_set.sha256" in val_files
    for c in children:
        assert c.data.tags["val_set.sha256"] == sha  # every trial compared on the same items
        assert c.info.status == "KILLED"
        assert c.data.tags["stop_reason"].startswith("alarm:reliance_beta0"), c.data.tags["stop_reason"]
        assert c.data.metrics["val/reliance_beta0"] < 0
        assert "val/margin_samp" in c.data.metrics and "val/baseline_trace_nmse_blend" in c.data.metrics
        assert not cl.list_artifacts(c.info.run_id, "validation")  # attached once, on the parent
    report = [a.path for a in cl.list_artifacts(parent.info.run_id, "report")]
    assert "report/report.md" in report and "report/report.html" in report
    text = (tmp_path / "ray" / "t-alarm" / "report" / "report.md").read_text()
    # the report's "Stopped trials and why" table lists both trials as stopped by the reliance_beta0 alarm
    section = text.split("## Stopped trials and why", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in section.splitlines()
            if ln.startswith("|") and "reliance_beta0" in ln]
    assert sorted(r[0] for r in rows) == sorted(c.data.tags["trial_id"] for c in children), section
    for trial, status, kind, mechanism, _epochs, reason in rows:
        assert (status, kind, mechanism) == ("KILLED", "alarm", "reliance_beta0"), (trial, status, kind, mechanism)
        assert reason.startswith("alarm:reliance_beta0"), reason
