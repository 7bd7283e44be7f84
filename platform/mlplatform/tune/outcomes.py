"""How a trial ended, as one small vocabulary shared by the terminal progress and the sweep report.

The training loop and the driver write a free-text ``stop_reason`` (``completed``, ``early_stop: ...``,
``guard:<name>: ...``, ``alarm:<name>: ...``, ``loss_guard: ...``, ``pruned by ASHA ...``, ``error: ...``);
both consumers must count them the same way, so the parsing lives here and nowhere else.
"""
from __future__ import annotations

# display order: good endings first, then the ones a user must look at
OUTCOMES = ("completed", "early_stop", "pruned", "guard", "alarm", "loss_guard", "failed", "other", "running")
LABELS = {"completed": "completed", "early_stop": "early stop (plateau)", "pruned": "pruned by ASHA",
          "guard": "stopped by a guard", "alarm": "stopped by an exploit alarm",
          "loss_guard": "loss bound violated", "failed": "failed", "other": "stopped (other reason)",
          "running": "still running"}


def outcome(stop_reason: str | None, status: str | None = None) -> str:
    """One of ``OUTCOMES`` for a trial's ``stop_reason`` tag and MLflow status."""
    r = (stop_reason or "").strip()
    for prefix, kind in (("alarm:", "alarm"), ("guard:", "guard"), ("loss_guard", "loss_guard"),
                         ("early_stop", "early_stop"), ("pruned", "pruned"), ("error", "failed")):
        if r.startswith(prefix):
            return kind
    if r == "completed":
        return "completed"
    if status == "FAILED":
        return "failed"
    if not r:
        # a finished trial without a reason of ours was stopped by the scheduler between reports
        return "running" if status in (None, "RUNNING") else "pruned"
    return "other"


def reason_detail(stop_reason: str | None) -> str:
    """The named mechanism of a guard/alarm reason (``guard:rms_ratio: ...`` -> ``rms_ratio``), else ''."""
    r = stop_reason or ""
    if r.startswith(("guard:", "alarm:")):
        return r.split(":", 2)[1].strip()
    return ""
