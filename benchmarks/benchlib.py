"""Shared helpers of the benchmark scripts: machine facts, a local Ray, timed reporters, JSON output.

Every benchmark prints ONE JSON object on its last stdout line (``emit``); ``run_all.py`` collects them.
Figures are ratios against a baseline measured in the same process run, because this 2-core machine is
shared and absolute times drift by 2x between minutes.

This module is imported by Ray workers too (``start_ray`` puts this folder on their PYTHONPATH), so it
holds the executor wrappers that time each report.
"""
from __future__ import annotations

import json
import os
import platform as _stdlib_platform  # the stdlib module (the package folder is never on sys.path here)
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def machine() -> dict[str, Any]:
    import torch

    try:
        import ray
        ray_version = ray.__version__
    except ImportError:  # gpu.py --prepared runs bare on a GPU machine that may not have Ray
        ray_version = "absent"

    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = _stdlib_platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "torch": torch.__version__, "ray": ray_version, "python": _stdlib_platform.python_version(),
            "cuda": torch.cuda.is_available()}


def emit(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Print the benchmark's one JSON line (last line of stdout) and return it."""
    out = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    print(json.dumps(out, default=_jsonable), flush=True)
    return out


def _jsonable(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (the least disturbed by other processes on a shared machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def scratch(prefix: str) -> Path:
    """A fresh folder for Ray storage / the MLflow store of one benchmark (never the user's)."""
    return Path(tempfile.mkdtemp(prefix=f"mlp-bench-{prefix}-"))


def quiet_logs() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("ray", "ray.train", "ray.tune", "ray.data", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def start_ray(num_cpus: int = 2) -> dict[str, Any]:
    """A local Ray like the platform's embedded one, with this folder importable by its workers."""
    import ray

    from mlplatform.train.executors import ensure_env_for_workers

    quiet_logs()
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        path = os.pathsep.join([str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                 logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {**ensure_env_for_workers(), "PYTHONPATH": path}})
    return ray.cluster_resources()


# ------------------------------------------------------------------------------------------------
# timed executors: the platform's own loop and reporters, with a timestamp taken at every report
# ------------------------------------------------------------------------------------------------

class TimedReporter:
    """Wraps a platform Reporter; appends (epoch time, report time) to a JSON file at every report.

    The file is rewritten at each report so nothing is lost if the executor never returns.
    """

    def __init__(self, inner: Any, out: str):
        self.inner, self.out = inner, out
        self.rank, self.world_size, self.local_rank = inner.rank, inner.world_size, inner.local_rank
        self.t_start = time.perf_counter()
        self.rows: list[dict[str, float]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.rows.append({"epoch_time_s": float(metrics["sys/epoch_time_s"]),
                          "t_report": time.perf_counter() - self.t_start})
        if self.rank == 0:
            Path(self.out).write_text(json.dumps(self.rows))
        self.inner.report(metrics, checkpoint_dir)

    def latest_checkpoint(self) -> str | None:
        return self.inner.latest_checkpoint()


def timed_train_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` with timed reports (TorchTrainer)."""
    import mlplatform.registry  # noqa: F401 - a Ray worker resolves the family by name through it
    from mlplatform.train.executors import RayTrainReporter
    from mlplatform.train.loop import run_training

    opts = dict(config)
    run_training(opts, TimedReporter(RayTrainReporter(), opts.pop("bench_out")))


def timed_tune_trial(config: dict[str, Any], opts: dict[str, Any]) -> None:
    """A single-worker Tune function trial (``tune_trial``'s path) with timed reports."""
    import mlplatform.registry  # noqa: F401 - a Ray worker resolves the family by name through it
    from mlplatform.train.executors import TuneReporter
    from mlplatform.train.loop import run_training

    opts = dict(opts)
    run_training(opts, TimedReporter(TuneReporter(), opts.pop("bench_out")))


def timed_local(opts: dict[str, Any]) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The bare baseline: the same loop in this process. Returns (timed rows, the loop's summary)."""
    from mlplatform.train.executors import LocalReporter
    from mlplatform.train.loop import run_training

    opts = dict(opts)
    rep = TimedReporter(LocalReporter(), opts.pop("bench_out"))
    summary = run_training(opts, rep)
    return rep.rows, summary


def rates(rows: list[dict[str, float]], steps_per_epoch: float, skip: int = 1) -> dict[str, float]:
    """steps/s from the loop's own epoch timing (``compute``: training steps only) and from
    report-to-report wall time (``loop``: + validation, checkpoint, the executor's report), each from
    the fastest epoch (the one least disturbed by other processes on a shared machine) and the median.
    The first ``skip`` epochs are left out: they include lazy initialisation every executor pays once."""
    rows = rows[skip:] if len(rows) > skip + 1 else rows
    et = [r["epoch_time_s"] for r in rows]
    gaps = [b["t_report"] - a["t_report"] for a, b in zip(rows, rows[1:])] or [float("nan")]
    return {"compute": steps_per_epoch / min(et), "loop": steps_per_epoch / min(gaps),
            "compute_median": steps_per_epoch / median(et), "loop_median": steps_per_epoch / median(gaps),
            "epochs_timed": len(rows)}


def read_rows(path: str | Path) -> list[dict[str, float]]:
    return json.loads(Path(path).read_text()) if Path(path).exists() else []
