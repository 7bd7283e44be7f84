"""The sweep report's Pareto section (sweeps run with ``--objectives``): the front, its trials, its plot,
and ``pareto=true`` / ``pareto=false`` tags on the trials' MLflow runs (filter the UI on ``tags.pareto``)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.tune.pareto import front
from mlplatform.tune.report.doc import Doc, fmt

if TYPE_CHECKING:
    from mlplatform.tune.report.data import SweepData

OBJECTIVES_TAG = "objectives"


def parse_tag(text: str) -> list[tuple[str, str]]:
    """The parent run's ``objectives`` tag (``val/a:min,val/b:max``) back to pairs; empty when absent."""
    out = []
    for entry in (text or "").split(","):
        metric, _, mode = entry.strip().rpartition(":")
        if metric and mode in ("min", "max"):
            out.append((metric, mode))
    return out


def pareto_front(data: SweepData) -> list[str]:
    """Trial ids on the front of the trials that have every objective."""
    names = [m for m, _ in data.objectives]
    pts = {t.trial_id: [t.objective_values[m] for m in names] for t in data.trials
           if all(t.objective_values.get(m) is not None for m in names)}
    return front(pts, [d for _, d in data.objectives]) if pts else []


def pareto_section(doc: Doc, data: SweepData, on_front: list[str], out_dir: Path) -> None:
    from mlplatform.tune.report.plots_more import plot_pareto

    doc.h("Pareto front")
    names = [m for m, _ in data.objectives]
    doc.p("A multi-objective sweep (" + ", ".join(f"{m} ({d})" for m, d in data.objectives) + "): Optuna's "
          "multi-objective TPE proposed the trials and no scheduler pruned them (FIFO). A trial's point is its "
          "last validation, what Optuna was told. A trial is on the front when no other trial is at least as "
          "good on every objective and better on one; its MLflow run carries the tag `pareto=true`.")
    rows = [t for t in data.trials if t.trial_id in on_front]
    rows.sort(key=lambda t: t.objective_values[names[0]], reverse=data.objectives[0][1] == "max")
    keys = list(data.space)
    doc.table(["trial"] + names + ["outcome"] + keys,
              [[t.trial_id] + [fmt(t.objective_values[m]) for m in names] + [t.outcome]
               + [fmt(t.params.get(k)) for k in keys] for t in rows])
    doc.img(plot_pareto(data, on_front, out_dir / "pareto.png"), "Pareto front")


def tag_front(cl: Any, data: SweepData, on_front: list[str]) -> None:
    """``pareto=true`` on the front's runs, ``pareto=false`` on the other trials that have every objective."""
    names = [m for m, _ in data.objectives]
    for t in data.trials:
        if all(t.objective_values.get(m) is not None for m in names):
            cl.set_tag(t.run_id, "pareto", "true" if t.trial_id in on_front else "false")
    cl.log_metric(data.parent_run_id, "pareto/n_front", float(len(on_front)), step=0)
    cl.set_tag(data.parent_run_id, "pareto_trials", ",".join(on_front) or "none")
