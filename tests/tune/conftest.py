"""Shared by the sweep tests: the stored Optuna study checked against the sweep's MLflow runs."""
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from mlplatform.tune.outcomes import outcome

# how each sweep outcome (tune/outcomes.py) reaches the study
STATE = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "early_stop": TrialState.PRUNED,
         "guard": TrialState.PRUNED, "alarm": TrialState.PRUNED, "loss_guard": TrialState.FAIL,
         "failed": TrialState.FAIL}


def _check_study(url: str, name: str, mlflow_uri: str, parent: str) -> list:
    """Every trial of the study (but those superseded on a resume) matches its MLflow child run: state, value,
    intermediate values, run id, stop reason. Returns those trials."""
    trials = [t for t in optuna.load_study(study_name=name, storage=url).trials
              if t.user_attrs.get("outcome") != "superseded"]
    cl = MlflowClient(mlflow_uri)
    exp = cl.get_run(parent).info.experiment_id
    runs = {r.info.run_id: r for r in cl.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")}
    assert len({t.user_attrs["mlflow_run_id"] for t in trials}) == len(trials) == len(runs)
    for t in trials:
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["trial_id"] == t.user_attrs["tune_trial_id"]
        kind = outcome(run.data.tags.get("stop_reason"), run.info.status)
        assert t.state == STATE[kind], (t.number, kind, t.state)
        assert t.user_attrs["stop_reason"] == run.data.tags["stop_reason"]
        hist = {m.step: m.value for m in cl.get_metric_history(run.info.run_id, "val/nmse_blend")}
        if t.state == TrialState.FAIL:
            continue
        assert t.intermediate_values == pytest.approx(hist)  # per epoch, as MLflow has them
        if t.state == TrialState.PRUNED:
            assert t.value == pytest.approx(hist[max(hist)])
        else:
            assert t.value == pytest.approx(min(hist.values()))  # the selected checkpoint's value
    return trials


@pytest.fixture()
def check_study():
    return _check_study
