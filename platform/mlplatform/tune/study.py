"""The sweep's Optuna study: stored in a database under the sweep's name, and told how each trial ended.

Ray's ``OptunaSearch.on_trial_complete`` tells Optuna every trial that has a value as COMPLETE with its
last reported value, so a trial ASHA stopped after 2 epochs counts for TPE as a finished trial with a
2-epoch value. :class:`StudySearch` decides the state from what the sweep knows instead:

* the loop's last report carries ``stop_reason`` (``completed``, ``early_stop: ...``, ``guard:...``,
  ``alarm:...``): ``completed`` -> COMPLETE with the trial's selected (best) value, the others -> PRUNED;
* no ``stop_reason`` in the last report: the scheduler (ASHA) stopped it between reports -> PRUNED;
* an error -> FAIL.

A PRUNED trial keeps its per-epoch intermediate values (Optuna records the last as its value), and every
ended trial carries ``stop_reason`` and its MLflow run id as user attributes. The study lives in a
database (:func:`~mlplatform.tune.study_store.resolve_storage`), so ``optuna-dashboard`` can show it live and ``Tuner.restore``
continues it (docs/sweeps.md, "The Optuna study").
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from mlplatform.train.outcome import Outcome, parse_reason
from mlplatform.tune.study_store import resolve_storage, storage

log = logging.getLogger(__name__)


def decide(result: dict[str, Any] | None, error: bool, metric: str | list[str]) -> tuple[TrialState, Any, Outcome]:
    """Optuna state, value(s) to tell (None for PRUNED/FAIL) and the ending, from the trial's last report."""
    res = result or {}
    if error:
        return TrialState.FAIL, None, Outcome("failed", "the trial raised; its MLflow run has the error")
    ended = parse_reason(res.get("stop_reason"))
    if ended is None:  # no reason of ours: the scheduler stopped it between reports (or before its first)
        where = f"after epoch {res['epoch']}" if "epoch" in res else "before its first report"
        return TrialState.PRUNED, None, Outcome("pruned", where)
    if ended.kind not in ("completed", "other"):
        return TrialState.PRUNED, None, ended
    if isinstance(metric, list):
        values = [res.get(m) for m in metric]
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        return (TrialState.COMPLETE, values, ended) if ok else (TrialState.FAIL, None, ended)
    # the trial's result is its selected checkpoint (best epoch), as in the sweep summary and report
    v = res.get(f"best/{metric}", res.get(metric))
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return TrialState.FAIL, None, Outcome("failed", f"no finite {metric} at the end")
    return TrialState.COMPLETE, float(v), ended


@dataclass(frozen=True)
class RunLink:
    """Where each trial's MLflow run is found: by its ``trial_id`` tag under the sweep's parent run."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    def run_of(self, trial_id: str) -> tuple[str | None, str | None]:
        """The trial's MLflow run id and its ``stop_reason`` tag (None, None when not found or unreachable)."""
        from mlplatform.tracking import mlflow_utils as mu

        try:
            cl = mu.client(self.tracking_uri)
            run_id = mu.find_run(cl, self.experiment_id, {"trial_id": trial_id, mu.PARENT_TAG: self.parent_run_id})
            if run_id is None:
                return None, None
            return run_id, cl.get_run(run_id).data.tags.get("stop_reason")
        except Exception as e:  # noqa: BLE001 - bookkeeping must never stop the sweep
            log.warning("could not look up the MLflow run of %s: %s", trial_id, e)
            return None, None


