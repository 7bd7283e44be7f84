"""The sweep report's PNGs for noise-aware selection and Pareto sweeps (same conventions as
``plots``: ``matplotlib.figure.Figure`` directly, no pyplot, safe in a headless driver)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mlplatform.tune.report.plots import BEST, COLORS, _save

if TYPE_CHECKING:
    from mlplatform.tune.noise import NoiseResult
    from mlplatform.tune.report.data import SweepData

TIED, APART = "#2a9d8f", "#9a9a9a"


def plot_intervals(noise: NoiseResult, metric: str, path: Path) -> Path:
    """One row per trial: the mean difference to the best with its interval; tied rows in green."""
    rows = [(tid, n) for tid, n in noise.trials.items() if n.diff is not None]
    fig = Figure(figsize=(8, 0.9 + 0.32 * max(1, len(rows))))
    ax = fig.add_subplot()
    for i, (tid, n) in enumerate(reversed(rows)):
        c = TIED if n.tied else APART
        ax.errorbar(n.diff.mean, i, xerr=[[n.diff.mean - n.diff.lo], [n.diff.hi - n.diff.mean]], fmt="o",
                    color=c, ecolor=c, capsize=3, markersize=4)
    ax.axvline(0.0, color=BEST, linewidth=1.2, linestyle="--")
    ax.set_yticks(range(len(rows)), [tid for tid, _ in reversed(rows)], fontsize=7)
    better = "lower" if noise.mode == "min" else "higher"
    ax.set_xlabel(f"{metric}: trial - best trial `{noise.best}` ({noise.level:.0%} paired bootstrap CI; "
                  f"{better} is better)", fontsize=8)
    ax.legend(handles=[Line2D([], [], color=TIED, marker="o", label="tied with the best (CI contains 0)"),
                       Line2D([], [], color=APART, marker="o", label="worse than the best"),
                       Line2D([], [], color=BEST, linestyle="--", label="the best")], fontsize=7, loc="best")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_pareto(data: SweepData, on_front: list[str], path: Path) -> Path:
    """Every trial's objective pair (coloured by outcome); the front as red rings joined by a line."""
    (m1, d1), (m2, d2) = data.objectives[:2]
    pts = {t.trial_id: (t.objective_values[m1], t.objective_values[m2], t.outcome) for t in data.trials
           if t.objective_values.get(m1) is not None and t.objective_values.get(m2) is not None}
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    for tid, (x, y, o) in pts.items():
        ax.scatter(x, y, color=COLORS.get(o, COLORS["other"]), s=28, zorder=2)
    fx = sorted((pts[t][0], pts[t][1]) for t in on_front if t in pts)
    if fx:
        ax.scatter([p[0] for p in fx], [p[1] for p in fx], facecolors="none", edgecolors=BEST, s=110,
                   linewidths=1.6, zorder=3)
        ax.plot([p[0] for p in fx], [p[1] for p in fx], color=BEST, linewidth=1.0, alpha=0.6,
                zorder=1)
        for t in on_front:
            if t in pts:
                ax.annotate(t, pts[t][:2], fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"{m1} ({'lower' if d1 == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{m2} ({'lower' if d2 == 'min' else 'higher'} is better)")
    outcomes = sorted({o for *_, o in pts.values()})
    ax.legend(handles=[Line2D([], [], color=COLORS.get(o, COLORS["other"]), marker="o", linestyle="", label=o)
                       for o in outcomes]
              + [Line2D([], [], color=BEST, marker="o", markerfacecolor="none", label="Pareto front")],
              fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(f"Pareto front: {len(fx)} of {len(pts)} trials", fontsize=10)
    return _save(fig, path)
