"""The sweep report's PNGs. ``matplotlib.figure.Figure`` directly (no pyplot): no global state and no GUI
backend, so it is safe inside a Ray driver or a headless job."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mlplatform.tune.outcomes import LABELS

if TYPE_CHECKING:
    from mlplatform.tune.report.data import SweepData

# one colour per outcome, the same in every plot; the ones a user must look at are the loud ones
COLORS = {"completed": "#2a9d8f", "early_stop": "#457b9d", "pruned": "#9a9a9a", "guard": "#f4a261",
          "alarm": "#e63946", "loss_guard": "#7b2cbf", "failed": "#222222", "other": "#8d6e63", "running": "#bbbbbb"}
BEST = "#d62828"


def _save(fig: Figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=100)
    return path


def _log_scale(values: list[float], ratio: float = 30.0) -> bool:
    """Log axis when all values are positive and span more than ``ratio`` (losses and NMSEs often do)."""
    pos = [v for v in values if v is not None and v > 0]
    return len(pos) == len([v for v in values if v is not None]) and len(pos) > 1 and max(pos) / min(pos) > ratio


def _log_y(ax: Any) -> None:
    """Log y axis with plain tick labels (0.1, 0.2) instead of 10^-1 and 2x10^-1."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _outcome_handles(outcomes: set[str]) -> list[Any]:
    return [Line2D([], [], color=COLORS[o], marker="o", linestyle="", label=LABELS[o]) for o in COLORS if o in outcomes]


def _outcome_legend(ax: Any, outcomes: set[str], extra: list[Any] | None = None) -> None:
    ax.legend(handles=_outcome_handles(outcomes) + (extra or []), fontsize=8, loc="best", framealpha=0.9)


def plot_history(data: SweepData, path: Path) -> Path:
    fig = Figure(figsize=(8, 4.2))
    ax = fig.add_subplot()
    best_so_far: list[tuple[int, float]] = []
    cur: float | None = None
    better = (lambda a, b: a < b) if data.mode == "min" else (lambda a, b: a > b)
    for i, t in enumerate(data.trials, 1):
        if t.value is None:
            continue
        ax.scatter([i], [t.value], color=COLORS[t.outcome], s=36, zorder=3, edgecolor="white", linewidth=0.6)
        if cur is None or better(t.value, cur):
            cur = t.value
        best_so_far.append((i, cur))
    extra = []
    if best_so_far:
        xs, ys = zip(*best_so_far)
        ax.step(xs + (len(data.trials) + 0.5,), ys + (ys[-1],), where="post", color=BEST, linewidth=1.6, zorder=2)
        extra.append(Line2D([], [], color=BEST, label="best so far"))
    missing = [i for i, t in enumerate(data.trials, 1) if t.value is None]
    if missing:
        for i in missing:
            ax.axvline(i, color=COLORS["failed"], linestyle=":", linewidth=1)
        extra.append(Line2D([], [], color=COLORS["failed"], linestyle=":", label="no value (failed early)"))
    if _log_scale([t.value for t in data.trials]):
        _log_y(ax)
    ax.set_xlabel("trial (start order)")
    ax.set_ylabel(f"best {data.metric} ({data.mode})")
    ax.set_title(f"{data.name}: optimisation history")
    ax.set_xlim(0.5, max(1, len(data.trials)) + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    _outcome_legend(ax, {t.outcome for t in data.trials if t.value is not None}, extra)
    return _save(fig, path)


def _axis(spec: dict[str, Any]) -> tuple[Any, list[tuple[float, str]]]:
    """A map from a param's values to [0, 1] and the ticks to draw on its axis."""
    t = spec["type"]
    if t == "choice":
        cats = list(spec["values"])
        n = max(1, len(cats) - 1)
        return (lambda v: cats.index(v) / n if v in cats else 0.5), [(i / n, str(c)) for i, c in enumerate(cats)]
    lo, hi = float(spec["low"]), float(spec["high"])
    log = t == "loguniform" and lo > 0
    f = (lambda v: (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))) if log else \
        (lambda v: (v - lo) / ((hi - lo) or 1.0))
    return f, [(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")] + [(f(v), f"{v:.3g}") for v in _mid_ticks(lo, hi, log)]


def _mid_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)
                if lo * 1.3 < 10.0 ** e < hi / 1.3]
    return [lo + (hi - lo) / 2]


