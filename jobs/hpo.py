#!/usr/bin/env python
"""Hyperparameter sweep: Ray Tune + OptunaSearch (seeded) + ASHA over search_spaces/<family>.yaml,
one MLflow parent run per sweep and one child run per trial.

  python jobs/hpo.py --n_trials 24                      # riscov, embedded local Ray, local MLflow store
  ray job submit --working-dir . -- python jobs/hpo.py --n_trials 24   # on a cluster (set MLFLOW_TRACKING_URI)
  python jobs/hpo.py --resume                           # continue the latest sweep of the family
  python jobs/hpo.py --objectives pair                  # a Pareto sweep over the family's declared trade-off
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mlplatform.cli import (JobInterrupted, UsageError, add_config_args, maybe_list_keys, one_line_errors,
                            raise_on_stop_signals, resolve_preset)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, default_family="riscov")
    p.add_argument("--n_trials", "--n-trials", type=int, default=24, help="trials to run (default %(default)s)")
    p.add_argument("--epochs_per_trial", "--epochs-per-trial", type=int, default=20,
                   help="max epochs per trial; ASHA stops weak trials earlier (default %(default)s)")
    p.add_argument("--space", default="wide", help="named space in the search-space file (default %(default)s)")
    p.add_argument("--space-file", default="", help="search-space YAML (default search_spaces/<family>.yaml)")
    p.add_argument("--early_stop_patience", "--early-stop-patience", type=int, default=6,
                   help="stop a trial after N validations without improvement (default %(default)s)")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials at once (default: fitted to the cluster)")
    p.add_argument("--workers-per-trial", type=int, default=1,
                   help="DDP workers per trial; >1 runs a TorchTrainer per trial (default %(default)s)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per trial worker (default %(default)s)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs per trial worker, fractions allowed (e.g. 0.25 packs 4 trials per GPU)")
    p.add_argument("--experiment", default="", help="MLflow experiment (default: the family name)")
    p.add_argument("--name", default="", help="sweep name (default <family>-<timestamp>)")
    p.add_argument("--resume", nargs="?", const="__latest__", default=None, metavar="NAME",
                   help="continue a sweep (default: the latest of this family) with Tuner.restore")
    p.add_argument("--storage-path", default="", help="Ray results folder (default <repo>/ray_results; shared on clusters)")
    p.add_argument("--seed", type=int, default=0, help="OptunaSearch seed (default %(default)s)")
    p.add_argument("--optuna-storage", default="",
                   help="database URL of the sweep's Optuna study (default: $MLPLATFORM_OPTUNA_STORAGE, else "
                        "optuna.db beside a sqlite MLflow store; docs/sweeps.md)")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA grace period in epochs (default %(default)s)")
    p.add_argument("--objectives", default="", metavar="METRIC:MODE,METRIC:MODE",
                   help="a Pareto sweep over these metrics (multi-objective TPE, no ASHA), or 'pair' for the "
                        "family's declared pair; the report plots the front (docs/sweeps.md)")
    p.add_argument("--confirm-top", type=int, default=None, metavar="K",
                   help="when the trials are done, retrain the K best (and any tied with the best) with new seeds "
                        "and pick the winner on their mean; 0 = off (default 3, or $MLPLATFORM_CONFIRM_TOP; "
                        "0 for a Pareto sweep)")
    p.add_argument("--confirm-seeds", type=int, default=3, metavar="S",
                   help="new seeds per confirmed trial (default %(default)s)")
    p.add_argument("--plan", action="store_true",
                   help="print the plan and exit, before any Ray work: trials per ASHA rung, expected epochs, the wall "
                        "time estimated from a one-epoch probe of two configs of the space, and whether the frozen "
                        "validation set can separate them")
    p.add_argument("--register", default="", metavar="NAME",
                   help="register the winner (the confirmed winner's best new-seed run, else the best trial) as a "
                        "new version of MLflow model NAME, with its manifest as metadata (docs/sweeps.md)")
    p.add_argument("--json-out", default="", help="also write the summary as JSON to this file")
    return p.parse_args(argv)


def latest_sweep(storage: Path, family: str) -> str:
    from mlplatform.tune.sweep import STATE_FILE

    cands = [d for d in storage.glob("*") if (d / STATE_FILE).exists()
             and json.loads((d / STATE_FILE).read_text())["spec"]["family"] == family]
    if not cands:
        raise UsageError(f"--resume: no sweep of family {family} found in {storage}")
    return max(cands, key=lambda d: (d / STATE_FILE).stat().st_mtime).name


def print_plan(spec, checked) -> int:
    from mlplatform.raycluster import local_resources
    from mlplatform.tune.plan import plan_lines
    from mlplatform.tune.sweep import fit_concurrency

    local = local_resources()
    k = fit_concurrency(spec, local) if local is not None else max(1, spec.max_concurrent)
    if local is None:
        print(f"[plan] joining a cluster (RAY_ADDRESS): its size is unknown before Ray starts; assuming {k} trial(s) "
              "at a time (set --max-concurrent)")
    for line in plan_lines(spec, checked, k):
        print(line, flush=True)
    return 0


def check_register(args: argparse.Namespace) -> None:
    """--register NAME: a name the registry takes, and a sweep with one winner (exit 2 before any work)."""
    if not args.register:
        return
    from mlplatform.tracking.models import check_model_name

    try:
        check_model_name(args.register)
    except ValueError as e:
        raise UsageError(f"--register: {e}") from None
    if args.objectives:
        raise UsageError("--register: a Pareto sweep (--objectives) has no single winner to register")


def confirm_default(args: argparse.Namespace) -> int:
    """--confirm-top when not given: 0 for a Pareto sweep, else $MLPLATFORM_CONFIRM_TOP or 3."""
    if args.objectives:
        return 0
    raw = os.environ.get("MLPLATFORM_CONFIRM_TOP", "3")
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"MLPLATFORM_CONFIRM_TOP must be an integer, got {raw!r}") from None


def print_confirmation(c: dict, metric: str) -> None:
    """The confirmed winner first; a warning when it is not the single-seed best."""
    if c["winner_trial"] != c["single_seed_best"]:
        print(f"NOTE: the confirmed winner {c['winner_trial']} is NOT the single-seed best {c['single_seed_best']}")
    diff = "" if c.get("diff") is None else (f", {c['diff'][0]:+.4g} [{c['diff'][1]:.4g}, {c['diff'][2]:.4g}] "
                                            f"against the runner-up {c['runner_up']}")
    print(f"confirmed    {c['winner_trial']}   {metric} mean over {c['seeds']} new seeds = "
          f"{c['confirm/mean']:.5g}{diff}; P(best) = {c['confirm/p_best']:.2f}; confirmation cost "
          f"{c['confirm/compute_frac']:.0%} of the sweep's trial compute")


def print_summary(summary: dict, spec, uri: str, resume: bool) -> None:
    """The sweep's closing lines: trials, the best trial and its config, where to look in MLflow and Optuna."""
    from mlplatform.tracking import mlflow_utils as mu

    print("\n" + "=" * 78)
    session = f", {summary['wall_s']:.0f}s of it in this session" if resume else ""
    print(f"sweep {spec.name}: {summary['n_trials']} trials in {summary['since_start_s']:.0f}s since it started"
          f"{session} ({summary['n_errors']} failed)")
    if summary.get("confirm"):
        print_confirmation(summary["confirm"], summary["metric"])
    if "best_value" in summary:
        print(f"best trial   {summary['best_trial']}   {summary['metric']} = {summary['best_value']:.5g} "
              f"({summary['mode']})")
        if "best_captured_gain" in summary:
            print(f"captured gain {summary['best_captured_gain']:.3f}   (0 = its best floor, 1 = its ceiling; "
                  "docs/integrity.md)")
        for k, v in sorted(summary["best_config"].items()):
            print(f"  {k} = {v}")
        print(f"MLflow run   {summary['best_run_id']}   (parent sweep run {summary['parent_run_id']})")
        print(f"open the UI  {mu.ui_command(uri)}")
        if summary.get("best_run_id"):
            print(f"then visit   {mu.run_url(uri, summary['experiment_id'], summary['best_run_id'])}")
    else:
        print("no trial produced the selection metric; see the errors above")
    print(f"Optuna study {summary['optuna_study']} in {summary['optuna_storage']}   (make optuna-ui)")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.storage import check_file_writable, check_writable, is_uri, normalize
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.tune.sweep import STATE_FILE, SweepSpec, run_sweep, validate_spec

    if args.json_out:
        check_file_writable(args.json_out, "--json-out")  # written at the end: find out now
    check_register(args)
    storage_arg = normalize(args.storage_path or str(mu.repo_root() / "ray_results"))
    storage = Path(storage_arg)
    spec = SweepSpec(
        family=args.family, n_trials=args.n_trials, epochs_per_trial=args.epochs_per_trial, space=args.space,
        space_file=args.space_file, early_stop_patience=args.early_stop_patience,
        preset=resolve_preset(args.preset), overrides=list(args.overrides),
        max_concurrent=args.max_concurrent, workers_per_trial=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, experiment=args.experiment,
        name=args.name or f"{args.family}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage_arg,
        seed=args.seed, grace_period=args.grace_period, objectives=args.objectives,
        optuna_storage=args.optuna_storage, confirm_seeds=args.confirm_seeds,
        confirm_top=confirm_default(args) if args.confirm_top is None else args.confirm_top)
    resume = args.resume is not None
    checked = None
    if resume:
        if is_uri(storage_arg):
            raise UsageError(f"--resume looks for the sweep in a local or mounted --storage-path; "
                             f"{storage_arg} is a URI (mount it, e.g. with s3fs/NFS, and pass the path)")
        spec.name = latest_sweep(storage, args.family) if args.resume == "__latest__" else args.resume
        if not (storage / spec.name / STATE_FILE).exists():
            raise UsageError(f"--resume: no sweep named {spec.name} in {storage}")
    else:
        checked = validate_spec(spec)  # bad family / key / space: exit 2 before Ray starts
    if args.plan:
        return print_plan(spec, checked or validate_spec(spec))
    uri = mu.resolve_tracking_uri()
    if not resume:
        from mlplatform.tune.study_store import check_new_study, resolve_storage

        # an unusable Optuna store (or a name taken there) is found before the MLflow store is made or Ray starts
        check_new_study(resolve_storage(uri, spec.optuna_storage), spec.name)
    if os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_ADDRESS"):
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            print("[mlflow] warning: MLFLOW_TRACKING_URI is not set under a Ray job; runs go to "
                  f"{uri} (inside the job's working dir copy on the head node). Set it to a server.", flush=True)
    mu.check_tracking(uri)
    # read-only, full or missing storage: one line now, not a failure at the first trial's checkpoint
    check_writable(storage_arg, "--storage-path")
    mu.check_experiment_artifacts(uri, args.experiment or args.family)
    spec.tracking_uri = uri

    from mlplatform.raycluster import init_ray

    raise_on_stop_signals()  # SIGINT/SIGTERM: parent and trial runs KILLED ("continue with --resume"), Ray down
    resources = init_ray()
    raise_on_stop_signals()  # again: ray.init replaces the SIGTERM handler (Ray's own aborts the process: exit 134)
    preset = spec.preset if resume else resolve_preset(args.preset, resources)
    if preset != spec.preset:
        spec.preset, checked = preset, None  # auto found a GPU: run_sweep checks the full preset's config
    try:
        summary = run_sweep(spec, resume=resume, checked=checked)
    except JobInterrupted as e:  # run_sweep has shut Ray down and ended the runs KILLED
        print(f"[sweep] {spec.name} stopped by {e}; continue with: python jobs/hpo.py --family {spec.family} "
              f"--resume {spec.name}", file=sys.stderr, flush=True)
        raise

    if args.register and "best_value" in summary:
        from mlplatform.tune.register import register_winner

        summary["registered"] = register_winner({**summary, "sweep": spec.name}, uri, args.register)
    print_summary(summary, spec, uri, resume)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2, default=str))
    return 0 if "best_value" in summary else 1


if __name__ == "__main__":
    sys.exit(main())
