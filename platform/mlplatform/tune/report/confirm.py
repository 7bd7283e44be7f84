"""The sweep report's "Confirmed with new seeds" section (``tune/confirm.py``'s runs read back from MLflow).

The confirmation runs are children of the parent tagged ``confirm=true``; they are not trials (they rank
nothing and stay out of every other section). The section shows each confirmed config's single-seed value
beside its new seeds' values and mean, its probability of being best, the winner's interval against the
runner-up and what the confirmation cost; the report's first lines say so when the confirmed winner is
not the single-seed best.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from mlplatform.tune.report.data import ConfirmRun
from mlplatform.tune.report.doc import Doc, fmt
from mlplatform.tune.report.noise import load_per_item
from mlplatform.tune.report.plots import BEST, _save

if TYPE_CHECKING:
    from mlplatform.tune.report.data import SweepData

PALETTE = ("#457b9d", "#2a9d8f", "#f4a261", "#7b2cbf", "#8d6e63", "#222222")
KEYS = ("confirm/mean", "confirm/diff", "confirm/ci_lo", "confirm/ci_hi", "confirm/p_best", "confirm/compute_frac",
        "confirm/wall_s", "confirm/seeds", "confirm/differs")


def confirm_runs(cl: Any, runs: list[Any]) -> list[ConfirmRun]:
    out = []
    for r in runs:
        rec = load_per_item(cl, r.info.run_id)
        vals = (rec or {}).get("model") or []
        out.append(ConfirmRun(r.info.run_id, r.data.tags.get("confirm_of", ""), int(r.data.tags.get("confirm_seed", -1)),
                              r.info.status, sum(vals) / len(vals) if vals else None))
    return sorted(out, key=lambda c: (c.of, c.seed))


def confirm_figures(parent: Any) -> dict[str, Any]:
    m, t = parent.data.metrics, parent.data.tags
    out: dict[str, Any] = {k: m[k] for k in KEYS if k in m}
    for k in ("confirm/winner_trial", "confirm/single_seed_best"):
        if k in t:
            out[k] = t[k]
    return out


def confirm_lead(data: SweepData) -> str:
    """The report's first line when the confirmed winner is not the single-seed best ('' otherwise)."""
    c = data.confirm
    if not c.get("confirm/winner_trial") or c["confirm/winner_trial"] == c.get("confirm/single_seed_best"):
        return ""
    return (f"**The confirmed winner is trial `{c['confirm/winner_trial']}`, not the single-seed best "
            f"`{c.get('confirm/single_seed_best')}`**: retrained with {int(c.get('confirm/seeds', 0))} new seeds, "
            f"its mean {data.metric} is the best (P(best) = {c.get('confirm/p_best', float('nan')):.2f}); see "
            "[Confirmed with new seeds](#confirmed-with-new-seeds).")


def confirm_section(doc: Doc, data: SweepData, out_dir: Path) -> None:
    if not data.confirm_runs:
        return
    c = data.confirm
    doc.h("Confirmed with new seeds")
    by_trial: dict[str, list[ConfirmRun]] = {}
    for r in data.confirm_runs:
        by_trial.setdefault(r.of, []).append(r)
    single = {t.trial_id: t.value for t in data.trials}
    doc.p(f"The best trials (the top K and any tied with the best) were trained again with new seeds, the same "
          f"seeds for every config; the winner is the best mean over those seeds (the original run is left out: "
          f"it was picked for being high). Intervals resample seeds and validation items together (95%).")
    winner = c.get("confirm/winner_trial")
    rows = []
    for tid, runs in by_trial.items():
        vals = [r.mean for r in runs]
        mean = sum(v for v in vals if v is not None) / max(1, sum(v is not None for v in vals))
        rows.append([f"`{tid}`" + (" **winner**" if tid == winner else ""), fmt(single.get(tid)),
                     ", ".join(fmt(v) for v in vals), fmt(mean), str(len(runs))])
    doc.table(["trial", "single-seed value", "new seeds' values", "mean", "runs"], rows)
    if "confirm/diff" in c:
        doc.p(f"Winner minus runner-up: {fmt(c['confirm/diff'])} [{fmt(c['confirm/ci_lo'])}, {fmt(c['confirm/ci_hi'])}]; "
              f"P(winner is best) = {c.get('confirm/p_best', float('nan')):.2f}. The confirmation took "
              f"{c.get('confirm/wall_s', float('nan')):.0f} s of wall time and "
              f"{c.get('confirm/compute_frac', float('nan')):.0%} of the trials' compute.")
    doc.img(plot_confirmation(data, by_trial, single, out_dir / "confirmation.png"),
              "Each confirmed config: its single-seed value (hollow) and its new seeds (filled), mean as a bar")


def plot_confirmation(data: SweepData, by_trial: dict[str, list[ConfirmRun]], single: dict[str, float | None],
                      path: Path) -> Path:
    fig = Figure(figsize=(8, 0.9 + 0.45 * max(1, len(by_trial))))
    ax = fig.add_subplot()
    for i, (tid, runs) in enumerate(reversed(list(by_trial.items()))):
        color = PALETTE[i % len(PALETTE)]
        vals = [r.mean for r in runs if r.mean is not None]
        ax.scatter(vals, [i] * len(vals), color=color, s=22, zorder=3)
        if single.get(tid) is not None:
            ax.scatter([single[tid]], [i], facecolors="none", edgecolors=color, s=40, zorder=3)
        if vals:
            m = sum(vals) / len(vals)
            ax.plot([m, m], [i - 0.3, i + 0.3], color=BEST if tid == data.confirm.get("confirm/winner_trial") else color,
                    linewidth=2)
    ax.set_yticks(range(len(by_trial)), list(reversed(list(by_trial))), fontsize=7)
    ax.set_xlabel(f"{data.metric} ({'lower' if data.mode == 'min' else 'higher'} is better)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
