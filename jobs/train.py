#!/usr/bin/env python
"""Train one family with Ray Train's TorchTrainer (gloo on CPU, nccl on GPU), logging one MLflow run.

  python jobs/train.py --family riscov --preset debug
  python jobs/train.py --family riscov --num-workers 2 --set optim.lr=3e-3
  python jobs/train.py --family riscov --name myrun --resume                  # continue run 'myrun'
  python jobs/train.py --family tse --resume CHECKPOINT_DIR --reset-optimizer # new run from a checkpoint
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mlplatform.cli import UsageError, add_config_args, maybe_list_keys, one_line_errors


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
    return p.parse_args(argv)


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.registry import build_config, get_family
    from mlplatform.storage import check_writable
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.checkpoint import load_checkpoint

    fam = get_family(args.family)
    from mlplatform.integrity.contracts import check_contract

    # bad overrides, or a selection metric that is undeclared, exploitable or of the wrong direction: exit 2 now
    sel_metric, sel_mode = check_contract(fam, build_config(args.family, "debug" if args.preset == "auto"
                                                            else args.preset, args.overrides))
    if args.num_workers < 1:
        raise UsageError(f"--num-workers must be >= 1, got {args.num_workers}")
    if args.reset_optimizer and (args.resume in (None, "__same_name__")):
        raise UsageError("--reset-optimizer needs --resume CHECKPOINT (a checkpoint folder)")
    if args.resume == "__same_name__" and not args.name:
        raise UsageError("--resume without a checkpoint continues a named run: give --name NAME")
    resume_from = None
    if args.resume not in (None, "__same_name__"):
        load_checkpoint(args.resume, fam.name)  # wrong family / version / unsafe file: exit 2 now
        resume_from = str(Path(args.resume).resolve())
    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    # read-only, full or missing storage: one line now, not a failure at the first checkpoint
    storage = check_writable(args.storage_path or (mu.repo_root() / "ray_results"), "--storage-path")
    mu.check_experiment_artifacts(uri, args.experiment or fam.name)

    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mlplatform.raycluster import auto_preset, init_ray
    from mlplatform.train.executors import train_loop_per_worker

    resources = init_ray()
    preset = auto_preset(args.preset, resources)
    cfg = build_config(args.family, preset, args.overrides)
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if resources.get("GPU", 0) else 0.0)
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    name = args.name or f"{fam.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cl = mu.client(uri)
    exp_id = mu.get_or_create_experiment(cl, args.experiment or fam.name)
    run_id = mu.start_or_continue_run(cl, exp_id, run_name=name, tags={"family": fam.name, "kind": "train",
                                                                         "preset": preset},
                                      key_tags={"train_name": name})
    if resume_from:
        cl.set_tag(run_id, "resumed_from", resume_from)
        cl.set_tag(run_id, "reset_optimizer", str(args.reset_optimizer).lower())
    print(f"[train] {fam.name} ({preset}) on {args.num_workers} worker(s), {gpus:g} GPU each; MLflow run {run_id}",
          flush=True)
    opts = {"family": fam.name, "cfg": cfg.to_dict(), "tracking_uri": uri, "mlflow_run_id": run_id,
            "resume_from": resume_from, "reset_optimizer": args.reset_optimizer, "cpus": args.cpus_per_worker,
            "use_gpu": gpus > 0, "executor": "torchtrainer", "label": name}
    res_per_worker = {"CPU": args.cpus_per_worker, **({"GPU": gpus} if gpus > 0 else {})}
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=opts,
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=gpus > 0,
                                     resources_per_worker=res_per_worker),
        # the same name + storage again: Train v2 restores the run from its latest checkpoint
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=args.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    t0 = time.time()
    try:
        result = trainer.fit()
    except Exception as e:  # noqa: BLE001 - report, end the run, exit non-zero
        msg = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        mu.end_run_if_running(cl, run_id, "FAILED", {"stop_reason": f"error: {msg}"})
        print(f"[train] FAILED: {msg}", file=sys.stderr)
        return 1
    mu.end_run_if_running(cl, run_id, "FINISHED")
    m = result.metrics or {}
    best = m.get(f"best/{sel_metric}")
    print("=" * 78)
    print(f"[train] done in {time.time() - t0:.0f}s: {m.get('epoch')} epochs, stop reason: {m.get('stop_reason')}")
    if best is not None:
        print(f"[train] best {sel_metric} = {best:.5g} ({sel_mode})")
    if result.checkpoint is not None:
        print(f"[train] latest checkpoint: {result.checkpoint.path}")
    print(f"[train] MLflow run {run_id}: {mu.run_url(uri, exp_id, run_id)}  (UI: {mu.ui_command(uri)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
