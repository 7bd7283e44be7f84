#!/usr/bin/env python
"""Apples-to-apples comparison of compression strategies (docs/families/vqvae.md).

  python jobs/compare_compression.py                                  # debug preset, all strategies
  python jobs/compare_compression.py --strategies uniform,balanced --set train.epochs=20

Same table, same train/val sample (data.seed), same cleaning and the SAME clustering (the strategy-
independent profile of the cached analysis), same model seed: only the ratios differ. Each strategy
is one child run under one MLflow parent run, which holds the comparison table (markdown + JSON + PNG).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors

ALL = ("uniform", "variance", "dimensionality", "information", "balanced")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", default=",".join(ALL), help="comma-separated (default: uniform and all four)")
    p.add_argument("--preset", default="debug", choices=("debug", "full"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. --set train.epochs=20 --set data.table=PATH")
    p.add_argument("--experiment", default="vqvae", help="MLflow experiment (default %(default)s)")
    p.add_argument("--name", default="compare-compression", help="parent run name")
    p.add_argument("--out", default="", help="also write comparison.md/.json/.png here")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL]
    if bad or not names:
        raise UsageError(f"--strategies: {bad or 'none'} not allowed; choose from {', '.join(ALL)}")

    from mlplatform.families.vqvae.diagnostics import comparison_markdown, evaluate_split, load_model
    from mlplatform.raycluster import init_ray
    from mlplatform.registry import build_config, get_family
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.executors import run_local

    base = build_config("vqvae", args.preset, args.overrides)
    if isinstance(base.model.compression_ratios, dict):
        raise UsageError("model.compression_ratios is an explicit mapping: the comparison sets it per strategy")
    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    init_ray()
    info = get_family("vqvae").prepare_data(base)  # table + every strategy's analysis, once
    print(f"[compare] table {info['path']}: {info['categories']} categories (same clustering for every run)", flush=True)
    cl = mu.client(uri)
    exp = mu.get_or_create_experiment(cl, args.experiment)
    parent = cl.create_run(exp, run_name=args.name, tags={"kind": "compare_compression", "family": "vqvae"}).info.run_id
    plog = mu.RunLogger(parent, uri)
    plog.log_params({"compare.strategies": ",".join(names), "compare.preset": args.preset,
                     "compare.overrides": " ".join(args.overrides)})
    rows = []
    try:
        for s in names:
            ov = ["model.compression_ratios=uniform"] if s == "uniform" else \
                 ["model.compression_ratios=auto", f"model.auto_compression_strategy={s}"]
            cfg = base.override(ov)
            child = cl.create_run(exp, run_name=f"{args.name}-{s}", tags={
                mu.PARENT_TAG: parent, "family": "vqvae", "strategy": s, "kind": "compare_child"}).info.run_id
            print(f"[compare] training {s} ...", flush=True)
            summary, _ = run_local({"family": "vqvae", "cfg": cfg.to_dict(), "mlflow_run_id": child,
                                    "tracking_uri": uri, "label": f"vqvae {s}", "verbose": False})
            _, model = load_model(Path(summary["work_dir"]) / "best")
            d = evaluate_split(cfg, model, "val")
            d["name"] = s
            rows.append(d)
            print(f"[compare] {s}: recon_error={d['recon_error']:.4f} util={d['codebook_utilization']:.3f} "
                  f"perplexity={d['perplexity']:.2f}", flush=True)
        md = comparison_markdown(rows)
        print(md, flush=True)
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mlp-compare-"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(md)
        (out / "comparison.json").write_text(json.dumps(rows, indent=1, default=float))
        _plot(rows, out / "comparison.png")
        plog.log_artifacts(str(out), "comparison")
        for i, r in enumerate(rows):
            plog.log_metrics({f"compare/{r['name']}/recon_error": r["recon_error"],
                              f"compare/{r['name']}/codebook_utilization": r["codebook_utilization"]}, step=0)
        plog.end("FINISHED")
    except BaseException:
        plog.end("FAILED")
        raise
    print(f"[mlflow] parent run: {mu.run_url(uri, exp, parent)}", flush=True)
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = list(rows[0]["mse"])
    x = np.arange(len(cats))
    w = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, r in enumerate(rows):
        ax.bar(x + (i - (len(rows) - 1) / 2) * w, [r["mse"][c] for c in cats], w, label=r["name"])
    ax.set_xticks(x, cats, rotation=45, ha="right")
    ax.set_title("per-category validation MSE by strategy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