def plot_parallel(data: SweepData, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    keys = list(data.space)
    vals = [t.value for t in data.trials if t.value is not None]
    fig = Figure(figsize=(max(7.5, 1.7 * (len(keys) + 1)), 4.6))
    ax = fig.add_subplot()
    maps = [_axis(data.space[k]) for k in keys]
    # the objective axis: better at the top, log when the values span decades
    log = _log_scale(vals)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    tr = (lambda v: math.log10(v)) if log else (lambda v: v)
    span = (tr(hi) - tr(lo)) or 1.0
    obj = (lambda v: (tr(hi) - tr(v)) / span) if data.mode == "min" else (lambda v: (tr(v) - tr(lo)) / span)
    norm = (LogNorm if log else Normalize)(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)
    cmap = colormaps["viridis_r" if data.mode == "min" else "viridis"]
    ranked = data.ranked()
    best = ranked[0] if ranked and ranked[0].value is not None else None
    for t in sorted(data.trials, key=lambda t: t is best):  # the best one drawn last, on top
        if any(k not in t.params for k in keys):
            continue
        ys = [m(t.params[k]) for (m, _), k in zip(maps, keys)]
        xs = list(range(len(keys)))
        if t.value is None:
            ax.plot(xs, ys, color="#999999", linestyle="--", linewidth=1, alpha=0.7)
            continue
        ax.plot(xs + [len(keys)], ys + [obj(t.value)], color=BEST if t is best else cmap(norm(t.value)),
                linewidth=2.8 if t is best else 1.4, alpha=1.0 if t is best else 0.85, zorder=3 if t is best else 2)
    for i, (_, ticks) in enumerate(maps):
        ax.axvline(i, color="#444444", linewidth=0.8)
        for y, label in ticks:
            ax.text(i + 0.03, y, label, fontsize=7, va="center", ha="left", color="#333333")
    ax.axvline(len(keys), color="#444444", linewidth=0.8)
    if vals:
        for v in sorted({lo, hi}):
            ax.text(len(keys) + 0.03, obj(v), f"{v:.4g}", fontsize=7, va="center", ha="left")
    ax.set_xticks(range(len(keys) + 1), [k.replace(".", ".\n", 1) for k in keys] + [f"{data.metric}\n({data.mode})"],
                  fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.1, len(keys) + 0.45)
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    ax.set_title(f"{data.name}: parallel coordinates ({len(vals)} trials with a value)")
    if vals:
        from matplotlib.cm import ScalarMappable

        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, fraction=0.03, label=data.metric)
        if data.mode == "min":
            bar.ax.invert_yaxis()  # better on top, as on the objective axis
    return _save(fig, path)


