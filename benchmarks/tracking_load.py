#!/usr/bin/env python
"""Tracking under load: 16 concurrent writer processes, each logging 50 epochs x 20 metrics through the
platform's ``RunLogger`` to an ``mlflow server`` on PostgreSQL, then the same on a sqlite-backed server
(same server settings, same run). Every point must arrive exactly once (each run's history of each
metric is read back: steps 1..E, each once, with the value written). Figure: points/s, PostgreSQL over sqlite.

The writers import MLflow and open their logger first and wait on a barrier, so the timed span is the
logging alone (from the barrier to the last writer's ``end``); the servers run one at a time.

  python benchmarks/tracking_load.py [--writers 16] [--epochs 50] [--metrics 20] [--server-workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import benchlib as B


def value(writer: int, epoch: int, metric: int) -> float:
    return writer * 1e4 + epoch + metric / 100.0  # distinct per point: a misplaced point is caught


def _writer(url: str, run_id: str, writer: int, epochs: int, metrics: int, barrier: Any, q: Any) -> None:
    from mlplatform.tracking.mlflow_utils import RunLogger

    logger = RunLogger(run_id, url, verbose=False)
    barrier.wait(600)
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        logger.log_metrics({f"m{m:02d}": value(writer, e, m) for m in range(metrics)}, step=e)
    ok = logger.end("FINISHED")
    q.put((writer, time.perf_counter() - t0, ok))


def run_load(url: str, writers: int, epochs: int, metrics: int) -> dict[str, Any]:
    """Start ``writers`` processes on fresh runs of ``url``; time them; read every point back."""
    from mlflow.tracking import MlflowClient

    cl = MlflowClient(url)
    exp = cl.create_experiment(f"load-{time.time_ns()}")
    runs = [cl.create_run(exp, run_name=f"w{i}").info.run_id for i in range(writers)]
    ctx = mp.get_context("spawn")
    barrier, q = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, runs[i], i, epochs, metrics, barrier, q)) for i in range(writers)]
    for p in procs:
        p.start()
    barrier.wait(600)  # every writer has imported MLflow and opened its logger
    t0 = time.perf_counter()
    done = [q.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    check = verify(cl, runs, epochs, metrics)
    points = writers * epochs * metrics
    return {"writers": writers, "epochs": epochs, "metrics": metrics, "points": points, "wall_s": wall,
            "points_per_s": points / wall, "slowest_writer_s": max(d[1] for d in done),
            "all_ended": all(d[2] for d in done), **check}


def verify(cl: Any, runs: list[str], epochs: int, metrics: int) -> dict[str, int]:
    """Count lost, duplicated and wrong points over every run's every metric history."""
    lost = dup = wrong = 0
    for w, run_id in enumerate(runs):
        for m in range(metrics):
            hist = cl.get_metric_history(run_id, f"m{m:02d}")
            steps = [h.step for h in hist]
            lost += len(set(range(1, epochs + 1)) - set(steps))
            dup += len(steps) - len(set(steps))
            wrong += sum(1 for h in hist if h.value != value(w, h.step, m))
    return {"lost": lost, "duplicated": dup, "wrong": wrong}


def server_args(workers: int) -> list[str]:
    """uvicorn kills a worker that has not answered its health ping within 5 s of starting; on a loaded
    2-core machine importing MLflow takes longer, and the server restarts its workers forever."""
    return ["--uvicorn-opts", "--timeout-worker-healthcheck 120"] if workers > 1 else []


def main(argv: list[str] | None = None) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop our servers
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--metrics", type=int, default=20)
    p.add_argument("--server-workers", type=int, default=2, help="mlflow server --workers, both backends")
    a = p.parse_args(argv)
    from mlplatform.tracking.postgres import LocalPostgres
    from mlplatform.tracking.server import MlflowServer

    work = B.scratch("tracking")
    out: dict[str, Any] = {}
    pg = LocalPostgres()
    try:
        pg.start()
        for name, backend in (("postgresql", pg.sqlalchemy_uri()), ("sqlite", None)):
            srv = MlflowServer(work / name, workers=a.server_workers, backend_uri=backend,
                               extra_args=server_args(a.server_workers))
            try:
                t0 = time.perf_counter()
                srv.start(timeout=600)
                out[name] = {"server_start_s": time.perf_counter() - t0,
                             **run_load(srv.url, a.writers, a.epochs, a.metrics)}
            finally:
                srv.stop()
    finally:
        pg.stop()
    exact = all(out[k]["lost"] == out[k]["duplicated"] == out[k]["wrong"] == 0 for k in out)
    return B.emit("tracking_load", {
        "goal": "every point exactly once; PostgreSQL / sqlite throughput recorded", **out,
        "ratio_postgresql_to_sqlite": B.ratio(out["postgresql"]["points_per_s"], out["sqlite"]["points_per_s"]),
        "exactly_once": exact, "load_avg_end": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
