"""Top-k confirmation: the sweep's best trials retrained with new seeds, and the winner chosen on their mean.

A sweep ranks trials that each ran once, with one seed, so its "best" is partly the luck of that seed (the
maximum of noisy values is biased upward). When the sweep ends, the K best trials, and every trial whose
paired interval against the best contains 0 (tied with it on the frozen items), are trained again with S new
seeds each (``train.seed`` = ``CONFIRM_SEED0 + j``, the same seeds for every config, so configs are paired by
seed), as trials of a second Tune experiment on the same cluster (FIFO, full length: no scheduler cuts
them). Their MLflow runs are children of the sweep's parent run, tagged ``confirm=true``,
``confirm_of=<trial id>`` and ``confirm_seed``. The winner is the config with the best mean over its new
seeds (the original run is left out: it was selected for being high); ``confirm_stats`` gives its interval
against the runner-up and each config's probability of being best.
"""
from __future__ import annotations

import time
from typing import Any

from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tune.confirm_stats import Confirmed, confirm

CONFIRM_SEED0 = 1000  # the confirmation seeds: far from the sweep's train.seed (0 by default)
CONFIRM_TAG = "confirm"


def trial_rows(results: Any, metric: str, mode: str) -> list[dict[str, Any]]:
    """Every trial of the sweep that reported the metric: ``trial_id``, ``value`` (its best), ``config``
    (the sampled keys) and ``time_s`` (its wall time), best first."""
    rows = []
    for r in results:
        df = r.metrics_dataframe
        if df is None or metric not in df.columns or df[metric].isna().all() or not r.metrics:
            continue
        v = float(df[metric].min() if mode == "min" else df[metric].max())
        rows.append({"trial_id": r.metrics.get("trial_id"), "value": v, "config": dict(r.config or {}),
                     "time_s": float(r.metrics.get("time_total_s") or 0.0)})
    return sorted(rows, key=lambda x: x["value"], reverse=mode == "max")


def pick(rows: list[dict[str, Any]], k: int, tied: list[str]) -> list[dict[str, Any]]:
    """The top ``k`` rows plus the rows in ``tied`` (trial ids tied with the best), in rank order."""
    keep = {r["trial_id"] for r in rows[:k]} | set(tied)
    return [r for r in rows if r["trial_id"] in keep]


def tied_with_best(cl: Any, exp_id: str, parent: str, rows: list[dict[str, Any]], mode: str) -> list[str]:
    """Trials whose paired per-item interval against the best contains 0 (``tune.noise``)."""
    from mlplatform.tune.noise import analyse
    from mlplatform.tune.report.noise import load_per_item

    items = {}
    for r in rows:
        run_id = mu.find_run(cl, exp_id, {"trial_id": r["trial_id"], mu.PARENT_TAG: parent})
        items[r["trial_id"]] = load_per_item(cl, run_id) if run_id else None
    res = analyse(items, mode)
    return [] if res is None else res.tied


