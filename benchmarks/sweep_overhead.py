#!/usr/bin/env python
"""Per-trial sweep overhead: (sweep wall - sum of trial training time) / n_trials, riscov debug preset,
the default function-trial executor vs a TorchTrainer per trial. Goal: <= 2 s per trial (default
executor, warm local cluster: a 2-trial warm-up sweep runs first and is not counted).

Training time of a trial = the sum of its epochs' ``sys/epoch_time_s`` (the loop's own timing of the
training steps). Two overhead figures, because trials run ``k`` at a time:
  literal:  (wall - sum train) / n            the issue's formula (what docs/sweeps.md quoted)
  per_slot: (k * wall - sum train) / n        trial-slot seconds not spent training; honest for k > 1
and a breakdown from Tune's own per-report timing (time_this_iter_s) plus a bare in-process reference
run of the same preset with and without MLflow logging, so the per-epoch cost of validation,
checkpointing, MLflow and Ray's report can be told apart.

The TorchTrainer executor only exists for multi-worker trials (tune_trial runs single-worker trials as
functions), so it runs with --workers-per-trial 2 --cpus-per-worker 0.9 (what fits 2 CPUs), k = 1.

The TorchTrainer sweep runs FIFO with short trials (see ``main``): stopped TorchTrainer trials can leak
their placement group in Ray 2.60 and hang the next trial on a 2-CPU cluster.

  python benchmarks/sweep_overhead.py [--n-trials 24] [--tt-trials 4] [--epochs 20] [--ablate-reuse-actors]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import benchlib as B


def trial_frames(sweep_dir: Path) -> list[Any]:
    from ray.tune import ExperimentAnalysis

    return [df for df in ExperimentAnalysis(str(sweep_dir)).trial_dataframes.values() if len(df)]


def sweep(work: Path, uri: str, name: str, n: int, epochs: int, **kw: Any) -> dict[str, Any]:
    from mlplatform.tune.sweep import SweepSpec, run_sweep

    spec = SweepSpec(family="riscov", n_trials=n, epochs_per_trial=epochs, name=name, storage_path=str(work / "ray"),
                     tracking_uri=uri, **kw)
    t0 = time.perf_counter()
    summary = run_sweep(spec)
    outer = time.perf_counter() - t0
    dfs = trial_frames(work / "ray" / name)
    k = 2 if spec.workers_per_trial == 1 else 1  # what fit_concurrency gives on 2 CPUs
    wall = float(summary["wall_s"])
    train = sum(float(df["sys/epoch_time_s"].sum()) for df in dfs)
    total = sum(float(df["time_total_s"].iloc[-1]) for df in dfs)
    it = [df["time_this_iter_s"] - df["sys/epoch_time_s"] for df in dfs]
    per_epoch = B.median([float(x) for s in it for x in s.iloc[1:]])
    first = B.median([float(s.iloc[0]) - per_epoch for s in it])
    return {"n_trials": len(dfs), "errors": summary["n_errors"], "concurrency": k, "epochs_run": sum(len(d) for d in dfs),
            "tuner_fit_wall_s": wall, "run_sweep_wall_s": outer, "sum_train_s": train,
            "overhead_literal_s_per_trial": (wall - train) / len(dfs),
            "overhead_per_slot_s_per_trial": (k * wall - train) / len(dfs),
            "breakdown_s": {"per_epoch_not_training": per_epoch,
                            "trial_setup_in_first_report": first,
                            "outside_trial_per_trial": (k * wall - total) / len(dfs)}}


def with_reuse_actors(fn: Any) -> Any:
    """An ablation, not a platform setting: the same sweep with Tune's ``reuse_actors=True`` (trials of a
    sweep share their worker processes, so torch/mlflow imports and the store connection are paid once
    per process instead of once per trial). Patched in for one call only."""
    import functools

    from ray import tune

    orig = tune.TuneConfig
    tune.TuneConfig = functools.partial(orig, reuse_actors=True)
    try:
        return fn()
    finally:
        tune.TuneConfig = orig


def bare_reference(work: Path, uri: str, epochs: int) -> dict[str, Any]:
    """The same preset in this process: per-epoch non-training time without and with MLflow logging,
    and the cost of one checkpoint save (the loop saves one every epoch)."""
    from mlplatform.registry import build_config, get_family
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.checkpoint import save_checkpoint

    cfg = build_config("riscov", "debug", [f"train.epochs={epochs}", "train.early_stop_patience=0"])
    base = {"family": "riscov", "cfg": cfg.to_dict(), "cpus": 1, "verbose": False, "tracking_uri": uri}
    out: dict[str, Any] = {}
    cl = mu.client(uri)
    exp = mu.get_or_create_experiment(cl, "bench-bare")
    for tag in ("no_mlflow", "mlflow"):
        opts = dict(base, bench_out=str(work / f"bare-{tag}.json"), work_dir=str(work / f"bare-{tag}"))
        if tag == "mlflow":
            opts["mlflow_run_id"] = cl.create_run(exp, run_name="bare").info.run_id
        t0 = time.perf_counter()
        rows, _ = B.timed_local(opts)
        gaps = [b["t_report"] - a["t_report"] - b["epoch_time_s"] for a, b in zip(rows, rows[1:])]
        out[tag] = {"per_epoch_not_training_s": B.median(gaps), "wall_s": time.perf_counter() - t0,
                    "setup_to_first_report_s": rows[0]["t_report"] - rows[0]["epoch_time_s"]}
    fam = get_family("riscov")
    model = fam.build_model(cfg)
    opt = __import__("torch").optim.AdamW(model.parameters())
    out["checkpoint_save_s"] = B.best_of(lambda: save_checkpoint(work / "ck", family="riscov", cfg=cfg.to_dict(),
                                                                 model=model, optimizer=opt, scheduler=None,
                                                                 loop={"epoch": 0, "step": 0}), 5)
    out["mlflow_cost_per_epoch_s"] = (out["mlflow"]["per_epoch_not_training_s"]
                                      - out["no_mlflow"]["per_epoch_not_training_s"])
    out["mlflow_trial_setup_s"] = mlflow_pieces(cl, exp, uri, cfg)
    return out


FRESH = """
import sys, time
t0 = time.perf_counter()
from mlplatform.tracking import mlflow_utils as mu
t1 = time.perf_counter()
mu.client(sys.argv[1]).get_experiment(sys.argv[2])
print(t1 - t0, time.perf_counter() - t1)
"""


def fresh_process_mlflow(uri: str, exp: str) -> dict[str, float]:
    """What a new worker process pays once: importing mlflow, and the first call on the sqlite store."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FRESH, uri, exp], capture_output=True, text=True, check=True)
    imp, first = (float(x) for x in out.stdout.split()[-2:])
    return {"fresh_process_import_mlflow": imp, "fresh_process_first_store_call": first}


