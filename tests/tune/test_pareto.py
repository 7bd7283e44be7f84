"""Pareto sweeps: objectives checked against the metric contracts before Ray starts, the front computed by
Optuna, and a real 2-objective riscov sweep whose report plots the front on the parent run."""
import math
import re

import pytest
from mlflow.tracking import MlflowClient

import hpo as hpo_job  # jobs/hpo.py
from mlplatform.config import ConfigError
from mlplatform.registry import FAMILIES, get_family
from mlplatform.tune.pareto import front, parse_objectives
from mlplatform.tune.sweep import SweepSpec, run_sweep

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_declares_a_pair_its_contracts_accept(name):
    fam = get_family(name)
    objs = parse_objectives(fam, "pair")
    assert len(objs) == 2 and all(m in fam.metrics for m, _ in objs)
    assert any(not fam.metrics[m].exploitable for m, _ in objs)  # one objective keeps the other honest


@pytest.mark.parametrize("text,fragment", [
    ("val/nmse_blend:min", "needs at least two"),
    ("val/nmse_blend:min,val/nope:min", "'val/nope' is not a declared metric of family riscov"),
    ("val/nmse_blend:max,val/doa_rmse_deg:min", "val/nmse_blend is minimised by its contract"),
    ("val/nmse_blend:min,val/loss:min", "val/loss is exploitable"),
    ("val/nmse_blend,val/doa_rmse_deg:min", "is not METRIC:MODE"),
    ("nmse_blend:min,val/nmse_blend:min", "names a metric twice"),
])
def test_bad_objectives_are_one_line_config_errors(text, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse_objectives(get_family("riscov"), text)


def test_an_exploitable_metric_is_allowed_only_in_the_declared_pair():
    tse = get_family("tse")
    pair = "val/si_sdri_tp_unseen:max,val/ta_suppression_db_unseen:max"
    assert parse_objectives(tse, pair)[1] == ("val/ta_suppression_db_unseen", "max")
    with pytest.raises(ConfigError, match="only allowed in family tse's declared pair"):
        parse_objectives(tse, "val/si_sdr_tp_unseen:max,val/ta_suppression_db_unseen:max")


def test_front_is_the_non_dominated_points():
    pts = {"a": [1.0, 5.0], "b": [2.0, 2.0], "c": [3.0, 3.0], "d": [4.0, 1.0], "e": [2.0, 2.5]}
    assert sorted(front(pts, ["min", "min"])) == ["a", "b", "d"]
    assert sorted(front(pts, ["min", "max"])) == ["a"]


def test_hpo_refuses_bad_objectives_before_ray(monkeypatch, capsys, home):
    def tripwire(*a, **k):
        raise AssertionError("Ray started for objectives known to be bad")

    monkeypatch.setattr("mlplatform.raycluster.init_ray", tripwire)
    assert hpo_job.main(["--family", "tse", "--objectives", "val/ta_energy_db:min,val/si_sdr_tp:max"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "val/ta_energy_db is exploitable" in err[0]


def test_a_two_objective_riscov_sweep_tags_and_plots_its_front(ray_session, mlflow_uri, tmp_path):
    spec = SweepSpec(family="riscov", n_trials=4, epochs_per_trial=2, preset="debug", name="t-pareto",
                     storage_path=str(tmp_path / "ray"), tracking_uri=mlflow_uri, early_stop_patience=0,
                     objectives="pair", overrides=["data.n_train=512", "train.val_batches=2"])
    summary = run_sweep(spec)
    parent = summary["parent_run_id"]
    cl = MlflowClient(mlflow_uri)
    run = cl.get_run(parent)
    assert run.data.tags["objectives"] == "val/nmse_blend:min,val/doa_rmse_deg:min"
    assert "report/pareto.png" in {a.path for a in cl.list_artifacts(parent, "report")}
    children = cl.search_runs([summary["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == 4 and all(c.data.tags.get("stop_reason") == "completed" for c in children)  # FIFO
    on = {c.data.tags["trial_id"] for c in children if c.data.tags.get("pareto") == "true"}
    assert on and {c.data.tags.get("pareto") for c in children} <= {"true", "false"}
    pts = {c.data.tags["trial_id"]: [c.data.metrics["val/nmse_blend"], c.data.metrics["val/doa_rmse_deg"]]
           for c in children}
    assert on == set(front(pts, ["min", "min"]))  # the tags are the front of the last validations
    assert run.data.metrics["pareto/n_front"] == len(on)
    md = (tmp_path / "ray" / "t-pareto" / "report" / "report.md").read_text()
    listed = md.split("## Pareto front", 1)[1].split("\n## ", 1)[0]
    assert all(f"| {t} |" in listed for t in on) and "![Pareto front](pareto.png)" in listed
    # the same sweep's noise-aware selection: intervals in the report and on the parent run
    assert "## Is the best really the best?" in md and "report/intervals.png" in {
        a.path for a in cl.list_artifacts(parent, "report")}
    lo, hi = run.data.metrics["best/ci_lo"], run.data.metrics["best/ci_hi"]
    assert lo <= summary["best_value"] <= hi and math.isfinite(run.data.metrics["best/margin_ci_lo"])
