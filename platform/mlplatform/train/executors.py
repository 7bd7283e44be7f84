"""Executors: the same ``run_training`` loop under a plain process, Ray Train, or a Tune trial.

- ``LocalReporter``: in-process (litmus/overfit jobs, tests, benchmarks' bare baseline).
- ``train_loop_per_worker``: the ``TorchTrainer`` entry point (``jobs/train.py``, multi-worker trials).
- ``tune_trial``: a Tune *function* trainable. Single-worker trials run the loop right here, in worker
  processes Tune reuses across trials (docs/benchmarks.md, section 2, measured 0.04 s of sweep wall time
  per trial, 1.9 s per trial slot, on 2 cores); with ``workers_per_trial > 1`` it builds and fits a
  ``TorchTrainer`` whose reports reach Tune through ``tune_bridge`` (Ray 2.60's pattern for Train inside
  Tune, without its end-of-fit deadlock; about 2.3x the per-slot cost: it starts a worker group per trial).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from mlplatform.train.loop import run_training
from mlplatform.train.options import RunOptions


class LocalReporter:
    rank = 0
    world_size = 1
    local_rank = 0

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.checkpoints: list[str | None] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.history.append(dict(metrics))
        self.checkpoints.append(checkpoint_dir)

    def latest_checkpoint(self) -> str | None:
        return None  # a local run resumes only from an explicit --resume path


# the result key under which a multi-worker sweep trial's rank 0 names its worker group's placement group
PLACEMENT_GROUP_KEY = "placement_group_id"


class RayReporter:
    """Reports through Ray Train (``api="train"``: a ``TorchTrainer`` worker, ranks from its context) or
    Ray Tune (``api="tune"``: a single-process function trial, rank 0 of 1); the calls are the same.

    ``record_placement_group``: rank 0 adds its worker group's placement group id to every report, so
    the sweep driver can remove the group when the trial ends (``tune.placement``)."""

    def __init__(self, api: Literal["train", "tune"], record_placement_group: bool = False) -> None:
        import importlib

        self.api = importlib.import_module(f"ray.{api}")
        self.rank, self.world_size, self.local_rank = 0, 1, 0
        self.extra: dict[str, str] = {}
        if api == "train":
            ctx = self.api.get_context()
            self.rank, self.world_size, self.local_rank = ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()
        if record_placement_group and self.rank == 0:
            from ray.util import get_current_placement_group

            pg = get_current_placement_group()  # a Train worker runs in its worker group's placement group
            if pg is not None:
                self.extra[PLACEMENT_GROUP_KEY] = pg.id.hex()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ck = self.api.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        self.api.report({**metrics, **self.extra}, checkpoint=ck)

    def latest_checkpoint(self) -> str | None:
        ck = self.api.get_checkpoint()
        return ck.to_directory() if ck is not None else None


def RayTrainReporter() -> RayReporter:  # noqa: N802 - the name benchmarks use
    return RayReporter("train")


def TuneReporter() -> RayReporter:  # noqa: N802 - the name benchmarks use
    return RayReporter("tune")


# Ray Train v2 retries a failing controller (a worker group that cannot start, e.g. workers that cannot be
# placed) without limit by default: a run that could never start never ended. Each try waits
# RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (Ray's default 60 s), so a run that cannot start ends after
# (CONTROLLER_FAILURE_LIMIT + 1) x that timeout, FAILED, with the reason.
CONTROLLER_FAILURE_LIMIT = 2


def failure_config(max_failures: int) -> Any:
    """Worker failures retried ``max_failures`` times from the last checkpoint; controller failures bounded."""
    from ray.train import FailureConfig

    return FailureConfig(max_failures=max_failures, controller_failure_limit=CONTROLLER_FAILURE_LIMIT)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point of every ``TorchTrainer`` worker: ``config["run"]`` is the run's :class:`RunOptions`."""
    run_training(config["run"], RayReporter("train", config.get("record_placement_group", False)))


def run_local(opts: RunOptions | Mapping[str, Any]) -> tuple[dict[str, Any], LocalReporter]:
    rep = LocalReporter()
    return run_training(opts, rep), rep


@dataclass(frozen=True)
class TrialOptions:
    """What every trial of a sweep shares: the run options of the base config, and where trials log
    and store. Built once by the sweep driver, handed to each trial by ``tune.with_parameters``."""

    run: RunOptions
    parent_run_id: str = ""  # the sweep's MLflow run; each trial opens (or continues) a child run of it
    experiment_id: str = ""
    sweep_name: str = "sweep"
    storage_path: str = ""
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


