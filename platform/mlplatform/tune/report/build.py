"""The sweep report: what a sweep found, which knobs mattered, and which trials were stopped and why.

Everything is read back from MLflow (the parent run and its child runs), never from Ray's results folder,
so a report can be regenerated anywhere the tracking store is reachable (``jobs/report.py``), long after
the cluster is gone. Writes ``report.md`` + PNGs and a self-contained ``report.html`` (PNGs embedded, so
the MLflow UI shows it in one click) and logs them under ``report/`` on the parent run.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import ConfigError
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tune.outcomes import LABELS, OUTCOMES, outcome, reason_detail
from mlplatform.tune.report.compute import compute_curve, compute_section
from mlplatform.tune.report.confirm import confirm_figures, confirm_lead, confirm_runs, confirm_section
from mlplatform.tune.report.data import CEILING_PREFIX, FLOOR_PREFIX, GAIN_KEY, MARGIN_PREFIX, SweepData, TrialRecord
from mlplatform.tune.report.doc import Doc, fmt
from mlplatform.tune.report.noise import load_per_item, log_best_ci, noise_of, noise_section, tied_mark
from mlplatform.tune.report.pareto import OBJECTIVES_TAG, parse_tag, pareto_front, pareto_section, tag_front

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small YAML: no progress bar


# -- reading the sweep back from MLflow ---------------------------------------------------------------
def _history(cl: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    pts = {m.step: m.value for m in cl.get_metric_history(run_id, key) if math.isfinite(m.value)}
    return sorted(pts.items())


def _space_from_parent(cl: Any, parent: Any) -> dict[str, dict[str, Any]] | None:
    """The named space the sweep ran, from the ``search_space.yaml`` artifact run_sweep logs."""
    try:
        with tempfile.TemporaryDirectory(prefix="mlp-space-") as d:
            doc = yaml.safe_load(Path(cl.download_artifacts(parent.info.run_id, "search_space.yaml", d)).read_text())
        name = parent.data.tags.get("space") or parent.data.params.get("sweep.space")
        space = doc["spaces"][name]
        return {k: dict(v) for k, v in space.items()} if isinstance(space, dict) and space else None
    except Exception:  # noqa: BLE001 - artifact missing or unreadable: infer from the children's params
        return None


def _infer_space(children: list[Any]) -> dict[str, dict[str, Any]]:
    """Without the space file: the params that differ between trials, numeric ones as ranges."""
    keys = set().union(*(c.data.params for c in children)) if children else set()
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(keys):
        vals = [c.data.params.get(k) for c in children]
        if None in vals or len(set(vals)) < 2:
            continue
        try:
            nums = [float(v) for v in vals]
        except ValueError:
            out[k] = {"type": "choice", "values": sorted(set(vals))}
            continue
        lo, hi = min(nums), max(nums)
        out[k] = {"type": "loguniform" if lo > 0 and hi / lo >= 20 else "uniform", "low": lo, "high": hi}
    return out


def _typed(spec: dict[str, Any], raw: str) -> Any:
    """An MLflow param (always a string) back to the value the search space drew."""
    t = spec["type"]
    if t == "choice":
        return next((v for v in spec["values"] if str(v) == raw), raw)
    return int(float(raw)) if t == "int" else float(raw)


def _floors_and_gain(cl: Any, run: Any, rec: TrialRecord) -> None:
    """The trial's floors and ceilings (constant on a frozen set: the last value) and its captured gain at
    the epoch its selection metric was best."""
    m = run.data.metrics
    rec.floors = {k[len(FLOOR_PREFIX):]: v for k, v in m.items() if k.startswith(FLOOR_PREFIX)}
    rec.ceilings = {k[len(CEILING_PREFIX):]: v for k, v in m.items() if k.startswith(CEILING_PREFIX)}
    if GAIN_KEY not in m or rec.value is None:
        return
    best_epoch = next(e for e, v in rec.curve if v == rec.value)
    rec.gain = dict(_history(cl, run.info.run_id, GAIN_KEY)).get(best_epoch)


def load_sweep(cl: Any, parent_run_id: str) -> SweepData:
    try:
        parent = cl.get_run(parent_run_id)
    except Exception as e:  # noqa: BLE001 - MLflow raises its own types for a missing run
        raise ConfigError(f"no MLflow run {parent_run_id} in {cl.tracking_uri} ({type(e).__name__})") from None
    active = [c for c in mu.iter_child_runs(cl, parent.info.experiment_id, parent_run_id)
              if c.info.lifecycle_stage == "active"]
    children = [c for c in active if c.data.tags.get("confirm") != "true"]  # the trials; the rest confirm them
    tags = parent.data.tags
    metric = tags.get("selection_metric") or next((c.data.tags["selection_metric"] for c in children
                                                   if "selection_metric" in c.data.tags), None)
    mode = tags.get("selection_mode") or next((c.data.tags["selection_mode"] for c in children
                                               if "selection_mode" in c.data.tags), "min")
    if metric is None:
        raise ConfigError(f"run {parent_run_id} is not a sweep parent: no selection_metric tag on it or its children")
    space = _space_from_parent(cl, parent)
    source = "search_space.yaml on the parent run"
    if space is None:
        space, source = _infer_space(children), "inferred from the trials' params (no search_space.yaml)"
    objectives = parse_tag(tags.get(OBJECTIVES_TAG, ""))
    trials = []
    for c in children:
        curve = _history(cl, c.info.run_id, metric)
        vals = [v for _, v in curve]
        value = (min(vals) if mode == "min" else max(vals)) if vals else None
        margins = {k[len(MARGIN_PREFIX):]: _history(cl, c.info.run_id, k)
                   for k in sorted(c.data.metrics) if k.startswith(MARGIN_PREFIX)}
        params = {k: _typed(s, c.data.params[k]) for k, s in space.items() if k in c.data.params}
        reason = c.data.tags.get("stop_reason", "")
        rec = TrialRecord(c.info.run_id, c.data.tags.get("trial_id", c.info.run_id[:8]), c.info.status,
                          reason, outcome(reason, c.info.status), c.info.start_time or 0, params, value,
                          curve, margins)
        _floors_and_gain(cl, c, rec)
        rec.items = load_per_item(cl, c.info.run_id)
        rec.objective_values = {m: c.data.metrics[m] for m, _ in objectives if m in c.data.metrics}
        trials.append(rec)
    trials.sort(key=lambda t: t.start_time)
    experiment = cl.get_experiment(parent.info.experiment_id).name
    name = tags.get("sweep") or parent.info.run_name or ""
    return SweepData(parent_run_id, parent.info.experiment_id, experiment, name,
                     tags.get("family", ""), metric, mode, space, source, trials, objectives,
                     confirm_runs(cl, [c for c in active if c.data.tags.get("confirm") == "true"]),
                     confirm_figures(parent))


# -- parameter importance (Optuna) --------------------------------------------------------------------
def _distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for k, s in space.items():
        if s["type"] == "choice":
            out[k] = CategoricalDistribution(list(s["values"]))
        elif s["type"] == "int":
            out[k] = IntDistribution(int(s["low"]), int(s["high"]))
        else:
            out[k] = FloatDistribution(float(s["low"]), float(s["high"]), log=s["type"] == "loguniform")
    return out


def param_importances(data: SweepData) -> tuple[dict[str, dict[str, float]], str]:
    """``{param: {evaluator: importance}}`` from an Optuna study rebuilt from the trials, and a note.

    Every trial with a value counts as complete with its best value: ASHA-pruned trials are most of a
    sweep, and leaving them out would leave too few trials to fit anything on.
    """
    import warnings

    import optuna
    from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator

    if not data.space:
        return {}, "no swept parameters found"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line in a driver's output
    try:
        study = optuna.create_study(direction="minimize" if data.mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    dists, skipped = _distributions(data.space), 0
    for t in data.trials:
        if t.value is None or set(t.params) != set(dists):
            continue
        try:
            study.add_trial(optuna.trial.create_trial(params=t.params, distributions=dists, value=t.value))
        except ValueError:  # a value outside the declared space (the space file changed since the sweep)
            skipped += 1
    n = len(study.trials)
    if n < 2:
        return {}, f"needs at least 2 trials with a {data.metric} value; this sweep has {n}"
    out: dict[str, dict[str, float]] = {k: {} for k in data.space}
    notes = [f"fitted on {n} trials" + (f" ({skipped} outside the space skipped)" if skipped else "")]
    if n < 10:
        notes.append("fewer than 10 trials: treat the ranking as a hint, not a finding")
    for label, ev in (("fANOVA", FanovaImportanceEvaluator(seed=0)),
                      ("mean decrease impurity", MeanDecreaseImpurityImportanceEvaluator(seed=0))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's "experimental" and sklearn's small-sample warnings
                imp = optuna.importance.get_param_importances(study, evaluator=ev)
        except Exception as e:  # noqa: BLE001 - one evaluator failing must not lose the whole report
            notes.append(f"{label} failed: {type(e).__name__}: {e}")
            continue
        for k, v in imp.items():
            out[k][label] = float(v)
    return {k: v for k, v in out.items() if v}, "; ".join(notes)


# -- the document -------------------------------------------------------------------------------------
def _columns(keys: list[str]) -> list[str]:
    """Table headers without the section prefix (``optim.lr`` -> ``lr``) unless that makes two alike."""
    short = [k.split(".", 1)[-1] for k in keys]
    return short if len(set(short)) == len(short) else keys


def build_doc(data: SweepData, out_dir: Path, noise: Any = None, on_front: list[str] | None = None,
              compute: dict[str, Any] | None = None) -> Doc:
    """The report; ``noise`` (``noise.noise_of``), ``on_front`` (``pareto.pareto_front``) and ``compute``
    (``compute.compute_curve``) add the confidence-interval, Pareto and time-to-quality sections. The figures
    of the latter are left in ``doc.figures`` for the parent run."""
    import mlplatform.tune.report.plots as rp

    doc = Doc(f"Sweep report: {data.name}")
    lead = confirm_lead(data)
    if lead:
        doc.p(lead)
    ranked = data.ranked()
    counts = {o: sum(1 for t in data.trials if t.outcome == o) for o in OUTCOMES}
    best = ranked[0] if ranked and ranked[0].value is not None else None
    doc.p(f"Family **{data.family or '?'}**, parent run `{data.parent_run_id}` (experiment {data.experiment}), "
          f"{len(data.trials)} trials. Selection metric **{data.metric}** ({data.mode}); a trial's value is the "
          f"best {data.metric} it reached. Search space: {source_line(data)}.")
    if not data.trials:
        doc.p("This sweep has no trial runs (none started yet, or their runs were deleted): nothing to report.")
        return doc
    doc.p("Outcomes: " + ", ".join(f"{LABELS[o]} {n}" for o, n in counts.items() if n) + ".")
    if best:
        doc.p(f"Best: trial `{best.trial_id}` with {data.metric} = {fmt(best.value)} (run `{best.run_id}`).")

    keys = list(data.space)
    _trials_table(doc, data, ranked, noise)
    noise_section(doc, data, noise, out_dir)
    confirm_section(doc, data, out_dir)
    doc.figures = compute_section(doc, compute, data, noise, out_dir)
    if data.objectives:
        pareto_section(doc, data, on_front or [], out_dir)

    doc.h("Parameter importance")
    imp, note = param_importances(data)
    doc.p(f"Optuna importance evaluators on a study rebuilt from the trials (value = best {data.metric}): {note}.")
    if imp:
        evs = sorted({e for v in imp.values() for e in v})
        order = sorted(imp, key=lambda k: -imp[k].get("fANOVA", max(imp[k].values())))
        doc.table(["parameter"] + evs, [[k] + [fmt(imp[k].get(e)) for e in evs] for k in order])
        doc.img(rp.plot_importance(imp, order, out_dir / "importance.png"), "parameter importance")

    doc.h("Optimisation history")
    doc.p("Each trial's value in start order, coloured by how it ended; the line is the best so far.")
    doc.img(rp.plot_history(data, out_dir / "history.png"), "optimisation history")

    doc.h("Parallel coordinates")
    doc.p(f"One line per trial across the swept parameters (log axes for log-uniform ones) to its {data.metric}; "
          "colour = value (yellow = better; better is up on the colour bar and the objective axis), the best trial "
          "in red, trials without a value dashed grey.")
    if keys:
        doc.img(rp.plot_parallel(data, out_dir / "parallel.png"), "parallel coordinates")
    else:
        doc.p("No swept parameters found.")

    doc.h("Learning curves")
    doc.p(f"{data.metric} per epoch of every trial (MLflow metric history), coloured by outcome.")
    doc.img(rp.plot_curves(data, out_dir / "curves.png"), "learning curves")

    _margins_section(doc, data, ranked, out_dir)
    _floors_section(doc, data, ranked, out_dir)

    doc.h("Stopped trials and why")
    stopped = [t for t in ranked if t.outcome != "completed"]
    doc.p("Alarms and guards stop a trial with a reason (`alarm:<name>`, `guard:<name>`), a loss bound violation "
          "fails it (`loss_guard`), ASHA prunes weak trials, the plateau stopper ends flat ones.")
    doc.table(["outcome", "trials"], [[LABELS[o], str(n)] for o, n in counts.items() if n])
    if stopped:
        doc.table(["trial", "status", "outcome", "mechanism", "epochs", "reason"],
                  [[t.trial_id, t.status, t.outcome, reason_detail(t.stop_reason) or "-", str(t.epochs),
                    t.stop_reason or "-"] for t in stopped])
    else:
        doc.p("Every trial ran to completion.")
    doc.p(f"Regenerate: `python jobs/report.py --experiment {data.experiment} --parent {data.parent_run_id}`.")
    return doc


def _margins_section(doc: Doc, data: SweepData, ranked: list[TrialRecord], out_dir: Path) -> None:
    """Each trial's margins over the family's trivial baselines: table and curves."""
    import mlplatform.tune.report.plots as rp

    doc.h("Baseline margins")
    names = sorted({n for t in data.trials for n in t.margins})
    if names:
        doc.p("`val/margin_<baseline>` = model minus trivial baseline, signed so that positive is better: a trial "
              "at or below 0 is no better than the trivial solution its losses could drift to.")
        doc.table(["trial", "outcome"] + [f"{n} (last)" for n in names] + [f"{n} (min)" for n in names],
                  [[t.trial_id, t.outcome] + [fmt(t.margins[n][-1][1]) if t.margins.get(n) else "-" for n in names]
                   + [fmt(min(v for _, v in t.margins[n])) if t.margins.get(n) else "-" for n in names]
                   for t in ranked])
        doc.img(rp.plot_margins(data, names, out_dir / "margins.png"), "baseline margins")
    else:
        doc.p("No trial logged `val/margin_*` metrics (the family scores no trivial baselines yet).")


def _trials_table(doc: Doc, data: SweepData, ranked: list[TrialRecord], noise: Any) -> None:
    doc.h("Trials, best first")
    keys = list(data.space)
    doc.p("`tied`: `= best` when the paired bootstrap interval of (trial - best) contains 0, `no` when the trial "
          "is worse beyond the noise, `?` without per-item values (section \"Is the best really the best?\").")
    doc.table(["rank", "trial", data.metric, "epochs", "outcome", "tied"] + _columns(keys) + ["stop reason"],
              [[str(i + 1) if t.value is not None else "-", t.trial_id, fmt(t.value), str(t.epochs), t.outcome,
                tied_mark(noise, t)] + [fmt(t.params.get(k)) for k in keys] + [t.stop_reason[:90]]
               for i, t in enumerate(ranked)])


def _floors_section(doc: Doc, data: SweepData, ranked: list[TrialRecord], out_dir: Path) -> None:
    import mlplatform.tune.report.plots as rp

    doc.h("Between floor and ceiling")
    if not any(t.floors and t.ceilings for t in data.trials):
        doc.p("The family declares no floor or no ceiling: no captured gain (docs/integrity.md).")
        return
    doc.p("Floors are the strongest estimators that need no training, ceilings are oracles; both are scored on "
          "the same frozen batches. `val/captured_gain` = (model - best floor) / (best ceiling - best floor), "
          "taken at each trial's best epoch: 0 = no better than free, 1 = as good as the oracle, < 0 = below the "
          "floor (dB for NMSE-like metrics).")
    doc.table(["trial", "outcome", data.metric, "best floor", "ceiling", "captured gain"],
              [[t.trial_id, t.outcome, fmt(t.value), _extreme(t.floors, data.mode), _extreme(t.ceilings, data.mode),
                fmt(t.gain)] for t in ranked if t.floors])
    doc.img(rp.plot_floors(data, out_dir / "floors.png"), "trials between floor and ceiling")


def _extreme(values: dict[str, float], mode: str) -> str:
    if not values:
        return "-"
    name = (min if mode == "min" else max)(values, key=values.__getitem__)
    return f"{name} {fmt(values[name])}"


def source_line(data: SweepData) -> str:
    return f"{len(data.space)} params ({', '.join(data.space) or 'none'}), {data.space_source}"


def write_sweep_report(tracking_uri: str | None, parent_run_id: str, out_dir: str | Path | None = None) -> Path:
    """Write the report of the sweep whose MLflow parent run is ``parent_run_id`` and log it under
    ``report/`` on that run. Returns the folder holding ``report.md``, ``report.html`` and the PNGs."""
    cl = mu.client(tracking_uri)
    data = load_sweep(cl, parent_run_id)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="mlp-sweep-report-"))
    out.mkdir(parents=True, exist_ok=True)
    noise = noise_of(data)
    on_front = pareto_front(data) if data.objectives else []
    doc = build_doc(data, out, noise, on_front, compute_curve(cl, data))
    (out / "report.md").write_text(doc.markdown())
    (out / "report.html").write_text(doc.html(out))
    # only what this report wrote: --out may name a folder that holds other things
    for f in ["report.md", "report.html", *doc.images]:
        cl.log_artifact(parent_run_id, str(out / f), artifact_path="report")
    cl.set_tag(parent_run_id, "report", "report/report.html")
    log_best_ci(cl, parent_run_id, noise)
    for k, v in doc.figures.items():
        cl.log_metric(parent_run_id, k, v, step=0)
    if data.objectives:
        tag_front(cl, data, on_front)
    return out
