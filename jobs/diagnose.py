#!/usr/bin/env python
"""Diagnose a trained model: the per-category table and codebook health (docs/families/vqvae.md).

  python jobs/diagnose.py --family vqvae --checkpoint ray_results/.../best
  python jobs/diagnose.py --family vqvae --checkpoint CKPT --split all --out reports/

Per category: MSE, relative error to the best category, dimensions, codebook utilisation per level,
ratios; then average utilisation, dead codes, perplexity, reconstruction error and quality. Written as
markdown + PNG to an MLflow run (tag kind=diagnose) and printed. Checkpoints load with weights_only=True.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, help="model family (only vqvae has these diagnostics)")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (with state.pt)")
    p.add_argument("--split", default="val", choices=("val", "train", "all"), help="rows to diagnose (default val)")
    p.add_argument("--out", default="", help="also write diagnostics.md/.png/.json here")
    p.add_argument("--experiment", default="", help="MLflow experiment (default: the family name)")
    p.add_argument("--no-mlflow", action="store_true")
    args = p.parse_args(argv)
    if args.family != "vqvae":
        raise UsageError(f"--family {args.family}: diagnostics exist for vqvae only")
    from mlplatform.families.vqvae.diagnostics import diagnosis_markdown, diagnosis_plot, evaluate_split, load_model
    from mlplatform.tracking import mlflow_utils as mu

    uri = mu.resolve_tracking_uri()
    if not args.no_mlflow:
        mu.check_tracking(uri)
    cfg, model = load_model(args.checkpoint)
    print(f"[diagnose] {args.checkpoint}: {len(model.categories)} categories, evaluating split {args.split}", flush=True)
    d = evaluate_split(cfg, model, args.split)
    md = diagnosis_markdown(d, f"vqvae diagnostics: {Path(args.checkpoint).resolve()}")
    print(md, flush=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mlp-diagnose-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.md").write_text(md)
    (out / "diagnostics.json").write_text(json.dumps(d, indent=1, default=float))
    diagnosis_plot(d, out / "diagnostics.png")
    if not args.no_mlflow:
        cl = mu.client(uri)
        exp = mu.get_or_create_experiment(cl, args.experiment or "vqvae")
        run = cl.create_run(exp, run_name="diagnose", tags={"kind": "diagnose", "family": "vqvae",
                                                            "checkpoint": str(Path(args.checkpoint).resolve())})
        log = mu.RunLogger(run.info.run_id, uri)
        log.log_metrics({k: v for k, v in d.items() if isinstance(v, (int, float))}, step=0)
        log.log_artifacts(str(out), "diagnostics")
        log.end("FINISHED")
        print(f"[mlflow] {mu.run_url(uri, exp, run.info.run_id)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
