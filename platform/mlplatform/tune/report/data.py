"""The sweep report's data types, read back from MLflow by ``build.load_sweep`` and used by every section:
a leaf module (it imports no section), so the sections and the builder need nothing from each other to
share them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MARGIN_PREFIX = "val/margin_"
FLOOR_PREFIX, CEILING_PREFIX, GAIN_KEY = "val/floor_", "val/ceiling_", "val/captured_gain"


@dataclass
class TrialRecord:
    run_id: str
    trial_id: str
    status: str
    stop_reason: str
    outcome: str
    start_time: int
    params: dict[str, Any]  # swept params only, typed as the search space declares them
    value: float | None  # best selection-metric value the trial reached (what Tune and the summary rank by)
    curve: list[tuple[int, float]]  # (epoch, selection metric)
    margins: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> (epoch, margin)
    floors: dict[str, float] = field(default_factory=dict)  # val/floor_<name>, last logged
    ceilings: dict[str, float] = field(default_factory=dict)  # val/ceiling_<name>, last logged
    gain: float | None = None  # val/captured_gain at the trial's best epoch
    items: dict[str, Any] | None = None  # the selected checkpoint's per-item values (tune/noise.py)
    objective_values: dict[str, float] = field(default_factory=dict)  # a Pareto sweep's objectives, last logged

    @property
    def epochs(self) -> int:
        return max((s for s, _ in self.curve), default=0)


@dataclass
class ConfirmRun:
    """A top-k confirmation run (tag ``confirm=true``): trial ``of`` retrained with ``seed``."""

    run_id: str
    of: str
    seed: int
    status: str
    mean: float | None  # its per-item mean of the selection metric at its best checkpoint


@dataclass
class SweepData:
    parent_run_id: str
    experiment_id: str
    experiment: str
    name: str
    family: str
    metric: str
    mode: str
    space: dict[str, dict[str, Any]]  # param -> {type, low, high} or {type: choice, values}
    space_source: str
    trials: list[TrialRecord]
    objectives: list[tuple[str, str]] = field(default_factory=list)  # (metric, mode) of a Pareto sweep
    confirm_runs: list[ConfirmRun] = field(default_factory=list)  # not trials: they rank nothing
    confirm: dict[str, Any] = field(default_factory=dict)  # the parent's confirm/* metrics and tags

    def ranked(self) -> list[TrialRecord]:
        """Best first; trials without a value last (in start order)."""
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(self.trials, key=lambda t: (t.value is None, sign * t.value if t.value is not None else 0.0,
                                                  t.start_time))
