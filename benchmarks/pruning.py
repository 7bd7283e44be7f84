#!/usr/bin/env python
"""Pruning payoff, riscov debug preset: the platform's sweep (OptunaSearch TPE + ASHA + plateau stop)
vs random search without any pruning (Optuna's RandomSampler, FIFO scheduler, no plateau stop), the same
n_trials and epochs_per_trial, several seeds. Per seed: the best ``val/nmse_blend`` any trial reached
and the total epochs trained. Goal: an equal or better best with <= 50% of the epochs.

  python benchmarks/pruning.py [--seeds 0,1,2] [--n-trials 12] [--epochs 20]
"""
from __future__ import annotations

import argparse
from typing import Any

import benchlib as B


def one(work: Any, uri: str, seed: int, n: int, epochs: int, pruned: bool) -> dict[str, Any]:
    from ray.tune import ExperimentAnalysis

    from mlplatform.tune.sweep import SweepSpec, run_sweep

    name = f"{'tpe-asha' if pruned else 'random-fifo'}-s{seed}"
    kw = {} if pruned else {"search": "random", "scheduler": "fifo", "early_stop_patience": 0}
    s = run_sweep(SweepSpec(family="riscov", n_trials=n, epochs_per_trial=epochs, seed=seed, name=name,
                            storage_path=str(work / "ray"), tracking_uri=uri, **kw))
    dfs = [df for df in ExperimentAnalysis(str(work / "ray" / name)).trial_dataframes.values() if len(df)]
    best = min(float(df["val/nmse_blend"].min()) for df in dfs)
    return {"best_nmse_blend": best, "epochs": int(sum(len(df) for df in dfs)), "trials": len(dfs),
            "errors": s["n_errors"], "wall_s": s["wall_s"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n-trials", type=int, default=12, help="trials per sweep (default %(default)s)")
    p.add_argument("--epochs", type=int, default=12,
                   help="epochs_per_trial (default %(default)s; hpo.py uses 20, shortened to fit make bench)")
    a = p.parse_args(argv)
    B.start_ray()
    work = B.scratch("prune")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    rows = []
    for seed in (int(x) for x in a.seeds.split(",")):
        pr = one(work, uri, seed, a.n_trials, a.epochs, pruned=True)
        rd = one(work, uri, seed, a.n_trials, a.epochs, pruned=False)
        rows.append({"seed": seed, "tpe_asha": pr, "random_fifo": rd,
                     "best_ratio": B.ratio(pr["best_nmse_blend"], rd["best_nmse_blend"]),
                     "epochs_ratio": B.ratio(pr["epochs"], rd["epochs"])})
    best_ok = sum(r["tpe_asha"]["best_nmse_blend"] <= r["random_fifo"]["best_nmse_blend"] for r in rows)
    ep = B.ratio(sum(r["tpe_asha"]["epochs"] for r in rows), sum(r["random_fifo"]["epochs"] for r in rows))
    mean_best = B.ratio(sum(r["best_ratio"] for r in rows), len(rows))
    return B.emit("pruning", {
        "goal": "best <= random's best with <= 50% of its epochs", "n_trials": a.n_trials,
        "epochs_per_trial": a.epochs, "seeds": rows, "epochs_ratio": ep, "mean_best_ratio": mean_best,
        "seeds_with_equal_or_better_best": best_ok,
        "goal_met": ep <= 0.5 and mean_best <= 1.0})


if __name__ == "__main__":
    main()