def plot_importance(imp: dict[str, dict[str, float]], order: list[str], path: Path) -> Path:
    evs = sorted({e for v in imp.values() for e in v})
    fig = Figure(figsize=(8, 0.55 * len(order) + 1.4))
    ax = fig.add_subplot()
    h = 0.8 / max(1, len(evs))
    for j, e in enumerate(evs):
        ys = [len(order) - 1 - i - (j - (len(evs) - 1) / 2) * h for i in range(len(order))]  # first on top
        ax.barh(ys, [imp[k].get(e, 0.0) for k in order], height=h, label=e, color=["#264653", "#e9c46a"][j % 2])
    ax.set_yticks(range(len(order)), list(reversed(order)), fontsize=9)
    ax.set_xlabel("importance (normalised to sum 1 per evaluator)")
    ax.set_xlim(0, 1)
    ax.set_title("parameter importance (Optuna)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_curves(data: SweepData, path: Path) -> Path:
    fig = Figure(figsize=(8, 4.4))
    ax = fig.add_subplot()
    ranked = data.ranked()
    best = ranked[0] if ranked and ranked[0].value is not None else None
    for t in sorted(data.trials, key=lambda t: t is best):
        if not t.curve:
            continue
        xs, ys = zip(*t.curve)
        ax.plot(xs, ys, color=BEST if t is best else COLORS[t.outcome], linewidth=2.4 if t is best else 1.2,
                marker="o", markersize=3, alpha=1.0 if t is best else 0.8)
        if t is best or t.outcome in ("guard", "alarm", "loss_guard", "failed"):  # label only what matters
            ax.annotate(t.trial_id, (xs[-1], ys[-1]), fontsize=7, color=BEST if t is best else COLORS[t.outcome],
                        xytext=(4, 0), textcoords="offset points", va="center")
    if _log_scale([v for t in data.trials for _, v in t.curve], ratio=4.0):
        _log_y(ax)
    ax.set_xlim(0.7, max([t.epochs for t in data.trials] + [1]) + 0.6)  # room for the labels at the right
    ax.set_xlabel("epoch")
    ax.set_ylabel(data.metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{data.name}: learning curves of {data.metric}")
    ax.grid(alpha=0.3)
    extra = [Line2D([], [], color=BEST, linewidth=2.4, label=f"best ({best.trial_id})")] if best else []
    _outcome_legend(ax, {t.outcome for t in data.trials if t.curve and t is not best}, extra)
    return _save(fig, path)


def plot_margins(data: SweepData, names: list[str], path: Path) -> Path:
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols + 0.6, 3.3 * rows + 0.6))
    for i, n in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for t in data.trials:
            if t.margins.get(n):
                xs, ys = zip(*t.margins[n])
                ax.plot(xs, ys, color=COLORS[t.outcome], linewidth=1.2, marker="o", markersize=2.5, alpha=0.85)
        ax.axhline(0.0, color="#000000", linewidth=1.0, linestyle="--")
        lo, hi = ax.get_ylim()
        if lo < 0:  # at or below 0 the model is no better than the trivial solution
            ax.axhspan(lo, 0.0, color=COLORS["alarm"], alpha=0.07)
            ax.set_ylim(lo, hi)
        ax.set_title(f"val/margin_{n}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    # one legend below all panels: inside a panel it hides the curves
    handles = _outcome_handles({t.outcome for t in data.trials if t.margins})
    ncol = max(1, min(len(handles), 2 * cols))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    legend_in = 0.25 * math.ceil(len(handles) / ncol) + 0.1  # inches the legend rows need
    fig.suptitle(f"{data.name}: baseline margins (model minus baseline, > 0 is better)", fontsize=10)
    return _save(fig, path, rect=(0, legend_in / fig.get_figheight(), 1, 1))


def plot_floors(data: SweepData, path: Path) -> Path:
    """Each trial's best value as a dot on its own floor-to-ceiling bar (best floor and best ceiling)."""
    trials = [t for t in data.ranked() if t.floors and t.ceilings and t.value is not None]
    pick = min if data.mode == "min" else max
    fig = Figure(figsize=(max(5.0, 0.35 * len(trials) + 2.5), 4.2))
    ax = fig.add_subplot()
    for i, t in enumerate(trials):
        floor, ceiling = pick(t.floors.values()), pick(t.ceilings.values())
        ax.plot([i, i], [floor, ceiling], color="#cccccc", linewidth=6, solid_capstyle="butt", zorder=1)
        ax.scatter([i], [floor], marker="_", s=160, color="#555555", zorder=2)
        ax.scatter([i], [ceiling], marker="_", s=160, color="#2a9d8f", zorder=2)
        ax.scatter([i], [t.value], s=28, color=BEST if i == 0 else COLORS[t.outcome], zorder=3)
    values = [v for t in trials for v in (t.value, *t.floors.values(), *t.ceilings.values())]
    if _log_scale(values, ratio=4.0):
        _log_y(ax)
    ax.set_xticks(range(len(trials)), [t.trial_id for t in trials], rotation=60, fontsize=7, ha="right")
    ax.set_ylabel(data.metric)
    better = "lower" if data.mode == "min" else "higher"
    ax.set_title(f"{data.name}: each trial between its best floor (grey) and ceiling (green); {better} is better",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    handles = [Line2D([], [], color="#555555", marker="_", linestyle="", markersize=12, label="best floor"),
               Line2D([], [], color="#2a9d8f", marker="_", linestyle="", markersize=12, label="best ceiling"),
               Line2D([], [], color=BEST, marker="o", linestyle="", label="best trial")]
    _outcome_legend(ax, {t.outcome for t in trials[1:]}, handles)
    return _save(fig, path)
