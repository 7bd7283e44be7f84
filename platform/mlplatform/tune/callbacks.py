"""Driver-side Tune callbacks: terminal progress, and closing each trial's MLflow run.

When ASHA stops a trial it stops the trial's process at its next report, so code after that report
never runs and the trial cannot end its own MLflow run: the driver does it here, with the reason as a
tag. Endings are :class:`~mlplatform.train.outcome.Outcome` values, rendered to text only for the tag.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from ray.tune import Callback

from mlplatform.observe import gauges
from mlplatform.train.outcome import Outcome, from_error
from mlplatform.tune.outcomes import OUTCOMES, classify, outcome


# the progress line's short names for how trials ended (outcomes.LABELS are for the report)
SHORT = {"completed": "completed", "early_stop": "early-stop", "pruned": "pruned", "guard": "GUARD",
         "alarm": "ALARM", "loss_guard": "LOSS-GUARD", "failed": "FAILED", "other": "other", "running": "?"}


def trial_error(trial: Any) -> Outcome:
    """How a failed trial ended, classified by the exception's type (Tune keeps the raised exception,
    pickled, beside its text); ``failed`` with the error file's last line when it cannot be read."""
    try:
        exc = _pickled_error(trial)
    except Exception:  # noqa: BLE001 - unreadable or not unpicklable here: fall back to the text
        exc = None
    if exc is not None:
        ended = from_error(exc)
        if ended.kind != "failed":
            return ended
    err = last_error_line(trial)
    return Outcome("failed", err[:400])


def _pickled_error(trial: Any) -> BaseException | None:
    """The trial's last exception: from the local file Tune has just written (its copy in the sweep's
    storage may not be synced yet), else through Tune's storage-aware reader."""
    path = getattr(trial, "pickled_error_file", None)
    if path and os.path.exists(path):
        import cloudpickle

        with open(path, "rb") as f:
            return cloudpickle.load(f)
    return trial.get_pickled_error()


def last_error_line(trial: Any) -> str:
    """The last line of a failed trial's error file (the exception), or ''."""
    try:
        with open(trial.error_file) as f:
            lines = f.read().strip().splitlines()
        return lines[-1] if lines else ""
    except Exception:  # noqa: BLE001 - no error file: nothing to say
        return ""


