"""ASHA's rungs kept across a driver kill, so a resumed sweep prunes as the uninterrupted one would.

Ray Tune's experiment snapshot holds the trials, the searcher and the callbacks' states, but not the
scheduler's: ``TuneController.save_to_dir`` leaves ``_scheduler_alg`` out, and ``Tuner.restore`` builds the
scheduler again from ``tuner.pkl``, i.e. as it was before the first trial. Every rung is then empty: a
resumed trial reaching a rung is compared with none of the trials that reached it before the kill, and is
kept where the uninterrupted sweep would have stopped it (and later trials see a different cutoff).

:class:`SchedulerState` is a Tune callback holding the scheduler it was built with. Callbacks' states are
written by the same ``save_to_dir`` call as the trials and the searcher, so the rungs it saves are those
of the same snapshot; and Tune restores callbacks' states before it re-adds the restored trials, so the
scheduler has its rungs back before any trial reports again. Both objects are pickled together in
``tuner.pkl``, so after a restore the callback still holds the scheduler Tune uses.

What is kept: each bracket's recorded value per trial at each rung, and ASHA's count of stopped trials.
Results a trial reported after the snapshot are reported again when it re-runs from its checkpoint, to
the rungs as they were at the snapshot: the same cutoffs, so the same decisions.
"""
from __future__ import annotations

import copy
from typing import Any

from ray.tune import Callback

STATE_VERSION = 1


class SchedulerState(Callback):
    """Saves and restores an ``AsyncHyperBandScheduler``'s rungs with Tune's experiment snapshot."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        brackets = getattr(self.scheduler, "_brackets", None)
        if brackets is None:  # not an ASHA scheduler: nothing to keep
            return None
        # deep copies: Tune pickles the state later, while trials keep reporting into the live rungs
        return {"version": STATE_VERSION, "num_stopped": int(getattr(self.scheduler, "_num_stopped", 0)),
                "rungs": [copy.deepcopy(b._rungs) for b in brackets]}

    def set_state(self, state: dict[str, Any]) -> None:
        brackets = getattr(self.scheduler, "_brackets", None)
        if state.get("version") != STATE_VERSION or brackets is None:
            raise ValueError(f"unknown scheduler state (version {state.get('version')!r}) for "
                             f"{type(self.scheduler).__name__}")
        saved = state["rungs"]
        milestones = [[m for m, _ in b._rungs] for b in brackets]
        if [[m for m, _ in r] for r in saved] != milestones:
            raise ValueError(f"the saved ASHA rungs {[[m for m, _ in r] for r in saved]} are not this "
                             f"scheduler's {milestones}: its grace period, max_t or reduction factor changed")
        for b, rungs in zip(brackets, saved):
            b._rungs = copy.deepcopy(rungs)
        self.scheduler._num_stopped = int(state["num_stopped"])

    def recorded(self) -> list[dict[float, dict[str, float]]]:
        """Per bracket, {milestone: {trial id: recorded value}} (what the rungs hold now)."""
        return [{m: dict(rec) for m, rec in b._rungs} for b in getattr(self.scheduler, "_brackets", [])]
