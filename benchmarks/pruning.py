#!/usr/bin/env python
"""Pruning, riscov debug preset, two comparisons (docs/benchmarks.md, section 3):

``--compare payoff`` (default): the platform's sweep (OptunaSearch TPE + ASHA + plateau stop) vs random
search without any pruning (Optuna's RandomSampler, FIFO scheduler, no plateau stop), the same n_trials and
epochs_per_trial, several seeds. Per seed: the best ``val/nmse_blend`` any trial reached and the total
epochs trained. Goal: an equal or better best with <= 50% of the epochs.

``--compare told``: the same TPE + ASHA sweep twice per seed, once with Ray's stock ``OptunaSearch`` (a
trial ASHA stopped is told to Optuna as COMPLETE with its last value) and once with the platform's
``StudySearch`` (told as PRUNED with its per-epoch values; tune/study.py). TPE starts after
``--startup`` random trials, so the two differ only from then on. Per seed: the best value either sweep
had reached after the same number of epochs (the smaller of the two sweeps' totals), and the ratio
fix / stock (< 1 = the fix found better configurations for the same compute).

  python benchmarks/pruning.py [--seeds 0,1,2] [--n-trials 12] [--epochs 12]
  python benchmarks/pruning.py --compare told --seeds 0,1,2,3,4 --n-trials 12 --epochs 8 --startup 4
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import benchlib as B


METRIC = "val/nmse_blend"


def one(work: Any, uri: str, seed: int, n: int, epochs: int, pruned: bool, name: str = "",
        **kw: Any) -> dict[str, Any]:
    from ray.tune import ExperimentAnalysis

    from mlplatform.tune.sweep import SweepSpec, run_sweep

    name = name or f"{'tpe-asha' if pruned else 'random-fifo'}-s{seed}"
    if not pruned:
        kw.update(search="random", scheduler="fifo", early_stop_patience=0)
    done = work / "ray" / f"{name}.summary.json"
    if done.exists():  # --work of an earlier (or parallel) run: read the finished sweep, don't redo it
        s = json.loads(done.read_text())
    else:
        s = run_sweep(SweepSpec(family="riscov", n_trials=n, epochs_per_trial=epochs, seed=seed, name=name,
                                storage_path=str(work / "ray"), tracking_uri=uri, **kw))
        done.write_text(json.dumps({k: s[k] for k in ("n_errors", "wall_s")}))
    dfs = [df for df in ExperimentAnalysis(str(work / "ray" / name)).trial_dataframes.values() if len(df)]
    best = min(float(df[METRIC].min()) for df in dfs)
    return {"best_nmse_blend": best, "epochs": int(sum(len(df) for df in dfs)), "trials": len(dfs),
            "errors": s["n_errors"], "wall_s": s["wall_s"], "curve": best_by_epochs(dfs)}


def best_by_epochs(dfs: list[Any]) -> list[float]:
    """The sweep's best value after each epoch it trained, all trials' epochs in the order they were reported."""
    events = sorted((float(row["timestamp"]), float(df["timestamp"].min()), int(row["training_iteration"]),
                     float(row[METRIC])) for df in dfs for _, row in df.iterrows())
    curve, best = [], float("inf")
    for *_, v in events:
        best = min(best, v)
        curve.append(best)
    return curve


def told(work: Any, uri: str, seeds: list[int], a: Any) -> dict[str, Any]:
    """Ray's stock telling vs the platform's, same seed, sampler, scheduler and trials (module docstring)."""
    rows = []
    for seed in seeds:
        kw = {"startup_trials": a.startup, "overrides": list(a.set)}
        stock = one(work, uri, seed, a.n_trials, a.epochs, True, f"stock-s{seed}", tell="ray", **kw)
        fix = one(work, uri, seed, a.n_trials, a.epochs, True, f"told-s{seed}", tell="outcome", **kw)
        budget = min(len(stock["curve"]), len(fix["curve"]))
        at = {k: r["curve"][budget - 1] for k, r in (("stock", stock), ("fix", fix))}
        rows.append({"seed": seed, "budget_epochs": budget, "best_at_budget": at,
                     "ratio_at_budget": B.ratio(at["fix"], at["stock"]),
                     **{k: {x: r[x] for x in r if x != "curve"} for k, r in (("stock", stock), ("fix", fix))}})
    ratios = [r["ratio_at_budget"] for r in rows]
    mean = sum(ratios) / len(ratios)
    sd = (sum((x - mean) ** 2 for x in ratios) / max(1, len(ratios) - 1)) ** 0.5
    return {"n_trials": a.n_trials, "epochs_per_trial": a.epochs, "startup_trials": a.startup,
            "overrides": list(a.set), "seeds": rows, "mean_ratio_at_budget": mean, "sd_ratio_at_budget": sd,
            "min_ratio": min(ratios), "max_ratio": max(ratios),
            "seeds_fix_better": sum(x < 1 for x in ratios), "seeds_equal": sum(x == 1 for x in ratios)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", choices=("payoff", "told"), default="payoff")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n-trials", type=int, default=12, help="trials per sweep (default %(default)s)")
    p.add_argument("--epochs", type=int, default=12,
                   help="epochs_per_trial (default %(default)s; hpo.py uses 20, shortened to fit make bench)")
    p.add_argument("--startup", type=int, default=4, help="told: TPE's random start-up trials (default %(default)s)")
    p.add_argument("--set", action="append", default=[], help="told: a config override, e.g. data.n_train=2048")
    p.add_argument("--work", default="", help="scratch folder; sweeps already finished there are read, not rerun "
                   "(seeds can run in parallel processes, then one run with all seeds gathers them)")
    a = p.parse_args(argv)
    B.start_ray()
    work = Path(a.work) if a.work else B.scratch("prune")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    if a.compare == "told":
        t0 = time.time()
        out = told(work, uri, [int(x) for x in a.seeds.split(",")], a)
        return B.emit("pruning_told", {**out, "wall_s": time.time() - t0})
    rows = []
    for seed in (int(x) for x in a.seeds.split(",")):
        pr = one(work, uri, seed, a.n_trials, a.epochs, pruned=True)
        rd = one(work, uri, seed, a.n_trials, a.epochs, pruned=False)
        pr.pop("curve"), rd.pop("curve")
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