class SweepProgress(Callback):
    """One line per trial event: trials done (by how they ended), running, best so far, time left."""

    def __init__(self, metric: str, mode: str, n_trials: int, max_concurrent: int):
        self.metric, self.mode, self.n, self.k = metric, mode, n_trials, max(1, max_concurrent)
        self.t0 = time.time()
        self.best: tuple[float, str] | None = None
        self.done: dict[str, str] = {}  # trial id -> outcome
        self.started: dict[str, float] = {}  # running trial id -> start time
        self.durations: list[float] = []  # trials that started and ended under this driver
        self.ended_at: list[float] = []  # when each of them ended
        self.sweep = ""  # the sweep's name (its Tune experiment folder), from the first trial seen

    def eta(self, now: float) -> float | None:
        """Seconds left, from the measured throughput (trials finished plus the fraction of an average
        trial each running one has done, per second of wall time): concurrency, scheduling gaps and trial
        start-up are all in it. Measured over the last ``2k`` trials' ends, so it follows a cluster whose
        load changes. Never less than what the slowest running trial still needs."""
        if not self.durations:
            return None
        avg = sum(self.durations) / len(self.durations)
        partial = sum(min((now - s) / avg, 0.9) for s in self.started.values())
        left = max(0.0, self.n - len(self.done) - partial)
        window = 2 * self.k
        since, count = ((self.ended_at[-window - 1], window) if len(self.ended_at) > window
                        else (self.t0, len(self.ended_at)))
        by_rate = left * (now - since) / (count + partial)
        floor = max((avg - (now - s) for s in self.started.values()), default=0.0)
        return max(by_rate, floor) if left > 0 else 0.0

    def _seed(self, trials: list) -> None:
        """A restored sweep: count trials that ended before the restore, so counts and ETA are of the whole."""
        for t in trials:
            if t.trial_id not in self.done and t.trial_id not in self.started and t.status in ("TERMINATED", "ERROR"):
                self.done[t.trial_id] = "failed" if t.status == "ERROR" else outcome(
                    (t.last_result or {}).get("stop_reason"), "FINISHED")

    def _line(self, msg: str) -> None:
        now = time.time()
        kinds = Counter(self.done.values())
        # getattr: a progress callback pickled (tuner.pkl) before it had .sweep is restored without it
        gauges.record_trial_counts({**{o: kinds[o] for o in OUTCOMES}, "running": len(self.started)},
                                   getattr(self, "sweep", ""))
        stopped = [f"{kinds[o]} {SHORT[o]}" for o in OUTCOMES if o != "completed" and kinds[o]]
        best = f"best {self.metric}={self.best[0]:.4g} ({self.best[1]})" if self.best else "best -"
        eta = self.eta(now)
        print(f"[sweep {now - self.t0:6.0f}s] {len(self.done)}/{self.n} done ({kinds['completed']} completed"
              + (f"; stopped: {', '.join(stopped)}" if stopped else "") + f"), {len(self.started)} running; {best}"
              + (f"  ETA ~{eta:.0f}s" if eta is not None else "") + f" | {msg}", flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._seed(trials)
        self.sweep = getattr(self, "sweep", "") or str(getattr(trial, "experiment_dir_name", "") or "")
        self.started[trial.trial_id] = time.time()
        self._line(f"start {trial.trial_id}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        v = result.get(self.metric)
        if isinstance(v, (int, float)):
            if self.best is None or (v < self.best[0] if self.mode == "min" else v > self.best[0]):
                self.best = (float(v), trial.trial_id)

    def _end(self, trial: Any, kind: str) -> None:
        if trial.trial_id in self.started:
            now = time.time()
            self.durations.append(now - self.started.pop(trial.trial_id))
            self.ended_at.append(now)
        self.done[trial.trial_id] = kind

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        res = trial.last_result or {}
        reason = res.get("stop_reason")
        kind = outcome(reason, "FINISHED")  # no reason of ours: ASHA stopped it between reports
        self._end(trial, kind)
        detail = f": {reason}" if reason and kind != "completed" else (" by ASHA" if not reason else "")
        self._line(f"{trial.trial_id} {SHORT[kind]} after {res.get('epoch', '?')} epoch(s){detail}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        err = last_error_line(trial)
        self._end(trial, classify(trial_error(trial), "FAILED"))
        self._line(f"{trial.trial_id} FAILED" + (f": {err[:200]}" if err else ""))


class MlflowTrialCloser(Callback):
    """Ends every trial's child run with a status and a ``stop_reason`` tag; no run stays RUNNING."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.uri, self.exp, self.parent = tracking_uri, experiment_id, parent_run_id

    def _close(self, trial: Any, ended: Outcome) -> None:
        from mlplatform.tracking import mlflow_utils as mu

        try:
            cl = mu.client(self.uri)
            run_id = mu.find_run(cl, self.exp, {"trial_id": trial.trial_id, mu.PARENT_TAG: self.parent})
            if run_id is None:
                return
            run = cl.get_run(run_id)
            if run.info.status == "RUNNING":
                tags = {} if "stop_reason" in run.data.tags else {"stop_reason": ended.render()}
                mu.end_run_if_running(cl, run_id, ended.status, tags)
        except Exception as e:  # noqa: BLE001 - never let bookkeeping kill the sweep
            print(f"[mlflow] could not close the run of {trial.trial_id}: {type(e).__name__}: {e}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        res = trial.last_result or {}
        self._close(trial, Outcome("pruned", f"after epoch {res.get('epoch', '?')}"))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, trial_error(trial))
