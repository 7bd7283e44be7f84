"""The platform's own figures as Ray metrics (``ray.util.metrics.Gauge``), beside Ray's node and GPU series.

Each process that records holds its gauges; Ray's core worker hands them to the node's metrics agent
(every ``RAY_metrics_report_interval_ms``, 10 s by default), which serves them to Prometheus. Ray's exporter
prefixes every name with its namespace, so ``mlplatform_steps_per_s`` is queried as
``ray_mlplatform_steps_per_s`` (measured on Ray 2.60: docs/observability.md lists the exported names and
labels). Nothing here may stop a run: without an initialised Ray (a plain process, a unit test) every call
is a no-op, and any error while creating or setting a gauge is logged once and then ignored.
"""
from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # only for the annotation: the loop imports this module, not the other way round
    from mlplatform.train.setup import RunContext

log = logging.getLogger(__name__)

PREFIX = "mlplatform_"
EXPORTED_PREFIX = "ray_"  # added by Ray's metrics agent (its Prometheus namespace)
RUN_TAGS = ("run", "trial", "rank", "family")
# name -> (description, tag keys); the dashboard (docs/grafana/mlplatform.json) queries these names
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "steps_per_s": ("optimiser steps per second of the epoch's training phase, per rank", RUN_TAGS),
    "data_wait_frac": ("fraction of the epoch's training phase spent waiting for data, per rank", RUN_TAGS),
    "epoch": ("epochs finished by the run", RUN_TAGS),
    "selection_metric": ("the run's checkpoint-selection metric at its latest validation", RUN_TAGS + ("metric",)),
    "trials": ("trials of a sweep by state (running, or how they ended)", ("sweep", "state")),
}

_made: dict[str, Any] = {}
_broken = False  # one failure (no metrics support, a bad tag) turns the whole module off for this process


def exported_name(name: str) -> str:
    """The name Prometheus stores: ``steps_per_s`` -> ``ray_mlplatform_steps_per_s``."""
    return f"{EXPORTED_PREFIX}{PREFIX}{name}"


def _gauge(name: str) -> Any | None:
    """The process's gauge ``name``, made on first use; None when Ray is not initialised or broken here."""
    if _broken:
        return None
    ray = sys.modules.get("ray")  # not imported means not initialised: no import cost for plain runs
    if ray is None or not ray.is_initialized():
        return None
    if name not in _made:
        from ray.util.metrics import Gauge

        desc, tags = GAUGES[name]
        _made[name] = Gauge(PREFIX + name, description=desc, tag_keys=tags)
    return _made[name]


def _set(name: str, value: Any, tags: Mapping[str, str]) -> None:
    try:
        gauge = _gauge(name)
        if gauge is None or value is None:
            return
        value = float(value)
        if math.isfinite(value):
            gauge.set(value, tags=dict(tags))
    except Exception as e:  # noqa: BLE001 - observability must never fail a training run
        _set_broken(e)


def run_tags(run: "RunContext") -> dict[str, str]:
    """``run``: the MLflow run id (the label when none); ``trial``: the Tune trial id, which
    ``executors.tune_trial`` puts into the label as ``"<family> <trial_id>"`` ('' outside a sweep)."""
    label, prefix = run.label or run.fam.name, f"{run.fam.name} "
    trial = label[len(prefix):] if label.startswith(prefix) else ""  # jobs/train.py's label is the run name
    return {"run": run.opts.mlflow_run_id or label, "trial": trial, "rank": str(run.rank), "family": run.fam.name}


def record_epoch(run: "RunContext", metrics: Mapping[str, Any], *, epoch: int, steps: int) -> None:
    """After each epoch: steps/s and data-wait fraction of its training phase (``steps`` optimiser steps
    in ``sys/epoch_time_s``), ``epoch`` (epochs finished), and the selection metric when this epoch
    validated. ``metrics`` is the epoch's metrics dict (train/loop.py), read, not recomputed."""
    try:
        if _gauge("epoch") is None:
            return
        tags = run_tags(run)
        train_s = metrics.get("sys/epoch_time_s")
        if train_s:
            _set("steps_per_s", steps / train_s, tags)
        _set("data_wait_frac", metrics.get("sys/data_wait_frac"), tags)
        _set("epoch", epoch, tags)
        _set("selection_metric", metrics.get(run.sel_metric), {**tags, "metric": run.sel_metric})
    except Exception as e:  # noqa: BLE001 - as in _set: never into training
        _set_broken(e)


def record_trial_counts(counts: Mapping[str, int], sweep: str) -> None:
    """The sweep's trials by state (``{"running": 2, "completed": 5, "pruned": 1, ...}``), from the driver."""
    try:
        for state, n in counts.items():
            _set("trials", n, {"sweep": sweep, "state": state})
    except Exception as e:  # noqa: BLE001 - a progress callback must not fail the sweep
        _set_broken(e)


def _set_broken(e: Exception) -> None:
    global _broken
    if not _broken:
        log.warning("mlplatform gauges disabled in this process: %s: %s", type(e).__name__, e)
    _broken = True
