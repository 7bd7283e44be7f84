#!/usr/bin/env python
"""Step overhead per family: steps/s of the shared loop inside a 1-worker TorchTrainer and inside a Tune
function trial, each divided by the same loop run bare in this process. Goal: >= 0.95.

Like with like: the same config (debug preset, epochs shortened below), the same thread count (1: Ray
workers get OMP_NUM_THREADS=1 and the loop sets torch threads from the trial's 1 CPU; the bare run gets
``cpus=1`` too), no MLflow (tracking is the same code in every executor), checkpoints every epoch in all
three. Two figures per executor, from the fastest of epochs 2..E (medians are reported too):
  compute: the loop's own ``sys/epoch_time_s`` (training steps only);
  loop:    report-to-report wall time (steps + validation + checkpoint + the executor's report).
The fastest epoch is the one least disturbed by other processes on this shared machine; every run has
the same number of epochs, so no run gets more draws. The bare run is done twice (before and after
the Ray runs) and the baseline is their mean, so drift during the Ray runs does not favour either side.

  python benchmarks/step_overhead.py [--families riscov,tse] [--epochs 5]
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import benchlib as B

# a few epochs each; tse's epochs are capped at 10 steps (a debug epoch is 30 steps of ~0.2 s)
EPOCHS = {"riscov": 8, "tse": 4, "creative": 6, "vqvae": 5}
EXTRA = {"tse": ["train.steps_per_epoch=10"]}


def run_trainer(opts: dict[str, Any], storage: str, name: str) -> float:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    t0 = time.perf_counter()
    TorchTrainer(B.timed_train_worker, train_loop_config=opts,
                 scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                 run_config=RunConfig(name=name, storage_path=storage)).fit()
    return time.perf_counter() - t0


def run_tune(opts: dict[str, Any], storage: str, name: str) -> float:
    from ray import tune

    t0 = time.perf_counter()
    fn = tune.with_resources(tune.with_parameters(B.timed_tune_trial, opts=opts), {"cpu": 1})
    res = tune.Tuner(fn, tune_config=tune.TuneConfig(num_samples=1),
                     run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0)).fit()
    if res.errors:
        raise RuntimeError(f"tune trial failed: {res.errors[0]}")
    return time.perf_counter() - t0


def one_family(family: str, epochs: int | None, work) -> dict[str, Any]:
    from mlplatform.registry import build_config, get_family

    fam = get_family(family)
    e = epochs or EPOCHS[family]
    cfg = build_config(family, "debug", EXTRA.get(family, []) + [f"train.epochs={e}", "train.early_stop_patience=0"])
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)  # once, before any timing
    base = {"family": family, "cfg": cfg.to_dict(), "cpus": 1, "verbose": False, "use_gpu": False}

    def opts(tag: str) -> dict[str, Any]:
        return dict(base, bench_out=str(work / f"{family}-{tag}.json"), work_dir=str(work / f"{family}-{tag}"))

    bare1, summary = B.timed_local(opts("bare1"))
    spe = summary["steps"] / summary["epochs"]
    walls = {"tune": run_tune(opts("tune"), str(work / "ray"), f"{family}-tune"),
             "torchtrainer": run_trainer(opts("trainer"), str(work / "ray"), f"{family}-trainer")}
    bare2, _ = B.timed_local(opts("bare2"))
    r1, r2 = B.rates(bare1, spe), B.rates(bare2, spe)
    keys = ("compute", "loop", "compute_median", "loop_median")
    bare = {k: (r1[k] + r2[k]) / 2 for k in keys}  # both bare runs: drift during the Ray runs averages out
    out: dict[str, Any] = {"epochs": e, "steps_per_epoch": spe, "threads": 1, "bare": {**bare, "runs": [r1, r2]}}
    for tag, key in (("tune", "tune"), ("trainer", "torchtrainer")):
        r = B.rates(B.read_rows(work / f"{family}-{tag}.json"), spe)
        out[key] = {**r, "fit_wall_s": walls[key], **{f"ratio_{k}": B.ratio(r[k], bare[k]) for k in keys}}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="riscov,tse,creative,vqvae")
    p.add_argument("--epochs", type=int, default=0, help="epochs per run (default: per family, see EPOCHS)")
    a = p.parse_args(argv)
    B.start_ray()
    work = B.scratch("step")
    res = {f: one_family(f, a.epochs or None, work) for f in a.families.split(",")}
    ratios = [res[f][k]["ratio_loop"] for f in res for k in ("tune", "torchtrainer")]
    return B.emit("step_overhead", {"goal": "ratio >= 0.95", "families": res,
                                    "min_ratio_loop": min(ratios), "goal_met": min(ratios) >= 0.95})


if __name__ == "__main__":
    main()
