"""Noise-aware selection: paired bootstrap intervals, and the report's "tied with the best" mark on a sweep
recorded in a real MLflow store with constructed per-item values."""
import json
import math
import re

import numpy as np
import pytest
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tune.noise import analyse, bootstrap_mean
from mlplatform.tune.report import write_sweep_report
from mlplatform.tune.report.noise import ARTIFACT

PNG = b"\x89PNG\r\n\x1a\n"


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(3).normal(1.0, 1.0, 400)
    a, b = bootstrap_mean(x), bootstrap_mean(x)
    assert a == b  # seeded: the report is reproducible
    assert a.lo < x.mean() < a.hi
    assert 0.15 < a.hi - a.lo < 0.25  # about 2 x 1.96 x sd / sqrt(n) = 0.196
    assert bootstrap_mean([0.5] * 10) == type(a)(0.5, 0.5, 0.5)  # no spread: the point itself
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([1.0, float("nan")])


def _items(rng, base, shift, sd):
    return (base + shift + rng.normal(0.0, sd, base.size)).tolist()


def _constructed():
    """Best trial a; b differs from a by less than the noise; c is clearly worse (NMSE-like, lower is better)."""
    rng = np.random.default_rng(0)
    a = rng.gamma(4.0, 0.025, 200)  # per-item NMSE around 0.1, spread 0.05
    rec = {"a": a.tolist(), "b": _items(rng, a, 0.0003, 0.01), "c": _items(rng, a, 0.01, 0.01)}
    floors = {"toeplitz": (a + 0.03).tolist(), "samp": (a + 0.2).tolist()}
    return {t: {"metric": "val/nmse_blend", "model": v, "floors": floors, "digest": "d" * 64} for t, v in rec.items()}


def test_analyse_marks_a_trial_within_the_noise_tied_and_a_clearly_worse_one_not():
    res = analyse(_constructed(), "min")
    assert res.best == "a" and res.items == 200
    assert res.trials["b"].tied and res.trials["b"].diff.contains(0.0)
    assert not res.trials["c"].tied and res.trials["c"].diff.lo > 0  # worse beyond the noise
    assert res.tied == ["a", "b"]
    m = res.trials["a"].margin  # to the strongest floor (toeplitz), positive = better than it
    assert res.trials["a"].floor == "toeplitz" and math.isclose(m.mean, 0.03, rel_tol=1e-9)
    assert math.isclose(m.lo, m.hi, abs_tol=1e-12)  # a constant margin has no spread
    other = dict(_constructed()["c"], digest="e" * 64)
    assert analyse({"a": _constructed()["a"], "c": other}, "min").trials["c"].note.startswith("different")


def _record(cl, tmp_path):
    exp = mu.get_or_create_experiment(cl, "noise")
    parent = cl.create_run(exp, run_name="ns", tags={"sweep": "ns", "kind": "sweep", "family": "riscov",
                                                     "selection_metric": "val/nmse_blend",
                                                     "selection_mode": "min"}).info.run_id
    for tid, rec in _constructed().items():
        rid = cl.create_run(exp, run_name=f"ns-{tid}", tags={"mlflow.parentRunId": parent, "trial_id": tid,
                                                            "stop_reason": "completed"}).info.run_id
        value = float(np.mean(rec["model"]))
        cl.log_batch(rid, metrics=[Metric("val/nmse_blend", value + 0.05, 0, 1), Metric("val/nmse_blend", value, 0, 2)],
                     tags=[RunTag("family", "riscov")])
        folder = tmp_path / tid / "checkpoints" / "best"
        folder.mkdir(parents=True)
        (folder / "per_item.json").write_text(json.dumps(rec))
        cl.log_artifact(rid, str(folder / "per_item.json"), "checkpoints/best")
        cl.set_terminated(rid, "FINISHED")
    return parent


def test_report_marks_ties_and_the_parent_carries_the_best_interval(mlflow_uri, tmp_path, home):
    cl = MlflowClient(mlflow_uri)
    parent = _record(cl, tmp_path)
    assert cl.list_artifacts(cl.search_runs([cl.get_run(parent).info.experiment_id],
                                            "tags.trial_id = 'a'")[0].info.run_id, "checkpoints/best")[0].path == ARTIFACT
    out = write_sweep_report(mlflow_uri, parent, tmp_path / "rep")
    md = (out / "report.md").read_text()
    main = md.split("## Trials, best first", 1)[1].split("\n## ", 1)[0]
    tied = {r.split("|")[2].strip(): r.split("|")[6].strip() for r in main.splitlines() if re.match(r"\| \d", r)}
    assert tied == {"a": "= best", "b": "= best", "c": "no"}
    section = md.split("## Is the best really the best?", 1)[1].split("\n## ", 1)[0]
    assert "Tied with it: 1 of 2 other trials" in section and "`b`" in section
    assert "![confidence intervals against the best](intervals.png)" in section
    assert (out / "intervals.png").read_bytes()[:8] == PNG
    run = cl.get_run(parent)
    lo, hi = run.data.metrics["best/ci_lo"], run.data.metrics["best/ci_hi"]
    assert lo < float(np.mean(_constructed()["a"]["model"])) < hi
    assert run.data.metrics["best/n_tied"] == 1.0 and run.data.tags["best/tied"] == "b"
    assert run.data.metrics["best/margin_ci_lo"] > 0 and run.data.tags["best/margin_floor"] == "toeplitz"
    assert "report/intervals.png" in {a.path for a in cl.list_artifacts(parent, "report")}
