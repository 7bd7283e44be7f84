#!/usr/bin/env python
"""Train one family with Ray Train's TorchTrainer (gloo on CPU, nccl on GPU), logging one MLflow run.

  python jobs/train.py --family riscov --preset debug
  python jobs/train.py --family riscov --num-workers 2 --set optim.lr=3e-3
  python jobs/train.py --family riscov --name myrun --resume                  # continue run 'myrun'
  python jobs/train.py --family tse --resume CHECKPOINT_DIR --reset-optimizer # new run from a checkpoint
  python jobs/train.py --family riscov --config resolved_config.yaml          # a run's resolved config again
  python jobs/rerun.py RUN_ID                     # retrain from a run's manifest.json and compare (bit for bit on CPU)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mlplatform.cli import (JobInterrupted, UsageError, add_config_args, call_interruptibly,
                            maybe_list_keys, one_line_errors, raise_on_stop_signals, resolve_preset)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--num-workers", type=int, default=1, help="DDP workers (default %(default)s)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (default %(default)s)")
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs per worker (default 1 when the cluster has GPUs, else 0); fractions allowed")
    p.add_argument("--resume", nargs="?", const="__same_name__", default=None, metavar="CHECKPOINT",
                   help="without a value: continue the run given by --name from its latest checkpoint; "
                        "with a checkpoint folder: start a new run from it")
    p.add_argument("--reset-optimizer", action="store_true",
                   help="with --resume CHECKPOINT: keep weights and step, start a fresh optimizer and scheduler")
    p.add_argument("--experiment", default="", help="MLflow experiment (default: the family name)")
    p.add_argument("--name", default="", help="run name (default <family>-<timestamp>); reuse it with --resume")
    p.add_argument("--storage-path", default="", help="Ray storage for checkpoints (default <repo>/ray_results)")
    p.add_argument("--max-failures", type=int, default=2, help="worker-failure retries from the last checkpoint")
    p.add_argument("--config", default="", metavar="YAML",
                   help="a resolved config (a run's config/resolved_config.yaml) instead of the preset; --set "
                        "overrides still apply on top")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace, fam: Any) -> Any:
    """The run's config: --config's file, else the preset, then the overrides; validated either way."""
    from mlplatform.config import ConfigError
    from mlplatform.registry import build_config

    if not args.config:
        return build_config(args.family, resolve_preset(args.preset), args.overrides)
    import yaml

    try:
        data = yaml.safe_load(Path(args.config).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"--config {args.config}: cannot read it as YAML ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {args.config}: expected a mapping of config sections, got {type(data).__name__}")
    return fam.config_cls.from_dict(data).override(args.overrides)


def check_args(args: argparse.Namespace) -> tuple[Any, Any, str | None]:
    """Before Ray starts: flags, config and metric contract, the --resume checkpoint (exit 2 on bad input).
    Returns (family, the config checked with the preset ``auto`` means before Ray starts, resume path)."""
    from mlplatform.integrity.contracts import check_contract
    from mlplatform.registry import get_family
    from mlplatform.train.checkpoint import load_checkpoint

    fam = get_family(args.family)
    # bad overrides, or a selection metric that is undeclared, exploitable or of the wrong direction: exit 2 now
    cfg = load_config(args, fam)
    check_contract(fam, cfg)
    if args.num_workers < 1:
        raise UsageError(f"--num-workers must be >= 1, got {args.num_workers}")
    if args.reset_optimizer and (args.resume in (None, "__same_name__")):
        raise UsageError("--reset-optimizer needs --resume CHECKPOINT (a checkpoint folder)")
    if args.resume == "__same_name__" and not args.name:
        raise UsageError("--resume without a checkpoint continues a named run: give --name NAME")
    if args.resume in (None, "__same_name__"):
        return fam, cfg, None
    load_checkpoint(args.resume, fam.name)  # wrong family / version / unsafe file: exit 2 now
    return fam, cfg, str(Path(args.resume).resolve())


def open_run(args: argparse.Namespace, fam: Any, uri: str, preset: str, resume_from: str | None) -> tuple[Any, str, str, str]:
    """The run's MLflow run (continued when --resume reuses --name): (client, experiment id, run id, name)."""
    from mlplatform.tracking import mlflow_utils as mu

    name = args.name or f"{fam.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cl = mu.client(uri)
    exp_id = mu.get_or_create_experiment(cl, args.experiment or fam.name)
    run_id = mu.start_or_continue_run(cl, exp_id, run_name=name, tags={"family": fam.name, "kind": "train",
                                                                         "preset": preset},
                                      key_tags={"train_name": name})
    if resume_from:
        cl.set_tag(run_id, "resumed_from", resume_from)
        cl.set_tag(run_id, "reset_optimizer", str(args.reset_optimizer).lower())
    return cl, exp_id, run_id, name


