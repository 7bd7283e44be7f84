#!/usr/bin/env python
"""Apples-to-apples comparison of compression strategies (docs/families/vqvae.md, "Jobs").

  python jobs/compare_compression.py --preset note --seeds 0,1,2          # the measurement of record
  python jobs/compare_compression.py --strategies uniform,balanced --set train.epochs=20

Same table, same train/held-out split (data.seed), same cleaning and the SAME clustering (the strategy-
independent profile of the cached analysis), same model seeds: only the ratios differ. Every (strategy,
seed) trains as its own Ray task (one CPU each, so they run in parallel), as a child run of one MLflow
parent run; each seed also gets its floor (per-category PCA) and ceiling (unquantised, trained once).
The parent holds the table (markdown + JSON + PNG) with mean ± std over seeds, wall time and load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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

    import ray

    from mlplatform.families.vqvae import compare as K
    from mlplatform.raycluster import init_ray
    from mlplatform.registry import build_config
    from mlplatform.tracking import mlflow_utils as mu

    base = build_config("vqvae", args.preset, args.overrides)
    if isinstance(base.model.compression_ratios, dict):
        raise UsageError("model.compression_ratios is an explicit mapping: the comparison sets it per strategy")
    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    load_before, t0 = os.getloadavg(), time.perf_counter()
    init_ray()
    from mlplatform.families.vqvae import data as D

    info = D.prepare_data(base)  # table + every strategy's analysis, once (the same clustering for all)
    print(f"[compare] table {info['path']}: {info['categories']} categories; {len(names)} strategies x "
          f"{len(seeds)} seeds + {len(seeds)} ceilings as Ray tasks", flush=True)
    cl = mu.client(uri)
    exp = mu.get_or_create_experiment(cl, args.experiment)
    parent = cl.create_run(exp, run_name=args.name, tags={"kind": "compare_compression", "family": "vqvae"}).info.run_id
    plog = mu.RunLogger(parent, uri)
    plog.log_params({"compare.strategies": ",".join(names), "compare.seeds": ",".join(map(str, seeds)),
                     "compare.preset": args.preset, "compare.overrides": " ".join(args.overrides)})
    try:
        # retried only when the worker dies (e.g. killed by Ray's memory monitor on a crowded machine)
        train = ray.remote(num_cpus=1, max_retries=2)(K.train_and_evaluate)
        bound = ray.remote(num_cpus=1, max_retries=2)(K.bounds_task)
        refs = {}
        for seed in seeds:  # seed-major: the first results give a full row early
            refs[("bounds", seed)] = bound.remote(base.override([f"train.seed={seed}"]).to_dict())
            for s in names:
                child = cl.create_run(exp, run_name=f"{args.name}-{s}-s{seed}", tags={
                    mu.PARENT_TAG: parent, "family": "vqvae", "strategy": s, "seed": str(seed),
                    "kind": "compare_child"}).info.run_id
                refs[(s, seed)] = train.remote(base.override(K.strategy_overrides(s, seed)).to_dict(), child, uri,
                                               f"vqvae {s} s{seed}")
        results = dict(zip(refs, ray.get(list(refs.values()))))
        md, summary = _summarise(K, results, names, seeds, args, info, load_before, t0)
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
    return p.parse_args(argv)


def _summarise(K, results, names, seeds, args, info, load_before, t0):
    import ray

    runs = {s: [K.row_values(results[(s, seed)], results[("bounds", seed)]) for seed in seeds] for s in names}
    agg = K.aggregate(runs)
    win = K.winner(runs)
    first = results[(names[0], seeds[0])]
    meta = {"seeds": ",".join(map(str, seeds)), "preset": args.preset, "n_val": first["n_rows"],
            "categories": info["categories"], "wall_s": time.perf_counter() - t0,
            "cpu_s": sum(r["cpu_s"] for r in results.values()),
            "load_before": " ".join(f"{v:.1f}" for v in load_before),
            "load_after": " ".join(f"{v:.1f}" for v in os.getloadavg()),
            "cpus": int(ray.cluster_resources().get("CPU", 0))}
    md = K.markdown(agg, [results[("bounds", s)] for s in seeds], win, meta)
    per_cat = {s: {seed: results[(s, seed)]["mse"] for seed in seeds} for s in names}
    summary = {"meta": meta, "aggregate": agg, "winner": win, "runs": runs, "per_category_mse": per_cat,
               "ratios": {s: results[(s, seeds[0])]["ratios"] for s in names},
               "dims": first["dims"], "bounds": {seed: results[("bounds", seed)] for seed in seeds}}
    return md, summary


if __name__ == "__main__":
    sys.exit(main())
