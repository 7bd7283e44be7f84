#!/usr/bin/env python
"""The "auto" compression analysis of a Parquet feature table, as a cached Ray task
(docs/families/vqvae.md).

  python jobs/analyze_compression.py --data data/vqvae/features-XXXX/table --strategy balanced
  python jobs/analyze_compression.py --data my_features.parquet --strategy all --n-categories 8
  python jobs/analyze_compression.py --strategy balanced           # the generated debug table

Cleans the table (drops constant, mostly-NaN and duplicate columns, imputes the rest), discovers
categories by clustering on correlation distance, measures variance / dimensionality / information /
correlation per category and turns them into L0/L1/L2 ratios. Results are cached by (data fingerprint,
strategy, parameters): a second call returns at once. JSON + markdown table + plot go to one MLflow run
per strategy (experiment `vqvae` unless --experiment) and to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors

STRATS = ("variance", "dimensionality", "information", "balanced")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="", help="Parquet file or folder (default: generate the debug table)")
    p.add_argument("--strategy", default="balanced", help=f"{' | '.join(STRATS)} | all (default %(default)s)")
    p.add_argument("--n-categories", type=int, default=0, help="0 = choose the count from the data")
    p.add_argument("--max-nan-frac", type=float, default=0.5, help="drop columns with more NaN (default 0.5)")
    p.add_argument("--analysis-rows", type=int, default=20000, help="rows sampled for the analysis")
    p.add_argument("--cache", default="", help="cache folder (default <repo>/data/vqvae/analysis)")
    p.add_argument("--out", default="", help="also write the JSON/markdown/plot here")
    p.add_argument("--experiment", default="vqvae", help="MLflow experiment (default %(default)s)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    args = p.parse_args(argv)
    strategies = list(STRATS) if args.strategy == "all" else [args.strategy]
    if any(s not in STRATS for s in strategies):
        raise UsageError(f"--strategy {args.strategy!r}: choose one of {', '.join(STRATS)} or all")
    if not 0 <= args.max_nan_frac <= 1 or args.analysis_rows < 2 or args.n_categories < 0:
        raise UsageError("--max-nan-frac must be in [0, 1], --analysis-rows >= 2, --n-categories >= 0")

    from mlplatform.analysis import report
    from mlplatform.analysis.runner import AnalysisParams, analyze
    from mlplatform.data import features as feat
    from mlplatform.raycluster import init_ray
    from mlplatform.registry import build_config
    from mlplatform.tracking import mlflow_utils as mu

    uri = mu.resolve_tracking_uri()
    if not args.no_mlflow:
        mu.check_tracking(uri)
    if args.data:
        table = Path(args.data)
        feat.parquet_files(table)  # missing path: one line before Ray starts
    init_ray()
    cfg = build_config("vqvae", "debug")
    if not args.data:
        from mlplatform.families.vqvae import data as D

        table = D.ensure_table(cfg)
        print(f"[analysis] no --data: using the generated table {table}", flush=True)
    cache_root = Path(args.cache) if args.cache else mu.repo_root() / "data" / "vqvae" / "analysis"
    params = AnalysisParams(n_categories=args.n_categories, max_nan_frac=args.max_nan_frac,
                            analysis_rows=args.analysis_rows)
    results = analyze(table, strategies, params, cache_root)
    cl = mu.client(uri) if not args.no_mlflow else None
    for s, res in results.items():
        print(f"[analysis] {s}: {'cache hit' if res['cached'] else 'computed'} ({res['cache_dir']})", flush=True)
        print(report.markdown(res), flush=True)
        if args.out:
            report.write(res, args.out)
        if cl is not None:
            exp = mu.get_or_create_experiment(cl, args.experiment)
            run = cl.create_run(exp, run_name=f"analysis-{s}", tags={
                "kind": "compression_analysis", "family": "vqvae", "strategy": s,
                "data_fingerprint": Path(res["cache_dir"]).name, "table": str(table), "cached": str(res["cached"])})
            log = mu.RunLogger(run.info.run_id, uri)
            log.log_params({f"analysis.{k}": v for k, v in params.to_dict().items()})
            report.log_to_mlflow(res, log)
            log.log_metrics({"analysis/n_categories": res["category_info"]["n_categories"],
                             "analysis/dropped_columns": len(res["cleaning"]["dropped"])}, step=0)
            log.end("FINISHED")
            print(f"[mlflow] {mu.run_url(uri, exp, run.info.run_id)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