def mlflow_pieces(cl: Any, exp: str, uri: str, cfg: Any) -> dict[str, float]:
    """What a trial's MLflow setup costs, piece by piece (tune_trial + the loop's first lines)."""
    import yaml

    from mlplatform.config import flatten
    from mlplatform.tracking import mlflow_utils as mu

    t: dict[str, float] = fresh_process_mlflow(uri, exp)
    t0 = time.perf_counter()
    run = mu.start_or_continue_run(cl, exp, run_name="pieces", tags={"sweep": "bench", "family": "riscov"},
                                   key_tags={"trial_id": f"bench-{time.time_ns()}", mu.PARENT_TAG: "none"})
    t["start_or_continue_run"] = time.perf_counter() - t0
    lg = mu.RunLogger(run, uri)
    for name, fn in (("log_params", lambda: lg.log_params(flatten(cfg))),
                     ("set_tags", lambda: lg.set_tags({"family": "riscov", "executor": "bench", "world_size": 1})),
                     ("log_text_config", lambda: lg.log_text(yaml.safe_dump(cfg.to_dict()), "config/resolved.yaml")),
                     ("log_metrics_epoch", lambda: lg.log_metrics({f"m{i}": float(i) for i in range(20)}, step=1)),
                     ("end", lambda: lg.end("FINISHED"))):
        t0 = time.perf_counter()
        fn()
        t[name] = time.perf_counter() - t0
    return t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-trials", type=int, default=24, help="function-executor trials (default %(default)s)")
    p.add_argument("--tt-trials", type=int, default=4,
                   help="TorchTrainer-per-trial trials (default %(default)s: ~20 s each on 2 cores)")
    p.add_argument("--epochs", type=int, default=20, help="epochs_per_trial (default %(default)s, as hpo.py)")
    p.add_argument("--tt-epochs", type=int, default=4, help="epochs of each TorchTrainer trial (no ASHA there)")
    p.add_argument("--ablate-reuse-actors", action="store_true",
                   help="also run the function sweep with Tune's reuse_actors=True (not a platform setting)")
    a = p.parse_args(argv)
    B.start_ray()
    work = B.scratch("sweep")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    from mlplatform.families.riscov.data import prepare_data
    from mlplatform.registry import build_config

    prepare_data(build_config("riscov", "debug"))
    sweep(work, uri, "warmup", 2, 1)  # warm the cluster: worker processes, imports, the MLflow schema
    fn = sweep(work, uri, "function", a.n_trials, a.epochs)
    # FIFO, short trials: a TorchTrainer trial stopped by ASHA can leave its workers' placement group
    # behind (Ray 2.60), and the next trial then waits for CPUs forever; overhead is per trial anyway
    tt = sweep(work, uri, "torchtrainer", a.tt_trials, a.tt_epochs, workers_per_trial=2, cpus_per_worker=0.9,
               scheduler="fifo") if a.tt_trials > 0 else None
    reuse = with_reuse_actors(lambda: sweep(work, uri, "function-reuse", a.n_trials, a.epochs)) \
        if a.ablate_reuse_actors else None
    ref = bare_reference(work, uri, min(a.epochs, 6))
    return B.emit("sweep_overhead", {
        "goal": "function executor overhead <= 2 s per trial", "function": fn, "torchtrainer": tt, "bare": ref,
        "ablation_function_reuse_actors": reuse,
        "ratio_torchtrainer_to_function_per_slot": B.ratio(tt["overhead_per_slot_s_per_trial"],
                                                           fn["overhead_per_slot_s_per_trial"]) if tt else None,
        "goal_met_literal": fn["overhead_literal_s_per_trial"] <= 2.0,
        "goal_met_per_slot": fn["overhead_per_slot_s_per_trial"] <= 2.0})


if __name__ == "__main__":
    main()
