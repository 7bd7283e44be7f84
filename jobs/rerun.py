#!/usr/bin/env python
"""Retrain a run from its manifest.json and say whether the result reproduces it.

  python jobs/rerun.py RUN_ID                    # same config, seeds, worker count; a new MLflow run
  python jobs/rerun.py RUN_ID --json-out r.json  # the verdict as JSON too

The rerun uses the run's resolved config (every key, seeds included) on the code checked out here; it
says when that code differs from the run's (git commit, dirty flag, source digest). It then compares:
the final weights (``weights.sha256``: on CPU, where the loop is deterministic, a rerun on the same code
gives the same weights bit for bit), the frozen validation set's hash, and the selection metric: the
rerun's mean over the frozen items against the original's 95% bootstrap interval, and the paired interval
of rerun minus original on the same items. Exit 0 when reproduced (same weights, or a mean inside the
interval), 1 when not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlplatform.cli import UsageError, one_line_errors


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_id", metavar="RUN_ID", help="the MLflow run to reproduce (a training run or a sweep trial)")
    p.add_argument("--num-workers", type=int, default=0, help="DDP workers (default: the run's own count)")
    p.add_argument("--name", default="", help="the rerun's run name (default rerun-<run id>-<timestamp>)")
    p.add_argument("--storage-path", default="", help="Ray storage for the rerun's checkpoints (default <repo>/ray_results)")
    p.add_argument("--json-out", default="", help="also write the verdict as JSON to this file")
    return p.parse_args(argv)


def read_run(cl: Any, uri: str, run_id: str) -> tuple[Any, dict[str, Any]]:
    """The run and its manifest; one-line errors for an unknown run, a run without a manifest, a sweep
    parent, or a run that started from a checkpoint (its start cannot be rebuilt from a config)."""
    from mlflow.exceptions import MlflowException

    from mlplatform.tracking import manifest

    try:
        run = cl.get_run(run_id)
    except MlflowException:
        raise UsageError(f"no MLflow run {run_id} in {uri} (set MLFLOW_TRACKING_URI to the store it is in)") from None
    try:
        with tempfile.TemporaryDirectory() as d:
            man = json.loads(Path(cl.download_artifacts(run_id, manifest.FILE, d)).read_text())
    except (MlflowException, OSError, ValueError):
        raise UsageError(f"run {run_id} has no readable {manifest.FILE} (it predates run manifests, or its "
                         "artifacts are gone)") from None
    if man.get("kind") != "train":
        raise UsageError(f"run {run_id} is a {man.get('kind')} run; rerun one of its trials (a training run)")
    if man.get("resumed_from"):
        raise UsageError(f"run {run_id} started from the checkpoint {man['resumed_from']}: a rerun cannot rebuild "
                         "that start from its config")
    return run, man


def code_lines(man: dict[str, Any]) -> list[str]:
    """How the code here compares with the run's."""
    from mlplatform.tracking.manifest import git_state, source_digest

    was, now = man.get("git") or {}, git_state()
    same_src = man.get("source_sha256") == source_digest()
    lines = [f"[rerun] code: run {str(was.get('commit'))[:12]}{' (dirty)' if was.get('dirty') else ''}, "
             f"here {str(now.get('commit'))[:12]}{' (dirty)' if now.get('dirty') else ''}; package source "
             + ("identical" if same_src else "DIFFERS (results may differ for that reason)")]
    return lines


