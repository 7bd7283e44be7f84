#!/usr/bin/env python
"""vqvae's strategy comparison (``jobs/compare_compression.py``) on a GPU machine that has no Ray and no
MLflow: the same tasks (``compare.train_and_evaluate`` per strategy and seed, ``compare.bounds_task`` per
seed) run in a pool of processes sharing the one GPU, and their results go to one JSON file. Import that
file where MLflow is with ``python jobs/compare_compression.py --results FILE`` (table, plot, parent run).

Where Ray is, use ``jobs/compare_compression.py --gpus-per-task 0.25`` instead: the same tasks as Ray tasks.

``--cpu-workers N`` trains the quantised models in a second pool of N processes that see no GPU (one torch
thread each), and only the bounds (the unquantised ceilings) on the GPU. The quantised models are
launch-bound (36 small codebooks a step): alone on an H200 one takes about 2 minutes, several processes
share the GPU badly (docs/stack.md), and one CPU core trains it about 3 times slower than the GPU. So on a
16-core GPU machine, 15 models on 15 cores finish sooner than 15 models queued on the GPU.

  MLPLATFORM_HOME=H python benchmarks/vqvae_compare_gpu.py --prepare-only --preset note   # here, no GPU
  MLPLATFORM_HOME=H python benchmarks/vqvae_compare_gpu.py --preset note --seeds 0,1,2 --out R.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "jobs"))
ALL = ("uniform", "variance", "dimensionality", "information", "balanced")


def _task(kind: str, cfg: dict[str, Any], label: str) -> dict[str, Any]:
    from mlplatform.families.vqvae import compare as K

    out = K.bounds_task(cfg) if kind == "bounds" else K.train_and_evaluate(cfg, "", "", label)
    out["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")  # "" in the GPU-less pool
    return out


def _hide_gpu() -> None:
    """A CPU pool's initializer: runs before the worker first imports torch, so torch sees no CUDA device."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)  # a reader (or a time limit) never sees half a file


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="note", choices=("debug", "note", "full"))
    p.add_argument("--strategies", default=",".join(ALL))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workers", type=int, default=0, help="processes sharing the GPU (default: one per task)")
    p.add_argument("--cpu-workers", type=int, default=0,
                   help="train the quantised models in this many GPU-less processes instead (default 0: all on the GPU)")
    p.add_argument("--prepare-only", action="store_true", help="build the table and analysis here, then stop")
    p.add_argument("--out", default="compare-results.json")
    a = p.parse_args(argv)
    if a.workers < 0 or a.cpu_workers < 0:
        p.error("--workers and --cpu-workers take a count of 0 or more")
    import torch

    from mlplatform.families.vqvae import compare as K, data as D
    from mlplatform.registry import build_config

    names, seeds = a.strategies.split(","), [int(s) for s in a.seeds.split(",")]
    base = build_config("vqvae", a.preset, a.overrides)
    info = D.prepare_data(base)
    print(f"[compare-gpu] table {info['path']}: {info['categories']} categories", flush=True)
    if a.prepare_only:
        return 0
    jobs = {f"bounds|{s}": ("bounds", base.override([f"train.seed={s}"]).to_dict(), f"bounds s{s}") for s in seeds}
    jobs.update({f"{n}|{s}": ("train", base.override(K.strategy_overrides(n, s)).to_dict(), f"vqvae {n} s{s}")
                 for s in seeds for n in names})
    out = Path(a.out)
    doc: dict[str, Any] = {"meta": {"preset": a.preset, "overrides": a.overrides, "strategies": names,
                                    "seeds": seeds, "categories": info["categories"],
                                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                                    "cores": os.cpu_count(), "load_before": os.getloadavg()},
                           "results": {}}
    t0 = time.perf_counter()
    on_cpu = {k for k, job in jobs.items() if a.cpu_workers and job[0] == "train"}
    doc["meta"]["placement"] = {k: "cpu" if k in on_cpu else "gpu" for k in jobs}
    ctx = get_context("spawn")  # an executor starts its processes on the first submit: an unused pool costs none
    with ProcessPoolExecutor(a.workers or len(jobs) - len(on_cpu), mp_context=ctx) as gpu, \
            ProcessPoolExecutor(max(1, a.cpu_workers), mp_context=ctx, initializer=_hide_gpu) as cpu:
        futs = {(cpu if key in on_cpu else gpu).submit(_task, *job): key for key, job in jobs.items()}
        for f in as_completed(futs):
            key = futs[f]
            try:
                doc["results"][key] = f.result()
            except Exception as e:  # noqa: BLE001 - recorded; the other tasks still finish
                doc["results"][key] = {"failed": f"{type(e).__name__}: {e}"[:400]}
            doc["meta"]["wall_s"] = time.perf_counter() - t0
            _write(out, doc)
            print(f"[compare-gpu] {key} done at {doc['meta']['wall_s']:.0f} s "
                  f"({len(doc['results'])}/{len(jobs)})", flush=True)
    doc["meta"]["load_after"] = os.getloadavg()
    _write(out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