class StudySearch(OptunaSearch):
    """``OptunaSearch`` on a stored study that tells each trial as it ended (see the module docstring)."""

    def __init__(self, *, storage_url: str, study_name: str, runs: RunLink | None = None, **kw: Any):
        super().__init__(storage=storage(storage_url), study_name=study_name, **kw)
        self._storage_url = storage_url
        self._runs = runs
        self._run_ids: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        if trial_id not in self._run_ids and self._runs is not None:
            run_id, _ = self._runs.run_of(trial_id)
            if run_id:
                self._run_ids[trial_id] = run_id
                ot_trial.set_user_attr("mlflow_run_id", run_id)
        v = None if isinstance(self.metric, list) else result.get(self.metric)
        step = result.get("training_iteration")
        # on_trial_complete replays the last report, which on_trial_result usually saw already; a searcher
        # restored from a snapshot older than this field starts without it
        last = self.__dict__.setdefault("_last_step", {})
        if isinstance(v, (int, float)) and math.isfinite(v) and step is not None and step != last.get(trial_id):
            try:
                ot_trial.report(float(v), step)
                last[trial_id] = step
            except Exception as e:  # noqa: BLE001 - finished in the store already (a resumed trial)
                log.warning("Optuna trial of %s not updated: %s", trial_id, e)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result:  # the report that made the scheduler stop the trial reaches only this hook
            self.on_trial_result(trial_id, result)
        state, values, ended = decide(result, error, self.metric)
        run_id, tag = self._runs.run_of(trial_id) if self._runs is not None else (None, None)
        if state == TrialState.FAIL and tag:
            ended = parse_reason(tag) or ended  # the loop tagged its run before raising (loss_guard ...)
        ot_trial = self._ot_trials[trial_id]
        try:
            ot_trial.set_user_attr("stop_reason", ended.render())
            ot_trial.set_user_attr("outcome", ended.kind)
            if run_id:
                ot_trial.set_user_attr("mlflow_run_id", run_id)
            self._ot_study.tell(ot_trial, values, state=state, skip_if_finished=True)
        except Exception as e:  # noqa: BLE001 - e.g. a store that went away: the sweep goes on
            log.warning("Optuna trial of %s not told: %s", trial_id, e)
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        """``Tuner.restore``: reload the study from its database (the pickled copy is as old as Tune's last
        snapshot), and end trials the snapshot does not know (see :func:`retire_unknown`)."""
        super().restore(checkpoint_path)
        sampler = self._ot_study.sampler
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=storage(self._storage_url),
                                           sampler=sampler, pruner=optuna.pruners.NopPruner())
        self._ot_trials = {tid: optuna.Trial(self._ot_study, t._trial_id) for tid, t in self._ot_trials.items()}
        stored = {t._trial_id: t for t in self._ot_study.get_trials(deepcopy=False)}
        for tid, t in self._ot_trials.items():
            if stored[t._trial_id].state.is_finished():
                self._completed_trials.add(tid)  # ended after the snapshot: already told
        retire_unknown(self._ot_study, {t._trial_id for t in self._ot_trials.values()})


def retire_unknown(study: optuna.Study, known: set[int]) -> list[int]:
    """A trial asked after Tune's last snapshot is unknown to the restored sweep, which replaces it with a
    new one: tell it FAIL with ``stop_reason`` "superseded on resume" (like its soft-deleted MLflow run), so
    no trial stays RUNNING and the dashboard can filter it out. Returns the retired trial numbers."""
    retired = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if t._trial_id in known:
            continue
        ended = Outcome("superseded", "driver died before the sweep state recorded this trial")
        trial = optuna.Trial(study, t._trial_id)
        trial.set_user_attr("stop_reason", ended.render())
        trial.set_user_attr("outcome", ended.kind)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        retired.append(t.number)
    return retired


def build_searcher(spec: Any, runs: RunLink, objectives: list[tuple[str, str]] | None = None) -> OptunaSearch:
    """The sweep's searcher: TPE (Optuna's defaults, ``spec.startup_trials`` random trials first; with
    ``objectives``, Optuna's multi-objective TPE over those metrics) or seeded random;
    ``spec.tell == "ray"`` keeps Ray's stock telling (the pruning benchmark's baseline)."""
    from optuna.samplers import RandomSampler, TPESampler

    sampler = (TPESampler(seed=spec.seed, n_startup_trials=spec.startup_trials) if spec.search == "tpe"
               else RandomSampler(seed=spec.seed))
    url = resolve_storage(runs.tracking_uri, spec.optuna_storage)
    kw: dict[str, Any] = ({"metric": [m for m, _ in objectives], "mode": [d for _, d in objectives]}
                          if objectives else {})
    if spec.tell == "ray":
        return OptunaSearch(sampler=sampler, storage=storage(url), study_name=spec.name, **kw)
    return StudySearch(sampler=sampler, storage_url=url, study_name=spec.name, runs=runs, **kw)