def per_item(cl: Any, run_id: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    from mlplatform.tune.report.noise import ARTIFACT

    try:
        with tempfile.TemporaryDirectory() as d:
            return json.loads(Path(cl.download_artifacts(run_id, ARTIFACT, d)).read_text())
    except (MlflowException, OSError, ValueError):
        return None


def verdict(orig_tags: dict[str, str], new_tags: dict[str, str], orig_items: dict[str, Any] | None,
            new_items: dict[str, Any] | None, orig_man: dict[str, Any], new_man: dict[str, Any]) -> dict[str, Any]:
    """The comparison as plain values: weights identical, frozen set identical, the rerun's mean against
    the original's interval and the paired interval of the difference (None where not measurable)."""
    import numpy as np

    from mlplatform.tune.noise import bootstrap_mean

    out: dict[str, Any] = {
        "weights_identical": bool(orig_tags.get("weights.sha256"))
        and orig_tags.get("weights.sha256") == new_tags.get("weights.sha256"),
        "frozen_set_identical": (orig_man.get("frozen_val") or {}).get("sha256")
        == (new_man.get("frozen_val") or {}).get("sha256"),
        "metric": (orig_items or {}).get("metric"), "original": None, "rerun_mean": None, "inside_interval": None,
        "paired_diff": None}
    a, b = (orig_items or {}).get("model") or [], (new_items or {}).get("model") or []
    if a and b:
        iv = bootstrap_mean(a)
        out.update(original={"mean": iv.mean, "ci_lo": iv.lo, "ci_hi": iv.hi}, rerun_mean=float(np.mean(b)),
                   inside_interval=iv.contains(float(np.mean(b))))
        if len(a) == len(b):
            d = bootstrap_mean(np.asarray(b, float) - np.asarray(a, float))
            out["paired_diff"] = {"mean": d.mean, "ci_lo": d.lo, "ci_hi": d.hi}
    out["reproduced"] = bool(out["weights_identical"] or out["inside_interval"])
    return out


def render(v: dict[str, Any]) -> list[str]:
    lines = [f"[rerun] final weights: {'IDENTICAL (bit for bit)' if v['weights_identical'] else 'differ'}; "
             f"frozen validation set: {'identical' if v['frozen_set_identical'] else 'DIFFERS'}"]
    if v["original"] is not None:
        o = v["original"]
        lines.append(f"[rerun] {v['metric']}: rerun mean {v['rerun_mean']:.6g}, original {o['mean']:.6g} "
                     f"[{o['ci_lo']:.6g}, {o['ci_hi']:.6g}] -> {'inside' if v['inside_interval'] else 'OUTSIDE'}")
    if v["paired_diff"] is not None:
        d = v["paired_diff"]
        lines.append(f"[rerun] paired rerun - original: {d['mean']:.3g} [{d['ci_lo']:.3g}, {d['ci_hi']:.3g}]")
    lines.append(f"[rerun] {'REPRODUCED' if v['reproduced'] else 'NOT reproduced'}")
    return lines


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import yaml

    import train  # jobs/train.py, beside this file
    from mlplatform.storage import check_file_writable
    from mlplatform.tracking import mlflow_utils as mu

    if args.json_out:
        check_file_writable(args.json_out, "--json-out")
    uri = mu.resolve_tracking_uri()
    mu.check_tracking(uri)
    cl = mu.client(uri)
    run, man = read_run(cl, uri, args.run_id)
    for line in code_lines(man):
        print(line, flush=True)
    name = args.name or f"rerun-{args.run_id[:8]}-{time.strftime('%Y%m%d-%H%M%S')}"
    workers = args.num_workers or int(man.get("num_workers") or (man.get("device") or {}).get("world_size") or 1)
    experiment = cl.get_experiment(run.info.experiment_id).name
    with tempfile.TemporaryDirectory() as d:
        cfg_file = Path(d) / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(man["config"], sort_keys=False))
        argv_train = ["--family", man["family"], "--config", str(cfg_file), "--name", name, "--experiment", experiment,
                      "--num-workers", str(workers), "--cpus-per-worker", str(man.get("cpus_per_worker", 1.0)),
                      "--gpus-per-worker", str(man.get("gpus_per_worker", 0.0))]
        if args.storage_path:
            argv_train += ["--storage-path", args.storage_path]
        rc = train.main(argv_train)
    if rc != 0:
        return rc
    new_id = mu.find_run(cl, run.info.experiment_id, {"train_name": name})
    new_man = read_run(cl, uri, new_id)[1]
    v = verdict(run.data.tags, cl.get_run(new_id).data.tags, per_item(cl, args.run_id), per_item(cl, new_id),
                man, new_man)
    v.update(run_id=args.run_id, rerun_id=new_id)
    cl.set_tag(new_id, "rerun_of", args.run_id)
    cl.set_tag(new_id, "rerun.reproduced", str(v["reproduced"]).lower())
    cl.set_tag(new_id, "rerun.weights_identical", str(v["weights_identical"]).lower())
    for line in render(v):
        print(line, flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(v, indent=2))
    return 0 if v["reproduced"] else 1


if __name__ == "__main__":
    sys.exit(main())
