"""The sweep report's "Is the best really the best?" section: paired bootstrap intervals per trial.

Reads each trial's ``checkpoints/best/per_item.json`` (written by the loop with the selected checkpoint),
computes the intervals with :mod:`mlplatform.tune.noise`, marks the trials tied with the best, and puts
the best trial's intervals on the parent run (``best/ci_*`` metrics, ``best/tied`` tag).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.train.checkpoint import PER_ITEM_FILE
from mlplatform.tune.noise import LEVEL, N_RESAMPLES, NoiseResult, TrialNoise, analyse
from mlplatform.tune.report.doc import Doc, fmt

if TYPE_CHECKING:
    from mlplatform.tune.report.data import SweepData, TrialRecord

ARTIFACT = f"checkpoints/best/{PER_ITEM_FILE}"
TIED_MARK = "= best"


def load_per_item(cl: Any, run_id: str) -> dict[str, Any] | None:
    """A trial's per-item record, or None (an older run, a trial that never validated, a lost artifact)."""
    try:
        with tempfile.TemporaryDirectory(prefix="mlp-items-") as d:
            return json.loads(Path(cl.download_artifacts(run_id, ARTIFACT, d)).read_text())
    except Exception:  # noqa: BLE001 - MLflow raises its own types for a missing artifact
        return None


def noise_of(data: SweepData) -> NoiseResult | None:
    """Intervals of the ranked trials against the best one (None when the best has no per-item values)."""
    ranked = [t for t in data.ranked() if t.value is not None]
    if not ranked or not ranked[0].items:
        return None
    return analyse({t.trial_id: t.items for t in ranked if t.items}, data.mode)


def _mark(n: TrialNoise) -> str:
    """``= best`` (tied), ``no`` (clearly worse) or ``?`` (not paired with the best)."""
    return TIED_MARK if n.tied else ("no" if n.diff is not None else "?")


def tied_mark(noise: NoiseResult | None, t: TrialRecord) -> str:
    """The main table's "tied" cell of trial ``t``."""
    return _mark(noise.trials[t.trial_id]) if noise is not None and t.trial_id in noise.trials else "-"


def _ci(iv: Any) -> str:
    return "-" if iv is None else f"{fmt(iv.mean)} [{fmt(iv.lo)}, {fmt(iv.hi)}]"


def noise_section(doc: Doc, data: SweepData, noise: NoiseResult | None, out_dir: Path) -> None:
    from mlplatform.tune.report.plots_more import plot_intervals

    doc.h("Is the best really the best?")
    if noise is None:
        doc.p("No per-item values for the best trial (runs from before per-item validation values were kept, "
              "or a selection metric the family does not score per item): no confidence intervals.")
        return
    pct = f"{LEVEL:.0%}"
    doc.p(f"Each trial's selected checkpoint keeps {data.metric} on each of the {noise.items} frozen validation "
          f"items. Differences to the best trial are paired over the same items; {pct} intervals are BCa "
          f"bootstrap intervals of the mean ({N_RESAMPLES} resamples, seeded). A trial whose interval of "
          f"\"trial - best\" contains 0 is **tied with the best**: this validation set cannot rank them. The margin "
          "is the trial minus its strongest floor on the same items, signed so that positive is better.")
    tied = noise.tied
    doc.p(f"Best trial `{noise.best}`: {data.metric} = {_ci(noise.best_value)}. Tied with it: {len(tied) - 1} of "
          f"{len(noise.trials) - 1} other trials with per-item values"
          + (f" ({', '.join(f'`{t}`' for t in tied[1:])})." if len(tied) > 1 else "."))
    doc.table(["trial", data.metric, f"trial - best ({pct} CI)", "tied", f"margin to floor ({pct} CI)", "floor"],
              [[tid, fmt(n.value), _ci(n.diff) if n.diff else ("(the best)" if tid == noise.best else n.note),
                _mark(n), _ci(n.margin), n.floor or "-"] for tid, n in noise.trials.items()])
    doc.img(plot_intervals(noise, data.metric, out_dir / "intervals.png"), "confidence intervals against the best")


def log_best_ci(cl: Any, parent_run_id: str, noise: NoiseResult | None) -> None:
    """The best trial's intervals on the parent run, next to ``best/<metric>``."""
    if noise is None:
        return
    best = noise.trials[noise.best]
    m: dict[str, float] = {"best/ci_lo": noise.best_value.lo, "best/ci_hi": noise.best_value.hi,
                           "best/n_tied": float(len(noise.tied) - 1), "best/ci_items": float(noise.items)}
    if best.margin is not None:
        m.update({"best/margin_ci_lo": best.margin.lo, "best/margin_ci_hi": best.margin.hi,
                  "best/margin_mean": best.margin.mean})
    for k, v in m.items():
        cl.log_metric(parent_run_id, k, v, step=0)
    cl.set_tag(parent_run_id, "best/tied", ",".join(noise.tied[1:]) or "none")
    cl.set_tag(parent_run_id, "best/ci_method", f"BCa bootstrap over {noise.items} validation items, {LEVEL:.0%}, "
                                                 f"{N_RESAMPLES} resamples, seeded; differences paired by item")
    if best.floor:
        cl.set_tag(parent_run_id, "best/margin_floor", best.floor)
