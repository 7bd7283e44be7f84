"""The sweep report, read back from a real MLflow store: after a real sweep, and for a sweep whose trials
ended in every way the platform records (alarm, guard, loss bound, failure, margins below a baseline)."""
import math
import re
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

import report as report_job  # jobs/report.py
from mlplatform.registry import get_family
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tune.outcomes import outcome, reason_detail
from mlplatform.tune.report import load_sweep, write_sweep_report
from mlplatform.tune.sweep import SweepSpec, run_sweep

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _tables(md: str, section: str) -> list[list[list[str]]]:
    """The body rows of each markdown table under ``## <section>``."""
    part = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.split(r"\n(?!\|)", part):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if lines:
            out.append([[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines[2:]])
    return out


def _trial_rows(md: str, section: str) -> list[list[str]]:
    return _tables(md, section)[0]


def _table_header(md: str, section: str) -> list[str]:
    """The header cells of the first markdown table under ``## <section>``."""
    part = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in part.splitlines() if ln.startswith("|"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_report_of_a_real_sweep(ray_session, mlflow_uri, tmp_path):
    spec = SweepSpec(family="riscov", n_trials=3, epochs_per_trial=2, grace_period=1, preset="debug",
                     name="t-report", storage_path=str(tmp_path / "ray"), tracking_uri=mlflow_uri,
                     early_stop_patience=0, overrides=["data.n_train=512", "train.val_batches=2"])
    summary = run_sweep(spec)
    parent = summary["parent_run_id"]
    out = write_sweep_report(mlflow_uri, parent, tmp_path / "rep")

    cl = MlflowClient(mlflow_uri)
    logged = {a.path for a in cl.list_artifacts(parent, "report")}
    for f in ("report.md", "report.html", "history.png", "parallel.png", "curves.png", "importance.png"):
        assert f"report/{f}" in logged, f
        assert (out / f).stat().st_size > 0
    for f in ("history.png", "parallel.png", "curves.png", "importance.png"):
        assert (out / f).read_bytes()[:8] == PNG
    assert cl.get_run(parent).data.tags["report"] == "report/report.html"

    md = (out / "report.md").read_text()
    children = {c.data.tags["trial_id"]: c for c in cl.search_runs(
        [summary["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")}
    rows = _trial_rows(md, "Trials, best first")
    assert sorted(r[1] for r in rows) == sorted(children)  # one row per trial
    assert rows[0][1] == summary["best_trial"]  # ranked as the sweep ranked them
    assert math.isclose(float(rows[0][2]), summary["best_value"], rel_tol=1e-3)
    for r in rows:  # the outcome column agrees with the child run's own stop reason and status
        c = children[r[1]]
        assert r[4] == outcome(c.data.tags.get("stop_reason"), c.info.status)
    swept = set(yaml.safe_load((REPO / "search_spaces" / "riscov.yaml").read_text())["spaces"]["wide"])
    imp = {r[0] for r in _trial_rows(md, "Parameter importance")}
    assert imp == swept  # importance covers every swept param
    # riscov declares baselines, so every trial logs val/margin_<baseline> and the report must plot them
    assert get_family("riscov").baselines is not None
    assert "No trial logged `val/margin_*`" not in md
    assert "![baseline margins](margins.png)" in md
    assert "report/margins.png" in logged and (out / "margins.png").read_bytes()[:8] == PNG
    margin_cols = [c for c in _table_header(md, "Baseline margins") if c.endswith("(last)")]
    assert "samp (last)" in margin_cols, margin_cols  # the sample covariance, riscov's strongest floor
    margin_rows = _trial_rows(md, "Baseline margins")
    assert sorted(r[0] for r in margin_rows) == sorted(children)
    assert all(r[2] != "-" for r in margin_rows)  # every trial has a margin value
    # riscov declares floors and a ceiling: each trial sits between them, the parent carries the best one's gain
    assert "report/floors.png" in logged and (out / "floors.png").read_bytes()[:8] == PNG
    floor_rows = {r[0]: r for r in _trial_rows(md, "Between floor and ceiling")}
    assert sorted(floor_rows) == sorted(children)
    best_row = floor_rows[summary["best_trial"]]
    assert best_row[3].startswith("toeplitz ") and best_row[4].startswith("oracle_doa ")
    gain = cl.get_run(parent).data.metrics["best/val/captured_gain"]
    assert math.isclose(float(best_row[5]), gain, rel_tol=1e-3) and summary["best_captured_gain"] == gain
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(re.findall(r"!\[[^\]]*\]\(", md))


def _record_sweep(cl: MlflowClient, tmp_path, name: str = "rec") -> str:
    """A sweep written straight into MLflow with the tags run_sweep and the loop write, with trials that
    ended every way a real one can: too slow to provoke each ending through training in a unit test."""
    exp = mu.get_or_create_experiment(cl, "recorded")  # artifacts under MLPLATFORM_HOME, not the cwd
    space = {"family": "riscov", "metric": "val/nmse_blend", "mode": "min", "spaces": {"s": {
        "optim.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "model.hidden": {"type": "choice", "values": [64, 128]},
        "train.beta_final": {"type": "uniform", "low": 0.0, "high": 0.5}}}}
    parent = cl.create_run(exp, run_name=name, tags={"sweep": name, "kind": "sweep", "family": "riscov",
                                                      "space": "s", "selection_metric": "val/nmse_blend",
                                                      "selection_mode": "min"}).info.run_id
    (tmp_path / "search_space.yaml").write_text(yaml.safe_dump(space))
    cl.log_artifact(parent, str(tmp_path / "search_space.yaml"))
    trials = [  # trial, lr, hidden, beta, status, stop reason, curve, margin_samp curve
        ("a", 1e-3, 64, 0.1, "FINISHED", "completed", [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]),
        ("b", 5e-3, 128, 0.4, "KILLED", "alarm:loss_vs_selection: train/loss fell while val/nmse_blend rose",
         [0.3, 0.35, 0.4], [0.0, -0.1, -0.2]),
        ("c", 2e-4, 128, 0.2, "KILLED", "guard:beta_safety: train/beta_safety=0.9 outside [0, 0.8]",
         [0.5, 0.45], [0.05, 0.02]),
        ("d", 8e-3, 64, 0.3, "FAILED", "loss_guard: component nmse not finite at step 3", [], []),
        ("e", 3e-4, 64, 0.05, "KILLED", "pruned by ASHA after epoch 2", [0.6, 0.5], []),
        ("f", 1e-3, 128, 0.25, "FINISHED", "early_stop: no improvement in 2 validations",
         [0.25, 0.15, 0.16, 0.17], [0.2, 0.25, 0.2, 0.2]),
    ]
    for tid, lr, hidden, beta, status, reason, curve, margin in trials:
        run = cl.create_run(exp, run_name=f"{name}-{tid}", tags={"mlflow.parentRunId": parent, "trial_id": tid,
                                                              "selection_metric": "val/nmse_blend",
                                                              "selection_mode": "min", "stop_reason": reason})
        rid = run.info.run_id
        params = {"optim.lr": lr, "model.hidden": hidden, "train.beta_final": beta, "loss.lam_cov": 1.0}
        ms = [Metric("val/nmse_blend", v, 0, i + 1) for i, v in enumerate(curve)]
        ms += [Metric("val/margin_samp", v, 0, i + 1) for i, v in enumerate(margin)]
        cl.log_batch(rid, metrics=ms, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag("family", "riscov")])
        cl.set_terminated(rid, status=status)
    return parent


def test_report_names_every_ending_and_the_margins(mlflow_uri, tmp_path, home):
    cl = MlflowClient(mlflow_uri)
    parent = _record_sweep(cl, tmp_path)
    data = load_sweep(cl, parent)
    assert [t.trial_id for t in data.ranked()] == ["a", "f", "b", "c", "e", "d"]  # best value first, no value last
    assert {t.trial_id: t.outcome for t in data.trials} == {
        "a": "completed", "b": "alarm", "c": "guard", "d": "loss_guard", "e": "pruned", "f": "early_stop"}
    assert data.space_source.startswith("search_space.yaml")
    assert {t.trial_id: t.params["model.hidden"] for t in data.trials}["b"] == 128  # typed, not "128"

    out = write_sweep_report(mlflow_uri, parent, tmp_path / "rep")
    md = (out / "report.md").read_text()
    counts, stopped_rows = _tables(md, "Stopped trials and why")
    assert {r[0]: r[1] for r in counts}["stopped by an exploit alarm"] == "1"
    stopped = {r[0]: r for r in stopped_rows}
    assert set(stopped) == {"b", "c", "d", "e", "f"}
    assert stopped["b"][3] == "loss_vs_selection" and stopped["c"][3] == "beta_safety"
    assert stopped["d"][1] == "FAILED" and "not finite at step 3" in stopped["d"][5]
    margins = {r[0]: r for r in _trial_rows(md, "Baseline margins")}
    assert margins["b"][2] == "-0.2" and margins["b"][3] == "-0.2"  # last and worst margin of the alarmed trial
    assert margins["d"][2] == "-"  # failed before any validation
    assert (out / "margins.png").read_bytes()[:8] == PNG
    assert {r[0] for r in _trial_rows(md, "Parameter importance")} == {"optim.lr", "model.hidden", "train.beta_final"}


@pytest.mark.parametrize("reason,status,kind,detail", [
    ("completed", "FINISHED", "completed", ""),
    ("alarm:rms_ratio: output rms 0.01 of target", "KILLED", "alarm", "rms_ratio"),
    ("guard:ratio_spread: spread 0", "KILLED", "guard", "ratio_spread"),
    ("loss_guard: x", "FAILED", "loss_guard", ""),
    ("", "KILLED", "pruned", ""),
    ("", "FAILED", "failed", ""),
    ("error: boom", "FAILED", "failed", ""),
    ("", "RUNNING", "running", ""),
    ("interrupted", "KILLED", "other", ""),
])
def test_outcome_vocabulary(reason, status, kind, detail):
    assert outcome(reason, status) == kind and reason_detail(reason) == detail


def test_cli_one_line_errors(mlflow_uri, tmp_path, monkeypatch, capsys, home):
    cl = MlflowClient(mlflow_uri)
    parent = _record_sweep(cl, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    capsys.readouterr()  # MLflow's own "creating tables" log lines from setting the store up
    cases = [(["--experiment", "nope"], "no MLflow experiment named 'nope'"),
             (["--experiment", "recorded", "--sweep", "other"], "no sweep named 'other'"),
             (["--experiment", "recorded", "--parent", "0123abc"], "run 0123abc is not a sweep parent run"),
             (["--experiment", "recorded", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"],
              "no MLflow store at")]
    for argv, msg in cases:
        assert report_job.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    newer = _record_sweep(cl, tmp_path, name="rec2")
    assert report_job.main(["--experiment", "recorded", "--out", str(tmp_path / "o")]) == 0  # the latest sweep
    assert f"run {newer}," in capsys.readouterr().out
    assert report_job.main(["--experiment", "recorded", "--sweep", "rec", "--out", str(tmp_path / "o")]) == 0
    assert f"run {parent}," in capsys.readouterr().out
    assert [a.path for a in cl.list_artifacts(parent, "report")].count("report/report.html") == 1
    with pytest.raises(SystemExit) as e:
        report_job.main(["--help"])
    assert e.value.code == 0 and "--experiment" in capsys.readouterr().out


def test_a_sweep_without_trials_gets_a_short_report(mlflow_uri, tmp_path, home):
    cl = MlflowClient(mlflow_uri)
    exp = mu.get_or_create_experiment(cl, "empty")
    parent = cl.create_run(exp, tags={"kind": "sweep", "sweep": "e", "selection_metric": "val/x",
                                      "selection_mode": "max"}).info.run_id
    md = (write_sweep_report(mlflow_uri, parent, tmp_path / "rep") / "report.md").read_text()
    assert "no trial runs" in md and "## " not in md
    assert {a.path for a in cl.list_artifacts(parent, "report")} == {"report/report.md", "report/report.html"}
