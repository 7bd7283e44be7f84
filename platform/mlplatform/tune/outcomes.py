"""How a trial ended, as the small set of classes the terminal progress and the sweep report count.

A trial's ending is a typed :class:`~mlplatform.train.outcome.Outcome` where it happens; MLflow and Tune
hold its rendered ``stop_reason`` text. Both consumers read it back through
:func:`~mlplatform.train.outcome.parse_reason` (the one parser) and :func:`classify`, so they count alike.
"""
from __future__ import annotations

from mlplatform.train.outcome import Outcome, parse_reason

# display order: good endings first, then the ones a user must look at
OUTCOMES = ("completed", "early_stop", "pruned", "guard", "alarm", "loss_guard", "failed", "other", "running")
LABELS = {"completed": "completed", "early_stop": "early stop (plateau)", "pruned": "pruned by ASHA",
          "guard": "stopped by a guard", "alarm": "stopped by an exploit alarm",
          "loss_guard": "loss bound violated", "failed": "failed", "other": "stopped (other reason)",
          "running": "still running"}


def classify(ended: Outcome | None, status: str | None = None) -> str:
    """One of ``OUTCOMES`` for a trial's ending (None: no reason recorded) and its MLflow status."""
    if ended is None:
        if status == "FAILED":
            return "failed"
        # a finished trial without a reason of ours was stopped by the scheduler between reports
        return "running" if status in (None, "RUNNING") else "pruned"
    if ended.kind in OUTCOMES and ended.kind != "other":
        return ended.kind
    return "failed" if status == "FAILED" else "other"  # text of no kind, interrupted, superseded


def outcome(stop_reason: str | None, status: str | None = None) -> str:
    """One of ``OUTCOMES`` for a trial's ``stop_reason`` tag and MLflow status."""
    return classify(parse_reason(stop_reason), status)


def reason_detail(stop_reason: str | None) -> str:
    """The named mechanism of a guard/alarm reason (``guard:rms_ratio: ...`` -> ``rms_ratio``), else ''."""
    ended = parse_reason(stop_reason)
    return ended.name if ended is not None else ""
