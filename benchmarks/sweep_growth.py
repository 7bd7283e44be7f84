#!/usr/bin/env python
"""Cost as work grows: per-trial sweep overhead at n = 24, 96 and 192 tiny trials (goal: the figure at 192
is <= 1.2x the one at 24), the driver's memory at each n, and the sweep report's generation time at 192.

Each sweep is the platform's own ``run_sweep`` (TPE + ASHA, MLflow parent + child runs, one sqlite
store shared by all sweeps, a fresh experiment each) on the warm local Ray, riscov debug preset cut to
2 epochs of 4 steps (~1 s of training per trial). Overhead per trial is ``sweep_overhead``'s per-slot
figure, ``(k * wall - sum of training time) / n``; a 2-trial warm-up sweep runs first and is not counted.
Driver memory: the RSS of this process (Tune's driver, OptunaSearch, the callbacks) after each sweep and
its peak sampled every 0.2 s during it (psutil). Report time: ``write_sweep_report`` on the 192-trial sweep,
timed again after the sweep (the sweep already wrote it once).

  python benchmarks/sweep_growth.py [--sizes 24,96,192] [--epochs 2]
"""
from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import benchlib as B
from sweep_overhead import sweep

TINY = ["data.n_train=512", "train.val_batches=1"]


class PeakRss:
    """The peak resident memory of this process while the ``with`` block runs (psutil, every 0.2 s)."""

    def __enter__(self) -> "PeakRss":
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.2)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.end = self.proc.memory_info().rss
        self.peak = max(self.peak, self.end)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="24,96,192")
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",")]
    B.start_ray()
    work = B.scratch("growth")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    from mlplatform.families.riscov.data import prepare_data
    from mlplatform.registry import build_config
    from mlplatform.tune.report import write_sweep_report

    prepare_data(build_config("riscov", "debug"))
    sweep(work, uri, "warmup", 2, 1, overrides=TINY, experiment="growth-warmup")
    rows: dict[str, Any] = {}
    for n in sizes:
        with PeakRss() as mem:
            r = sweep(work, uri, f"n{n}", n, a.epochs, overrides=TINY, experiment=f"growth-{n}")
        rows[str(n)] = {**r, "driver_rss_mb": mem.end / 2**20, "driver_peak_rss_mb": mem.peak / 2**20}
    last = sizes[-1]
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name(f"growth-{last}").experiment_id],
                                           filter_string="tags.kind = 'sweep'")[0].info.run_id
    t0 = time.perf_counter()
    write_sweep_report(uri, parent, work / "report-again")
    report_s = time.perf_counter() - t0
    first, big = rows[str(sizes[0])], rows[str(last)]
    growth = B.ratio(big["overhead_per_slot_s_per_trial"], first["overhead_per_slot_s_per_trial"])
    return B.emit("sweep_growth", {
        "goal": f"per-trial overhead at n={last} <= 1.2x n={sizes[0]}", "epochs": a.epochs, "sizes": rows,
        "overhead_growth": growth, "goal_met": growth <= 1.2,
        "driver_rss_growth": B.ratio(big["driver_rss_mb"], first["driver_rss_mb"]),
        "report_s_at_largest": report_s, "report_trials": last})


if __name__ == "__main__":
    main()
