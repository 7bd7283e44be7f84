#!/usr/bin/env python
"""Apples-to-apples comparison of compression strategies (docs/families/vqvae.md, "Jobs").

  python jobs/compare_compression.py --preset note --seeds 0,1,2          # the measurement of record
  python jobs/compare_compression.py --strategies uniform,balanced --set train.epochs=20
  python jobs/compare_compression.py --preset note --seeds 0,1,2 --gpus-per-task 0.25   # tasks share GPUs
  python jobs/compare_compression.py --results R.json   # tasks run by benchmarks/vqvae_compare_gpu.py

Same table, same train/held-out split (data.seed), same cleaning and the SAME clustering (the strategy-
independent profile of the cached analysis), same model seeds: only the ratios differ. Every (strategy,
seed) trains as its own Ray task (one CPU each, so they run in parallel), as a child run of one MLflow
parent run; each seed also gets its bit-matched floors (residual k-means, quantised PCA), the PCA reference
and the ceiling (unquantised, trained once).
The parent holds the table (markdown + JSON + PNG) with mean ± std over seeds, wall time and load.
With ``--results`` the tasks ran elsewhere (a GPU machine without Ray or MLflow): their results file is
summarised and logged the same way, as a parent run without child runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlplatform.cli import UsageError, one_line_errors

ALL = ("uniform", "variance", "dimensionality", "information", "balanced")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL]
    if bad or not names:
        raise UsageError(f"--strategies: {bad or 'none'} not allowed; choose from {', '.join(ALL)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds: {args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: {args.seeds!r} must name at least one seed, each once")
    if args.gpus_per_task < 0:
        raise UsageError(f"--gpus-per-task {args.gpus_per_task:g}: must be 0 or more")

    from mlplatform.families.vqvae import compare as K
    from mlplatform.registry import build_config
    from mlplatform.tracking import mlflow_utils as mu

    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    if args.results:
        results, names, seeds, meta = _imported(args.results)
        try:  # a file from before the bit-matched floors gets them here, on the same held-out rows
            K.complete_bounds(results, meta["preset"], meta["overrides"])
        except ValueError as e:
            raise UsageError(f"--results {args.results}: {e}") from None
        base = None
    else:
        base = build_config("vqvae", args.preset, args.overrides)
        if isinstance(base.model.compression_ratios, dict):
            raise UsageError("model.compression_ratios is an explicit mapping: the comparison sets it per strategy")
    cl = mu.client(uri)
    exp = mu.get_or_create_experiment(cl, args.experiment)
    parent = cl.create_run(exp, run_name=args.name, tags={"kind": "compare_compression", "family": "vqvae"}).info.run_id
    plog = mu.RunLogger(parent, uri)
    try:
        if base is not None:
            plog.log_params({"compare.strategies": ",".join(names), "compare.seeds": ",".join(map(str, seeds)),
                             "compare.preset": args.preset, "compare.overrides": " ".join(args.overrides)})
            results, meta = _run_tasks(K, base, names, seeds, args, cl, exp, parent, uri)
        else:
            plog.log_params({"compare.strategies": ",".join(names), "compare.seeds": ",".join(map(str, seeds)),
                             "compare.preset": meta["preset"], "compare.overrides": " ".join(meta["overrides"]),
                             "compare.results": str(args.results)})
            plog.set_tags({"compare.device": meta["device"]})
        md, summary = _summarise(K, results, names, seeds, meta)
        print(md, flush=True)
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mlp-compare-"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(md)
        (out / "comparison.json").write_text(json.dumps(summary, indent=1, default=float))
        K.plot(summary["aggregate"], out / "comparison.png")
        plog.log_artifacts(str(out), "comparison")
        plog.log_metrics({f"compare/{s}/{k}": v[0] for s, a in summary["aggregate"].items() for k, v in a.items()},
                         step=0)
        plog.set_tags({"compare.default": summary["winner"]["default"], "compare.best": summary["winner"]["best"]})
        plog.end("FINISHED")
    except BaseException:
        plog.end("FAILED")
        raise
    print(f"[mlflow] parent run: {mu.run_url(uri, exp, parent)}", flush=True)
    return 0


def _gather(ray: Any, refs: dict[tuple[str, int], Any], t0: float) -> dict[tuple[str, int], Any]:
    """The tasks' results, in ``refs``' order, with a progress line as each one ends (a run at the research
    scale takes most of an hour)."""
    pending, done = {ref: key for key, ref in refs.items()}, {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(ready[0])
        done[key] = ray.get(ready[0])
        print(f"[compare] {key[0]} seed {key[1]} done at {time.perf_counter() - t0:.0f} s "
              f"({len(done)}/{len(refs)})", flush=True)
    return {key: done[key] for key in refs}


def _run_tasks(K, base, names, seeds, args, cl, exp, parent, uri):
    """Every (strategy, seed) and each seed's bounds as Ray tasks; their results and the run's facts."""
    import ray

    from mlplatform.families.vqvae import data as D
    from mlplatform.raycluster import init_ray
    from mlplatform.tracking import mlflow_utils as mu

    load_before, t0 = os.getloadavg(), time.perf_counter()
    init_ray()
    have = ray.cluster_resources().get("GPU", 0)
    if args.gpus_per_task > have:  # the tasks would wait for GPUs forever
        raise UsageError(f"--gpus-per-task {args.gpus_per_task:g}: the Ray cluster has {have:g} GPUs")
    info = D.prepare_data(base)  # table + every strategy's analysis, once (the same clustering for all)
    print(f"[compare] table {info['path']}: {info['categories']} categories; {len(names)} strategies x "
          f"{len(seeds)} seeds + {len(seeds)} ceilings as Ray tasks", flush=True)
    # retried only when the worker dies (e.g. killed by Ray's memory monitor on a crowded machine); a
    # task given a GPU share sees that GPU and trains on it
    res = {"num_cpus": 1, "num_gpus": args.gpus_per_task, "max_retries": 2}
    train = ray.remote(**res)(K.train_and_evaluate)
    bound = ray.remote(**res)(K.bounds_task)
    refs = {}
    for seed in seeds:  # seed-major: the first results give a full row early
        refs[("bounds", seed)] = bound.remote(base.override([f"train.seed={seed}"]).to_dict())
        for s in names:
            child = cl.create_run(exp, run_name=f"{args.name}-{s}-s{seed}", tags={
                mu.PARENT_TAG: parent, "family": "vqvae", "strategy": s, "seed": str(seed),
                "kind": "compare_child"}).info.run_id
            refs[(s, seed)] = train.remote(base.override(K.strategy_overrides(s, seed)).to_dict(), child, uri,
                                           f"vqvae {s} s{seed}")
    results = _gather(ray, refs, t0)
    meta = {"preset": args.preset, "categories": info["categories"], "wall_s": time.perf_counter() - t0,
            "load_before": " ".join(f"{v:.1f}" for v in load_before),
            "load_after": " ".join(f"{v:.1f}" for v in os.getloadavg()),
            "cpus": int(ray.cluster_resources().get("CPU", 0)), "gpus": int(ray.cluster_resources().get("GPU", 0))}
    return results, meta


def _imported(path: str):
    """(results, strategies, seeds, facts) from a ``benchmarks/vqvae_compare_gpu.py`` results file."""
    try:
        doc = json.loads(Path(path).read_text())
        names, seeds, raw = doc["meta"]["strategies"], doc["meta"]["seeds"], doc["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--results {path}: not a results file of benchmarks/vqvae_compare_gpu.py ({e})") from None
    keys = [("bounds", s) for s in seeds] + [(n, s) for s in seeds for n in names]
    missing = [f"{k}|{s}" for k, s in keys if "failed" in raw.get(f"{k}|{s}", {"failed": 1})]
    if missing:
        raise UsageError(f"--results {path}: no result for {', '.join(missing)}")
    m = doc["meta"]
    meta = {"preset": m["preset"], "overrides": m.get("overrides", []), "categories": m["categories"],
            "wall_s": m["wall_s"], "device": m["device"], "cpus": m["cores"],
            "load_before": " ".join(f"{v:.1f}" for v in m["load_before"]),
            "load_after": " ".join(f"{v:.1f}" for v in m.get("load_after", [])) or "?"}
    return {(k, s): raw[f"{k}|{s}"] for k, s in keys}, names, seeds, meta


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", default=",".join(ALL), help="comma-separated (default: uniform and all four)")
    p.add_argument("--seeds", default="0", help="comma-separated model seeds, e.g. 0,1,2 (default %(default)s)")
    p.add_argument("--preset", default="debug", choices=("debug", "note", "full"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. --set train.epochs=20 --set data.table=PATH")
    p.add_argument("--experiment", default="vqvae", help="MLflow experiment (default %(default)s)")
    p.add_argument("--name", default="compare-compression", help="parent run name")
    p.add_argument("--out", default="", help="also write comparison.md/.json/.png here")
    p.add_argument("--gpus-per-task", type=float, default=0.0, metavar="F",
                   help="GPUs per task (fractional shares pack several tasks on one GPU; default none)")
    p.add_argument("--results", default="", metavar="FILE",
                   help="summarise and log tasks run elsewhere by benchmarks/vqvae_compare_gpu.py; trains nothing")
    return p.parse_args(argv)


def _summarise(K, results, names, seeds, meta):
    runs = {s: [K.row_values(results[(s, seed)], results[("bounds", seed)]) for seed in seeds] for s in names}
    agg = K.aggregate(runs)
    win = K.winner(runs)
    first = results[(names[0], seeds[0])]
    meta = {"seeds": ",".join(map(str, seeds)), "n_val": first["n_rows"],
            "cpu_s": sum(r["cpu_s"] for r in results.values()), **meta}
    md = K.markdown(agg, [results[("bounds", s)] for s in seeds], win, meta)
    per_cat = {s: {seed: results[(s, seed)]["mse"] for seed in seeds} for s in names}
    summary = {"meta": meta, "aggregate": agg, "winner": win, "runs": runs, "per_category_mse": per_cat,
               "ratios": {s: results[(s, seeds[0])]["ratios"] for s in names},
               "dims": first["dims"], "bounds": {seed: results[("bounds", seed)] for seed in seeds}}
    return md, summary


if __name__ == "__main__":
    sys.exit(main())
