"""MLflow's own system-metrics monitor on a training run (rank 0 only: one monitor per run).

``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes`` and the other CPU,
memory, disk and network figures come from psutil; GPU utilisation and memory too when the ``gpu`` extra
(``nvidia-ml-py``) is installed and a GPU is visible (without it MLflow skips the GPU monitor with a log
line). The names are MLflow's, so the UI's "System metrics" tab shows them.

Settings, read from the environment (Ray workers get them through ``ensure_env_for_workers``):

- ``MLPLATFORM_SYSTEM_METRICS=0`` turns the monitor off;
- ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (MLflow's own, seconds; default 10 here) and
  ``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING`` (default 1).

The monitor thread stops at :func:`stop` (the loop's ``finish_run``) and by itself at its next sample
once the run is no longer RUNNING (a trial stopped by the scheduler is ended by the sweep's closer).
A Tune actor reused for the next trial stops the previous trial's monitor when it starts a new one.
"""
from __future__ import annotations

import logging
import os
from typing import Any

DEFAULT_INTERVAL_S = 10.0
_active: dict[str, Any] = {}  # run id -> monitor, in this process


def enabled() -> bool:
    return os.environ.get("MLPLATFORM_SYSTEM_METRICS", "1").strip().lower() not in ("0", "false", "off", "no")


def start(run_id: str, tracking_uri: str, resume: bool = False) -> Any:
    """Start the monitor on ``run_id`` (``resume``: continue its ``system/`` steps after a restart).
    Returns the monitor, or None when turned off or when MLflow cannot start it (never fails a run)."""
    for other in [r for r in _active if r != run_id]:
        stop(other)
    if not enabled() or run_id in _active:
        return _active.get(run_id)
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # "Started monitoring ..." per run
        mon = SystemMetricsMonitor(run_id, sampling_interval=DEFAULT_INTERVAL_S, resume_logging=resume,
                                   tracking_uri=tracking_uri)
        mon.start()
    except Exception as e:  # noqa: BLE001 - system metrics are a convenience, never a reason to fail training
        print(f"[mlflow] system metrics not logged ({type(e).__name__}: {e})", flush=True)
        return None
    _active[run_id] = mon
    return mon


def stop(run_id: str) -> None:
    """Stop the run's monitor and send what it sampled (no-op when none runs)."""
    mon = _active.pop(run_id, None)
    if mon is not None:
        try:
            mon.finish()
        except Exception:  # noqa: BLE001 - the store went away: the run's own metrics matter, not these
            pass
