"""Executors: the same ``run_training`` loop under a plain process, Ray Train, or a Tune trial.

- ``LocalReporter``: in-process (litmus/overfit jobs, tests, benchmarks' bare baseline).
- ``train_loop_per_worker``: the ``TorchTrainer`` entry point (``jobs/train.py``, multi-worker trials).
- ``tune_trial``: a Tune *function* trainable. Single-worker trials run the loop right here (about
  1.3 s overhead per trial on 2 cores); with ``workers_per_trial > 1`` it builds and fits a
  ``TorchTrainer`` with ``TuneReportCallback`` (Ray 2.60's Train-in-Tune pattern; NOTES-stack.md).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mlplatform.train.loop import run_training


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


class RayTrainReporter:
    def __init__(self) -> None:
        import ray.train

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.local_rank = ctx.get_local_rank()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        ck = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ck)

    def latest_checkpoint(self) -> str | None:
        import ray.train

        ck = ray.train.get_checkpoint()
        return ck.to_directory() if ck is not None else None


class TuneReporter:
    rank = 0
    world_size = 1
    local_rank = 0

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.tune

        ck = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=ck)

    def latest_checkpoint(self) -> str | None:
        import ray.tune

        ck = ray.tune.get_checkpoint()
        return ck.to_directory() if ck is not None else None


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point of every ``TorchTrainer`` worker."""
    run_training(config, RayTrainReporter())


def run_local(opts: dict[str, Any]) -> tuple[dict[str, Any], LocalReporter]:
    rep = LocalReporter()
    return run_training(opts, rep), rep


def tune_trial(params: dict[str, Any], base: dict[str, Any]) -> None:
    """One sweep trial. ``params`` are dotted config keys sampled by the searcher."""
    import logging

    import ray.tune

    from mlplatform.registry import get_family
    from mlplatform.tracking import mlflow_utils as mu

    for name in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" per epoch per trial
        logging.getLogger(name).setLevel(logging.WARNING)

    fam = get_family(base["family"])
    cfg = fam.config_cls.from_dict(base["cfg"]).override(dict(params))
    ctx = ray.tune.get_context()
    trial_id = ctx.get_trial_id()
    opts = dict(base, cfg=cfg.to_dict(), label=f"{fam.name} {trial_id}")
    if base.get("parent_run_id"):
        cl = mu.client(base.get("tracking_uri"))
        key = {"trial_id": trial_id, mu.PARENT_TAG: base["parent_run_id"]}
        opts["mlflow_run_id"] = mu.start_or_continue_run(
            cl, base["experiment_id"], run_name=f"{base.get('sweep_name', 'sweep')}-{trial_id}",
            tags={"sweep": base.get("sweep_name", ""), "family": fam.name}, key_tags=key)
    trial_dir = Path(ctx.get_trial_dir() or tempfile.mkdtemp())
    opts["work_dir"] = str(trial_dir / "work")
    n = int(base.get("workers_per_trial", 1))
    if n <= 1:
        opts["cpus"] = base.get("cpus_per_trial", 1)
        run_training(opts, TuneReporter())
        return
    # multi-worker trial: a TorchTrainer per trial, reporting through TuneReportCallback
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    gpus = float(base.get("gpus_per_worker", 0))
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=opts,
        scaling_config=ScalingConfig(num_workers=n, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": float(base.get("cpus_per_worker", 1)),
                                                           **({"GPU": gpus} if gpus > 0 else {})}),
        # same name + storage on a restored sweep: Train v2 resumes this trial from its latest checkpoint
        run_config=RunConfig(name=f"train-{trial_id}", storage_path=base["storage_path"],
                             callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def ensure_env_for_workers() -> dict[str, str]:
    """Env vars every Ray worker should inherit (set on ``ray.init`` runtime_env)."""
    env = {k: v for k, v in os.environ.items()
           if k in ("MLFLOW_TRACKING_URI", "MLPLATFORM_HOME", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                    "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLPLATFORM_MLFLOW_RETRY_S", "MLPLATFORM_MIN_FREE_MB")}
    # Train v2 blocks ~2 s per report at the default health-check interval (NOTES-stack.md)
    env.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"))
    return env
