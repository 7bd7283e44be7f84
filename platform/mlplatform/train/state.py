"""The loop's per-run state: what a checkpoint must carry for an exact resume.

:class:`RunState` is saved into the checkpoint as a plain dict (``to_payload``), so checkpoints stay
``weights_only``-loadable and keep the layout earlier versions wrote: ``epoch``, ``step``, ``best``,
``best_epoch``, ``bad_vals`` plus the exploit monitor's keys (``integrity.monitor.STATE_KEYS``) at the
top level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlplatform.integrity.monitor import STATE_KEYS, fresh_state


def is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


@dataclass
class RunState:
    epoch: int = 0  # epochs done
    step: int = 0  # optimizer steps done
    best: float | None = None  # best value of the selection metric so far
    best_epoch: int = -1  # 0-based epoch of ``best``; -1 before any validation
    bad_vals: int = 0  # validations since the last improvement (early-stop patience)
    monitor: dict[str, Any] = field(default_factory=fresh_state)  # the exploit monitor's counters

    def select(self, value: float, epoch: int, mode: str) -> bool:
        """Record one validation's selection-metric value; True when it is the new best."""
        if is_better(value, self.best, mode):
            self.best, self.best_epoch, self.bad_vals = value, epoch, 0
            return True
        self.bad_vals += 1
        return False

    def forget_selection(self) -> None:
        """A new run from an old checkpoint: keep weights and step, forget the selection history."""
        self.best, self.best_epoch, self.bad_vals, self.monitor = None, -1, 0, fresh_state()

    def to_payload(self) -> dict[str, Any]:
        # the checkpoint counts epochs as people and the MLflow ``best_epoch`` tag do (1 = the first epoch,
        # 0 = none yet); ``epoch_base`` tells it apart from checkpoints that stored the 0-based index
        return {"epoch": self.epoch, "step": self.step, "best": self.best, "best_epoch": self.best_epoch + 1,
                "epoch_base": 1, "bad_vals": self.bad_vals, **self.monitor}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "RunState":
        monitor = {k: payload[k] if k in payload else t() for k, t in STATE_KEYS.items()}
        best_epoch = int(payload["best_epoch"]) - int(payload.get("epoch_base", 0))
        return cls(epoch=int(payload["epoch"]), step=int(payload["step"]), best=payload["best"],
                   best_epoch=best_epoch, bad_vals=int(payload["bad_vals"]), monitor=monitor)
