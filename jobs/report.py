#!/usr/bin/env python
"""Write (or rewrite) a sweep's report from MLflow: best trials, parameter importance, parallel
coordinates, optimisation history, learning curves, baseline margins and which trials were stopped and why;
paired bootstrap intervals of each trial against the best (trials tied with it are marked; the parent run gets
best/ci_*), and for a --objectives sweep the Pareto front (its runs tagged pareto=true).
Logged under report/ on the sweep's parent run (open report/report.html in the MLflow UI).

  python jobs/report.py --experiment riscov                          # the latest sweep of the experiment
  python jobs/report.py --experiment riscov --sweep riscov-20260101-120000
  python jobs/report.py --experiment riscov --parent RUN_ID --out reports/riscov

The tracking store is MLFLOW_TRACKING_URI, else the project's sqlite:///<repo>/mlruns.db (--tracking-uri
overrides both). Nothing is trained: everything is read back from the parent run and its child runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", required=True,
                   help="MLflow experiment of the sweep (hpo.py's default: the family name)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sweep", default="", help="sweep name (hpo.py --name); default: the latest sweep")
    which.add_argument("--parent", default="", metavar="RUN_ID", help="the sweep's MLflow parent run id")
    p.add_argument("--out", default="", help="folder for report.md, report.html and the PNGs (default: a temp folder)")
    p.add_argument("--tracking-uri", default="",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the repo store)")
    return p.parse_args(argv)


def check_store(uri: str) -> None:
    """A report reads an existing store: a missing sqlite file is a mistake, not a new empty store."""
    from mlplatform.tracking import mlflow_utils as mu

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UsageError(f"no MLflow store at {uri[len('sqlite:///'):]}; set MLFLOW_TRACKING_URI or --tracking-uri")
    mu.check_tracking(uri)


def find_parent(cl, experiment: str, sweep: str = "", parent: str = "") -> str:
    """The parent run id of the named (or latest) sweep in ``experiment``; one-line errors otherwise."""
    exp = cl.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in cl.search_experiments())
        raise UsageError(f"no MLflow experiment named {experiment!r} in {cl.tracking_uri}; "
                         f"there: {', '.join(names) or 'none'}")
    if parent:
        try:
            run = cl.get_run(parent)
        except Exception:  # noqa: BLE001 - MLflow raises its own types for an unknown or malformed id
            run = None
        if run is None or run.info.experiment_id != exp.experiment_id or run.data.tags.get("kind") != "sweep":
            raise UsageError(f"run {parent} is not a sweep parent run in experiment {experiment!r}")
        return parent
    flt = "tags.kind = 'sweep'" + (f" and tags.sweep = '{_quote_ok(sweep)}'" if sweep else "")
    runs = cl.search_runs([exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"],
                          max_results=1)
    if not runs:
        what = f"sweep named {sweep!r}" if sweep else "sweep"
        raise UsageError(f"no {what} in experiment {experiment!r} (run one with jobs/hpo.py)")
    return runs[0].info.run_id


def _quote_ok(s: str) -> str:
    if "'" in s:  # it would end the filter string early
        raise UsageError(f"a quote is not allowed in a sweep name: {s!r}")
    return s


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.tune.report import write_sweep_report

    uri = mu.resolve_tracking_uri(args.tracking_uri or None)
    check_store(uri)
    cl = mu.client(uri)
    parent = find_parent(cl, args.experiment, args.sweep, args.parent)
    out = write_sweep_report(uri, parent, args.out or None)
    print(f"sweep report  {out / 'report.md'}  (+ report.html and PNGs)")
    print(f"logged to     run {parent}, artifacts report/ (open report/report.html in the MLflow UI)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