def _trial_run_id(base: TrialOptions, trial_id: str, name: str = "", tags: Mapping[str, str] | None = None) -> str | None:
    from mlplatform.tracking import mlflow_utils as mu

    if not base.parent_run_id:
        return None
    cl = mu.client(base.run.tracking_uri)
    key = {"trial_id": trial_id, mu.PARENT_TAG: base.parent_run_id}
    return mu.start_or_continue_run(cl, base.experiment_id, run_name=name or f"{base.sweep_name}-{trial_id}",
                                    tags={"sweep": base.sweep_name, "family": base.run.family_name, **(tags or {})},
                                    key_tags=key)


def _unpack(params: Mapping[str, Any], base: TrialOptions, trial_id: str) -> tuple[dict[str, Any], str, dict[str, str]]:
    """A trial's config keys, run name and extra tags. A confirmation run (``tune.confirm``) gets
    ``{"_confirm": {"of", "seed", "config"}}``: the confirmed trial's keys with a new ``train.seed``."""
    conf = params.get("_confirm")
    if conf is None:
        return dict(params), "", {}
    keys = {**conf["config"], "train.seed": conf["seed"]}
    tags = {"confirm": "true", "confirm_of": str(conf["of"]), "confirm_seed": str(conf["seed"])}
    return keys, f"{base.sweep_name}-confirm-{conf['of']}-seed{conf['seed']}", tags


def trial_work_dir(trial_dir: Path) -> Path:
    """Where a trial keeps its per-epoch checkpoints: beside Tune's trial folder, not inside it. Tune copies
    the whole ``driver_artifacts`` folder to the storage path with every experiment snapshot; inside it, the
    loop's deletion of old epoch folders raced that copy ("Saving experiment state to storage ... failed",
    FileNotFoundError, so that snapshot was lost) and every checkpoint was copied twice. Same lifetime: both
    live in the Ray session's folder."""
    if trial_dir.parent.name == "driver_artifacts":
        return trial_dir.parent.parent / "trial_work" / trial_dir.name
    return trial_dir / "work"


def tune_trial(params: dict[str, Any], base: TrialOptions) -> None:
    """One sweep trial. ``params`` are dotted config keys sampled by the searcher; the base config is
    overridden (and validated) once here."""
    import logging

    import ray.tune

    for name in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" per epoch per trial
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = ray.tune.get_context()
    trial_id = ctx.get_trial_id()
    trial_dir = Path(ctx.get_trial_dir() or tempfile.mkdtemp())
    keys, name, tags = _unpack(params, base, trial_id)
    opts = base.run.replace(cfg=base.run.cfg.override(keys), label=f"{base.run.family_name} {trial_id}",
                            mlflow_run_id=_trial_run_id(base, trial_id, name, tags), work_dir=str(trial_work_dir(trial_dir)))
    if base.workers_per_trial <= 1:
        run_training(opts.replace(cpus=base.cpus_per_worker), RayReporter("tune"))
        return
    # multi-worker trial: a TorchTrainer per trial, its reports forwarded to Tune by the training thread
    # (tune_bridge: Ray's TuneReportCallback can deadlock the trial when fit() ends)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mlplatform.train.tune_bridge import fit_and_report

    gpus = base.gpus_per_worker

    def make_trainer(callback: Any) -> Any:
        return TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"run": opts, "record_placement_group": True},
            scaling_config=ScalingConfig(num_workers=base.workers_per_trial, use_gpu=gpus > 0,
                                         resources_per_worker={"CPU": base.cpus_per_worker,
                                                               **({"GPU": gpus} if gpus > 0 else {})}),
            # same name + storage on a restored sweep: Train v2 resumes this trial from its latest checkpoint
            run_config=RunConfig(name=f"train-{trial_id}", storage_path=base.storage_path,
                                 failure_config=failure_config(0), callbacks=[callback]),
        )

    fit_and_report(make_trainer)


def ensure_env_for_workers() -> dict[str, str]:
    """Env vars every Ray worker should inherit (set on ``ray.init`` runtime_env)."""
    env = {k: v for k, v in os.environ.items()
           if k in ("MLFLOW_TRACKING_URI", "MLPLATFORM_HOME", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                    "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLPLATFORM_MLFLOW_RETRY_S", "MLPLATFORM_MIN_FREE_MB", "MLPLATFORM_SYSTEM_METRICS",
                    "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING",
                    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S")}
    # Ray Train v2's controller polls its workers at this interval, and each report waits for the next
    # poll: at the default interval a short epoch paid about 2 s per report
    env.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"))
    # Train v2 re-routes a worker's print() to its logger *and*, once anything has wrapped sys.stdout (rank 0
    # has MLflow), also prints it: every epoch line of rank 0 came out twice. Plain prints, once.
    env.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", os.environ.get("RAY_TRAIN_ENABLE_PRINT_PATCH", "0"))
    return env
