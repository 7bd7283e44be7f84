"""The sweep report's "Time to quality" section: best-so-far against the compute the sweep had spent.

Every epoch of every trial logs what it cost (``sys/epoch_wall_s``, ``sys/epoch_cpu_s``, ``sys/epoch_gpu_s``:
train/loop.py). Ordering all trials' epochs by when they were logged gives the sweep's cumulative compute
at each validation, and the best selection metric reached by then. The section states the compute at which
the best-so-far first entered the best trial's 95% interval (the noise section's): past that point the
sweep bought nothing the frozen validation set can tell apart. GPU seconds where the trials held GPUs,
else CPU seconds.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from mlplatform.tune.report.doc import Doc, fmt
from mlplatform.tune.report.plots import BEST, _save

if TYPE_CHECKING:
    from mlplatform.tune.noise import NoiseResult
    from mlplatform.tune.report.data import SweepData

COST_KEYS = ("sys/epoch_gpu_s", "sys/epoch_cpu_s", "sys/epoch_wall_s")


def _by_step(cl: Any, run_id: str, key: str) -> dict[int, tuple[int, float]]:
    """step -> (timestamp ms, value) of one metric's history (the last value logged per step)."""
    return {m.step: (m.timestamp, m.value) for m in cl.get_metric_history(run_id, key) if math.isfinite(m.value)}


def compute_curve(cl: Any, data: SweepData) -> dict[str, Any] | None:
    """``{"unit", "x": cumulative compute, "best": best so far, "total": {wall, cpu, gpu}}`` over the trials'
    epochs in logging order; None for trials that predate the cost metrics."""
    events, totals = [], {k: 0.0 for k in COST_KEYS}
    for t in data.trials:
        metric = _by_step(cl, t.run_id, data.metric)
        costs = {k: _by_step(cl, t.run_id, k) for k in COST_KEYS}
        for step, (ts, _) in costs["sys/epoch_wall_s"].items():
            c = {k: costs[k].get(step, (0, 0.0))[1] for k in COST_KEYS}
            for k in COST_KEYS:
                totals[k] += c[k]
            events.append((ts, c, metric.get(step, (0, None))[1]))
    if not events:
        return None
    unit = "sys/epoch_gpu_s" if totals["sys/epoch_gpu_s"] > 0 else "sys/epoch_cpu_s"
    events.sort(key=lambda e: e[0])
    sign = 1.0 if data.mode == "min" else -1.0
    x, best, acc, cur = [], [], 0.0, None
    for _, c, v in events:
        acc += c[unit]
        if v is not None and (cur is None or sign * v < sign * cur):
            cur = v
        x.append(acc)
        best.append(cur)
    return {"unit": "GPU s" if unit == "sys/epoch_gpu_s" else "CPU s", "x": x, "best": best,
            "total": {"wall_s": totals["sys/epoch_wall_s"], "cpu_s": totals["sys/epoch_cpu_s"],
                      "gpu_s": totals["sys/epoch_gpu_s"]}}


def first_within(curve: dict[str, Any], lo: float, hi: float, mode: str) -> float | None:
    """The cumulative compute at which the best so far first reached the interval (its worse end or better)."""
    for x, b in zip(curve["x"], curve["best"]):
        if b is not None and (b <= hi if mode == "min" else b >= lo):
            return x
    return None


def compute_section(doc: Doc, curve: dict[str, Any] | None, data: SweepData, noise: NoiseResult | None,
                    out_dir: Path) -> dict[str, float]:
    """The section (``curve``: :func:`compute_curve`); returns the figures for the parent run (``sweep/compute_*``)."""
    doc.h("Time to quality")
    if curve is None:
        doc.p("The trials logged no per-epoch cost (runs from before `sys/epoch_*_s` existed): no curve.")
        return {}
    tot = curve["total"]
    out = {"sweep/compute_wall_s": tot["wall_s"], "sweep/compute_cpu_s": tot["cpu_s"], "sweep/compute_gpu_s": tot["gpu_s"]}
    text = (f"The trials spent {tot['wall_s']:.3g} s of wall time in their epochs, {tot['cpu_s']:.3g} CPU s and "
            f"{tot['gpu_s']:.3g} GPU s (wall times the GPUs held).")
    at = None
    if noise is not None and noise.best_value is not None:
        iv = noise.best_value
        at = first_within(curve, iv.lo, iv.hi, data.mode)
        if at is not None:
            out["sweep/compute_to_quality"] = at
            text += (f" The best so far first entered the best trial's 95% interval [{fmt(iv.lo)}, {fmt(iv.hi)}] "
                     f"after **{at:.3g} {curve['unit']}**, {at / max(curve['x'][-1], 1e-9):.0%} of the sweep's "
                     f"{curve['x'][-1]:.3g} {curve['unit']}.")
    doc.p(text)
    doc.img(plot_compute(curve, data, noise, at, out_dir / "time_to_quality.png"),
            "best so far against the cumulative compute of the sweep")
    return out


def plot_compute(curve: dict[str, Any], data: SweepData, noise: NoiseResult | None, at: float | None,
                 path: Path) -> Path:
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    pts = [(x, b) for x, b in zip(curve["x"], curve["best"]) if b is not None]
    ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="#457b9d", label="best so far")
    if noise is not None and noise.best_value is not None:
        ax.axhspan(noise.best_value.lo, noise.best_value.hi, color=BEST, alpha=0.12, label="best trial's 95% interval")
    if at is not None:
        ax.axvline(at, color=BEST, linestyle="--", linewidth=1, label=f"first within it ({at:.3g} {curve['unit']})")
    ax.set_xlabel(f"cumulative compute of the sweep's trials ({curve['unit']})", fontsize=8)
    ax.set_ylabel(f"{data.metric} ({data.mode})", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)
