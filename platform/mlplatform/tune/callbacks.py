"""Driver-side Tune callbacks: terminal progress, and closing each trial's MLflow run.

Code after a trial's last report never runs when ASHA stops it (NOTES-stack.md), so a trial cannot
end its own MLflow run then: the driver does it here, with the reason as a tag.
"""
from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback


class SweepProgress(Callback):
    """One line per trial event: done/running/stopped counts, best so far, estimated time left."""

    def __init__(self, metric: str, mode: str, n_trials: int, max_concurrent: int):
        self.metric, self.mode, self.n, self.k = metric, mode, n_trials, max(1, max_concurrent)
        self.t0 = time.time()
        self.best: tuple[float, str] | None = None
        self.done: dict[str, str] = {}
        self.running: set[str] = set()
        self.durations: list[float] = []
        self.started: dict[str, float] = {}

    def _line(self, msg: str) -> None:
        n_done = len(self.done)
        pruned = sum(1 for v in self.done.values() if v == "stopped")
        failed = sum(1 for v in self.done.values() if v == "failed")
        best = f"best {self.metric}={self.best[0]:.4g} ({self.best[1]})" if self.best else "best -"
        eta = ""
        if self.durations:
            left = max(0, self.n - n_done)
            avg = sum(self.durations) / len(self.durations)
            eta = f"  ETA ~{left * avg / self.k:.0f}s"
        print(f"[sweep {time.time() - self.t0:6.0f}s] {n_done}/{self.n} done ({pruned} stopped early, {failed} failed), "
              f"{len(self.running)} running; {best}{eta} | {msg}", flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self.started[trial.trial_id] = time.time()
        self._line(f"start {trial.trial_id}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        v = result.get(self.metric)
        if isinstance(v, (int, float)):
            if self.best is None or (v < self.best[0] if self.mode == "min" else v > self.best[0]):
                self.best = (float(v), trial.trial_id)

    def _end(self, trial: Any, kind: str) -> None:
        self.running.discard(trial.trial_id)
        if trial.trial_id in self.started:
            self.durations.append(time.time() - self.started.pop(trial.trial_id))
        self.done[trial.trial_id] = kind

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        res = trial.last_result or {}
        reason = res.get("stop_reason")
        kind = "completed" if reason == "completed" else "stopped"
        self._end(trial, kind)
        epochs = res.get("epoch", "?")
        self._line(f"{trial.trial_id} {kind} after {epochs} epoch(s)" + (f": {reason}" if reason and kind != "completed" else
                                                                          (": pruned by ASHA" if not reason else "")))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "failed")
        self._line(f"{trial.trial_id} FAILED")


class MlflowTrialCloser(Callback):
    """Ends every trial's child run with a status and a ``stop_reason`` tag; no run stays RUNNING."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.uri, self.exp, self.parent = tracking_uri, experiment_id, parent_run_id

    def _close(self, trial: Any, status: str, reason: str) -> None:
        from mlplatform.tracking import mlflow_utils as mu

        try:
            cl = mu.client(self.uri)
            run_id = mu.find_run(cl, self.exp, {"trial_id": trial.trial_id, mu.PARENT_TAG: self.parent})
            if run_id is None:
                return
            run = cl.get_run(run_id)
            if run.info.status == "RUNNING":
                tags = {} if "stop_reason" in run.data.tags else {"stop_reason": reason}
                mu.end_run_if_running(cl, run_id, status, tags)
        except Exception as e:  # noqa: BLE001 - never let bookkeeping kill the sweep
            print(f"[mlflow] could not close the run of {trial.trial_id}: {type(e).__name__}: {e}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        res = trial.last_result or {}
        self._close(trial, "KILLED", f"pruned by ASHA after epoch {res.get('epoch', '?')}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        err = ""
        try:
            err = (trial.error_file and open(trial.error_file).read().strip().splitlines()[-1]) or ""
        except Exception:  # noqa: BLE001
            pass
        self._close(trial, "FAILED", f"error: {err[:400]}" if err else "error")