def build_trainer(args: argparse.Namespace, opts: Any, gpus: float, storage: str) -> Any:
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mlplatform.train.executors import failure_config, train_loop_per_worker

    return TorchTrainer(
        train_loop_per_worker, train_loop_config={"run": opts},
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": args.cpus_per_worker, **({"GPU": gpus} if gpus > 0 else {})}),
        # the same name + storage again: Train v2 restores the run from its latest checkpoint
        run_config=RunConfig(name=opts.label, storage_path=storage,
                             failure_config=failure_config(args.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )


def print_result(result: Any, fam: Any, cfg: Any, wall: float, uri: str, exp_id: str, run_id: str) -> None:
    from mlplatform.integrity.contracts import selection
    from mlplatform.tracking import mlflow_utils as mu

    sel_metric, sel_mode = selection(fam, cfg)
    m = result.metrics or {}
    best = m.get(f"best/{sel_metric}")
    print("=" * 78)
    print(f"[train] done in {wall:.0f}s: {m.get('epoch')} epochs, stop reason: {m.get('stop_reason')}")
    if best is not None:
        print(f"[train] best {sel_metric} = {best:.5g} ({sel_mode})")
    if result.checkpoint is not None:
        print(f"[train] latest checkpoint: {result.checkpoint.path}")
    print(f"[train] MLflow run {run_id}: {mu.run_url(uri, exp_id, run_id)}  (UI: {mu.ui_command(uri)})")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.registry import build_config
    from mlplatform.storage import check_writable
    from mlplatform.tracking import manifest
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.options import RunOptions
    from mlplatform.train.outcome import from_error

    fam, checked_cfg, resume_from = check_args(args)
    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    # read-only, full or missing storage: one line now, not a failure at the first checkpoint
    storage = check_writable(args.storage_path or (mu.repo_root() / "ray_results"), "--storage-path")
    mu.check_experiment_artifacts(uri, args.experiment or fam.name)

    from mlplatform.raycluster import check_fits, init_ray, local_resources

    local = local_resources()
    if local is not None:  # the local Ray's size is known now: refuse before it starts (seconds, not a Ray start)
        want = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if local["GPU"] else 0.0)
        check_fits(local, args.num_workers, args.cpus_per_worker, want, what="the run", workers_flag="--num-workers")
    raise_on_stop_signals()  # from here on SIGINT/SIGTERM end the run KILLED and shut Ray down (exit 130/143)
    resources = init_ray()
    raise_on_stop_signals()  # again: ray.init replaces the SIGTERM handler (Ray's own aborts the process: exit 134)
    preset = resolve_preset(args.preset, resources)
    same = args.config or preset == resolve_preset(args.preset)  # a --config file is the config, GPU or not
    cfg = checked_cfg if same else build_config(args.family, preset, args.overrides)
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if resources.get("GPU", 0) else 0.0)
    # workers that can never be placed: one line, exit 2, no MLflow run (Ray would wait for them forever)
    check_fits(resources, args.num_workers, args.cpus_per_worker, gpus, what="the run", workers_flag="--num-workers")
    prepared = fam.prepare_data(cfg) if fam.prepare_data is not None else None
    cl, exp_id, run_id, name = open_run(args, fam, uri, preset, resume_from)
    print(f"[train] {fam.name} ({preset}) on {args.num_workers} worker(s), {gpus:g} GPU each; MLflow run {run_id}",
          flush=True)
    opts = RunOptions(family=fam, cfg=cfg, tracking_uri=uri, mlflow_run_id=run_id, resume_from=resume_from,
                      reset_optimizer=args.reset_optimizer, cpus=args.cpus_per_worker, use_gpu=gpus > 0,
                      executor="torchtrainer", label=name,
                      manifest=manifest.driver_part("train", fam.name, "config-file" if args.config else preset,
                                                    args.overrides, prepared, num_workers=args.num_workers,
                                                    cpus_per_worker=args.cpus_per_worker, gpus_per_worker=gpus))
    t0 = time.time()
    try:
        result = call_interruptibly(build_trainer(args, opts, gpus, str(storage)).fit)
    except JobInterrupted as e:
        stop_interrupted(e, cl, run_id)
        raise
    except Exception as e:  # noqa: BLE001 - report, end the run, exit non-zero
        ended = from_error(e, limit=300)
        mu.end_run_if_running(cl, run_id, ended.status, {"stop_reason": ended.render()})
        print(f"[train] FAILED: {ended.detail}", file=sys.stderr)
        return 1
    mu.end_run_if_running(cl, run_id, "FINISHED")
    print_result(result, fam, cfg, time.time() - t0, uri, exp_id, run_id)
    return 0


def stop_interrupted(e: JobInterrupted, cl: Any, run_id: str) -> None:
    """SIGINT/SIGTERM during the run: Ray (and with it every worker) shut down, the run ended KILLED with
    the signal as its reason, all within 10 s (the signal handler's timer ends the process if a step hangs)."""
    import ray

    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.outcome import Outcome

    ray.shutdown()  # first: a worker must not end the run FINISHED after we ended it KILLED
    mu.end_run_if_running(cl, run_id, "KILLED", {"stop_reason": Outcome("interrupted", f"by {e}").render()})


if __name__ == "__main__":
    sys.exit(main())