def entries(chosen: list[dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """The confirmation grid: one entry per (config, seed), the grid ``tune_trial`` unpacks."""
    return [{"of": r["trial_id"], "seed": CONFIRM_SEED0 + j, "config": r["config"]}
            for r in chosen for j in range(seeds)]


def fit(trainable: Any, grid: list[dict[str, Any]], name: str, storage: str, k: int, callbacks: list[Any],
        metric: str, mode: str) -> tuple[Any, float]:
    """Run the confirmation grid as its own Tune experiment (``<sweep>-confirm``, restored when it exists)."""
    from pathlib import Path

    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from mlplatform.cli import call_interruptibly

    local = "://" not in storage
    path = str(Path(storage) / name) if local else f"{storage.rstrip('/')}/{name}"
    if local:  # the kill may have cut Tune's copy of its snapshot short (tune/snapshot.py)
        from mlplatform.tune.snapshot import StateBackup, repair_and_say

        if Path(path).is_dir():
            repair_and_say(Path(path))
        callbacks = [*callbacks, StateBackup(path)]
    t0 = time.time()
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = tune.Tuner(
            trainable, param_space={"_confirm": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=FIFOScheduler(),
                                        max_concurrent_trials=k, reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, callbacks=callbacks,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    return call_interruptibly(tuner.fit), time.time() - t0


def collect(cl: Any, exp_id: str, parent: str, chosen: list[dict[str, Any]], seeds: int) -> dict[str, Any]:
    """Per config, the per-item values of its confirmation runs, ``[seeds, items]``; a config missing a seed
    (a failed run) is left out, with the reason in ``dropped``."""
    import numpy as np

    from mlplatform.tune.report.noise import load_per_item

    runs = [r for r in mu.iter_child_runs(cl, exp_id, parent) if r.data.tags.get(CONFIRM_TAG) == "true"
            and r.info.lifecycle_stage == "active"]
    values, dropped = {}, {}
    for row in chosen:
        tid = row["trial_id"]
        rows = []
        for j in range(seeds):
            run = next((r for r in runs if r.data.tags.get("confirm_of") == tid
                        and r.data.tags.get("confirm_seed") == str(CONFIRM_SEED0 + j)), None)
            rec = load_per_item(cl, run.info.run_id) if run is not None else None
            rows.append(None if not rec or not rec.get("model") else rec["model"])
        if any(x is None for x in rows) or len({len(x) for x in rows}) != 1:
            dropped[tid] = f"{sum(x is None for x in rows)} of {seeds} seeds have no per-item values"
            continue
        values[tid] = np.asarray(rows, dtype=float)
    return {"values": values, "dropped": dropped, "runs": len(runs)}


def summary_of(res: Confirmed, best_trial: str, rows: list[dict[str, Any]], confirm_s: float,
               confirm_runs_s: float) -> dict[str, Any]:
    """The confirmation's figures for the parent run, the summary and the report."""
    sweep_s = sum(r["time_s"] for r in rows)
    out = {"confirm/mean": res.means[res.winner], "confirm/p_best": res.p_best[res.winner],
           "confirm/differs": float(res.winner != best_trial), "confirm/wall_s": confirm_s,
           "confirm/compute_frac": confirm_runs_s / sweep_s if sweep_s > 0 else float("nan"),
           "confirm/seeds": float(res.seeds), "confirm/configs": float(len(res.means))}
    if res.diff is not None:
        out.update({"confirm/diff": res.diff[0], "confirm/ci_lo": res.diff[1], "confirm/ci_hi": res.diff[2]})
    return out


def run_confirmation(spec: Any, base: Any, trainable: Any, results: Any, metric: str, mode: str, k: int,
                     storage: str) -> dict[str, Any] | None:
    """The whole step (the sweep's trials are done, its parent run still open). Returns the summary's
    ``confirm`` entry, or None when nothing could be confirmed (say why)."""
    cl, exp_id, parent = mu.client(base.run.tracking_uri), base.experiment_id, base.parent_run_id
    rows = trial_rows(results, metric, mode)
    if not rows:
        print("[confirm] no trial reported the metric: nothing to confirm", flush=True)
        return None
    chosen = pick(rows, spec.confirm_top, tied_with_best(cl, exp_id, parent, rows, mode))
    grid = entries(chosen, spec.confirm_seeds)
    print(f"[confirm] retraining the {len(chosen)} best trial(s) ({', '.join(r['trial_id'] for r in chosen)}; "
          f"top {spec.confirm_top} and those tied with the best) with {spec.confirm_seeds} new seeds each: "
          f"{len(grid)} runs, {k} at a time", flush=True)
    from mlplatform.tune.callbacks import MlflowTrialCloser, SweepProgress

    callbacks = [SweepProgress(metric, mode, len(grid), k), MlflowTrialCloser(base.run.tracking_uri, exp_id, parent)]
    confirm_results, wall = fit(trainable, grid, f"{spec.name}-confirm", storage, k, callbacks, metric, mode)
    got = collect(cl, exp_id, parent, chosen, spec.confirm_seeds)
    for tid, why in got["dropped"].items():
        print(f"[confirm] trial {tid} left out: {why}", flush=True)
    if not got["values"]:
        print("[confirm] no config has every seed's values: no confirmed winner", flush=True)
        return None
    res = confirm(got["values"], mode)
    runs_s = sum(float((r.metrics or {}).get("time_total_s") or 0.0) for r in confirm_results)
    figures = summary_of(res, rows[0]["trial_id"], rows, wall, runs_s)
    logger = mu.RunLogger(parent, base.run.tracking_uri)
    logger.log_metrics(figures, step=0)
    logger.set_tags({"confirm/winner_trial": res.winner, "confirm/single_seed_best": rows[0]["trial_id"]})
    logger.close()
    config = next(r["config"] for r in chosen if r["trial_id"] == res.winner)
    return {"winner_trial": res.winner, "single_seed_best": rows[0]["trial_id"], "config": config,
            "means": res.means, "seed_means": res.seed_means, "p_best": res.p_best, "runner_up": res.runner_up,
            "diff": res.diff, "seeds": res.seeds, "items": res.items, "dropped": got["dropped"], **figures}
