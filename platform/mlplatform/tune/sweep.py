"""A sweep: Tuner + OptunaSearch (seeded) + ASHA over a family's search space, one MLflow parent run
with one child run per trial, resumable with ``Tuner.restore``.

Single-worker trials are Tune *function* trainables running the shared loop directly; multi-worker
trials build a TorchTrainer per trial (``train.executors.tune_trial``).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mlplatform.config import ConfigError
from mlplatform.integrity.contracts import check_contract, selection
from mlplatform.protocol import DataContext
from mlplatform.registry import build_config, get_family
from mlplatform.tracking import manifest
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.train.outcome import Outcome
from mlplatform.tune.pareto import format_objectives, parse_objectives
from mlplatform.tune.report.pareto import OBJECTIVES_TAG
from mlplatform.tune.search_space import SearchSpace, default_path, load_search_space
from mlplatform.tune.study import RunLink, build_searcher
from mlplatform.tune.study_store import check_new_study, resolve_storage

STATE_FILE = "mlplatform_sweep.json"


@dataclass
class SweepSpec:
    family: str = "riscov"
    n_trials: int = 24
    epochs_per_trial: int = 20
    space: str = "wide"
    space_file: str = ""
    early_stop_patience: int = 6
    preset: str = "debug"
    overrides: list[str] = field(default_factory=list)
    max_concurrent: int = 0  # 0 = fit to the cluster
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    experiment: str = ""
    name: str = ""
    storage_path: str = ""
    seed: int = 0
    grace_period: int = 2
    reduction_factor: int = 3
    tracking_uri: str = ""
    max_failures: int = 1
    # the pruning-payoff benchmark's baseline (docs/benchmarks.md): "random" = Optuna's seeded RandomSampler
    # instead of TPE; "fifo" = no ASHA, every trial runs to its last epoch (or its plateau stop)
    search: str = "tpe"
    scheduler: str = "asha"
    startup_trials: int = 10  # TPE's random start-up trials (Optuna's default)
    # the Optuna study's database (default: optuna.db beside a sqlite MLflow store; tune/study.py) and how
    # trials are told to it: "outcome" = as they ended (pruned as PRUNED), "ray" = Ray's stock OptunaSearch
    # (every trial with a value as COMPLETE: the pruning benchmark's baseline, docs/benchmarks.md)
    optuna_storage: str = ""
    tell: str = "outcome"
    # single-worker trials share their Ray worker processes: a fresh process per trial cost ~6 s of imports
    # (torch, mlflow) and store connections on 2 cores (docs/benchmarks.md, section 2: 207 s -> 74 s for 24 trials)
    reuse_actors: bool = True
    # a Pareto sweep: "val/a:min,val/b:max" (or "pair", the family's declared pair); empty = one metric
    # (mlplatform.tune.pareto: multi-objective TPE, FIFO, a Pareto section in the report)
    objectives: str = ""
    # top-k confirmation when the trials are done (tune/confirm.py): the K best (and those tied with the best)
    # retrained with S new seeds; 0 = off (jobs/hpo.py turns it on by default for one-metric sweeps)
    confirm_top: int = 0
    confirm_seeds: int = 3


class CheckedSweep(NamedTuple):
    """A spec's family, its validated base config and its search space (``validate_spec``'s result)."""

    fam: Any
    base: Any
    space: SearchSpace


def validate_spec(spec: SweepSpec) -> CheckedSweep:
    """Everything that can be checked before Ray starts: family, config, search space."""
    fam = get_family(spec.family)
    if spec.n_trials < 1:
        raise ConfigError(f"--n_trials must be >= 1, got {spec.n_trials}")
    if spec.confirm_top < 0 or spec.confirm_seeds < 1:
        raise ConfigError(f"--confirm-top must be >= 0 and --confirm-seeds >= 1, got {spec.confirm_top} and "
                          f"{spec.confirm_seeds}")
    if spec.confirm_top and spec.objectives:
        raise ConfigError("--confirm-top confirms one metric's winner; a Pareto sweep (--objectives) has a front: "
                          "pass --confirm-top 0")
    if spec.epochs_per_trial < 1:
        raise ConfigError(f"--epochs_per_trial must be >= 1, got {spec.epochs_per_trial}")
    if spec.workers_per_trial < 1:
        raise ConfigError(f"--workers-per-trial must be >= 1, got {spec.workers_per_trial}")
    if spec.search not in ("tpe", "random"):
        raise ConfigError(f"search: {spec.search!r} is not allowed; choose one of 'tpe', 'random'")
    if spec.scheduler not in ("asha", "fifo"):
        raise ConfigError(f"scheduler: {spec.scheduler!r} is not allowed; choose one of 'asha', 'fifo'")
    if spec.tell not in ("outcome", "ray"):
        raise ConfigError(f"tell: {spec.tell!r} is not allowed; choose one of 'outcome', 'ray'")
    if spec.gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be >= 0, got {spec.gpus_per_worker}")
    base = build_config(spec.family, spec.preset, list(spec.overrides) + [
        f"train.epochs={spec.epochs_per_trial}", f"train.early_stop_patience={spec.early_stop_patience}",
        "train.val_every=1", "train.guard_action=stop"])
    metric, mode = selection(fam, base)
    space = load_search_space(spec.space_file or default_path(spec.family), spec.space, base, spec.family,
                              metric, mode)
    fixed = sorted(set(space.params) & {"train.selection_metric", "train.selection_mode", "train.val_set"})
    if fixed:
        raise ConfigError(f"{space.path}: {', '.join(fixed)} cannot be swept: every trial must be selected by one "
                          "rule on one validation set")
    check_contract(fam, base, space.metric, space.mode)  # Tune metric = selection metric, declared, not exploitable
    if spec.objectives:
        spec.objectives = format_objectives(parse_objectives(fam, spec.objectives))  # "pair" -> the metrics
    return CheckedSweep(fam, base, space)


def check_fits(spec: SweepSpec, resources: dict[str, Any]) -> None:
    """One trial must fit the cluster, or Ray waits forever for workers that never start."""
    from mlplatform.raycluster import check_fits as fits

    fits(resources, spec.workers_per_trial, spec.cpus_per_worker, spec.gpus_per_worker,
         driver_cpus=0.01 if spec.workers_per_trial > 1 else 0.0)


def fit_concurrency(spec: SweepSpec, resources: dict[str, Any]) -> int:
    if spec.max_concurrent > 0:
        return spec.max_concurrent
    if spec.gpus_per_worker > 0:
        per = spec.gpus_per_worker * spec.workers_per_trial
        return max(1, int(math.floor(resources.get("GPU", 0) / per + 1e-9)))
    per = spec.cpus_per_worker * spec.workers_per_trial
    return max(1, int(math.floor(resources.get("CPU", 1) / per + 1e-9)))


def _trainable(spec: SweepSpec, base: Any) -> Any:
    from ray import tune

    from mlplatform.train.executors import tune_trial

    fn = tune.with_parameters(tune_trial, base=base)
    if spec.workers_per_trial > 1:
        # the trial only drives a TorchTrainer: reserve (almost) nothing for it, or its workers never
        # start on a small cluster (Tune refuses {"cpu": 0}, hence 0.01)
        return tune.with_resources(fn, {"cpu": 0.01})
    res = {"cpu": spec.cpus_per_worker}
    if spec.gpus_per_worker > 0:
        res["gpu"] = spec.gpus_per_worker
    return tune.with_resources(fn, res)


def run_sweep(spec: SweepSpec, resume: bool = False, checked: CheckedSweep | None = None) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) a sweep. Ray must be initialised. Returns a summary.

    ``checked``: ``validate_spec(spec)`` when the caller already ran it for this very spec (a job checks
    before Ray starts); a resumed sweep always re-checks the spec it reads back."""
    import ray

    raw = spec.storage_path or str(mu.repo_root() / "ray_results")
    remote = "://" in raw  # s3://, gs://: Ray writes there; Path() would mangle the URI
    storage = raw if remote else str(Path(raw).resolve())
    # the sweep's state file and report live on the driver's disk when Ray's storage is a URI
    sweep_dir = (mu.repo_root() / "ray_results" if remote else Path(storage)) / spec.name
    uri = mu.resolve_tracking_uri(spec.tracking_uri or None)
    cl = mu.client(uri)
    if resume:
        state = json.loads((sweep_dir / STATE_FILE).read_text())
        spec = SweepSpec(**state["spec"])
        parent, exp_id = state["parent_run_id"], state["experiment_id"]
        cl.update_run(parent, status="RUNNING")
        print(f"[sweep] resuming {spec.name} from {sweep_dir} (parent run {parent})", flush=True)
    fam, base_cfg, space = validate_spec(spec) if (resume or checked is None) else checked
    resources = ray.cluster_resources()
    check_fits(spec, resources)
    k = fit_concurrency(spec, resources)
    if not resume:
        check_new_study(resolve_storage(uri, spec.optuna_storage), spec.name)
        exp_id, parent, logger = create_parent(spec, fam, space, k, cl, uri, sweep_dir)
    try:
        if resume:
            if not remote:  # a snapshot cut off by the kill: the one before it (tune/snapshot.py)
                from mlplatform.tune.snapshot import repair_and_say

                repair_and_say(sweep_dir)
            retire_orphan_runs(cl, exp_id, parent, sweep_dir)
        # once, on the driver, before any trial
        prepared = fam.prepare_data(base_cfg) if fam.prepare_data is not None else None
        record = freeze_for_trials(fam, base_cfg, None if resume else logger)
        if not resume:  # the parent's manifest.json: the sweep as asked, its code, data and frozen set
            logger.log_text(manifest.dumps(manifest.sweep_manifest(asdict(spec), fam.name, base_cfg, prepared,
                                                                   record)), manifest.FILE)
        trial_manifest = manifest.driver_part("train", fam.name, spec.preset, spec.overrides, prepared,
                                              sweep=spec.name, num_workers=spec.workers_per_trial,
                                              cpus_per_worker=spec.cpus_per_worker,
                                              gpus_per_worker=spec.gpus_per_worker)
        results = _fit(spec, fam, base_cfg, space, k, parent, exp_id, uri, storage, sweep_dir, resume,
                       trial_manifest)
    except BaseException as e:
        # never leave the parent RUNNING; an interrupted sweep is continued with --resume
        if isinstance(e, KeyboardInterrupt):
            ray.shutdown()  # first: no trial may end its run (or start another) after we ended them KILLED
        ended = (Outcome("interrupted", "(continue with --resume)") if isinstance(e, KeyboardInterrupt)
                 else Outcome("failed", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"))
        mu.end_run_if_running(cl, parent, ended.status, {"stop_reason": ended.render()})
        if isinstance(e, KeyboardInterrupt):
            for run in mu.iter_child_runs(cl, exp_id, parent):  # the trials stopped with it
                if run.info.status == "RUNNING":
                    mu.end_run_if_running(cl, run.info.run_id, ended.status, {"stop_reason": ended.render()})
        raise
    summary = summarize(results[0], space, spec, cl, uri, exp_id, parent, results[1])
    if results[2] is not None:
        summary["confirm"] = results[2]
    summary.update(optuna_storage=resolve_storage(uri, spec.optuna_storage), optuna_study=spec.name)
    # a restored sweep's progress lines count from the sweep's start (Tune restores the progress callback
    # with its clock); the summary gives that same clock, and this session's share of it
    started = json.loads((sweep_dir / STATE_FILE).read_text()).get("started_at")
    summary["since_start_s"] = time.time() - started if started else summary["wall_s"]
    try:
        from mlplatform.tune.report import write_sweep_report

        summary["report_dir"] = str(write_sweep_report(uri, parent, sweep_dir / "report"))
        print(f"[sweep] report: {summary['report_dir']}/report.md (MLflow run {parent}: report/report.html)", flush=True)
    except Exception as e:  # noqa: BLE001 - a report failure must not fail a finished sweep
        print(f"[sweep] could not write the sweep report ({type(e).__name__}: {e}); rerun: python jobs/report.py "
              f"--experiment {spec.experiment or fam.name} --parent {parent}", flush=True)
    return summary


def create_parent(spec: SweepSpec, fam: Any, space: Any, k: int, cl: Any, uri: str,
                  sweep_dir: Path) -> tuple[str, str, Any]:
    """A new sweep's MLflow parent run (tags, params, the search space) and its state file beside the
    Tune experiment; (experiment id, parent run id, the parent's logger)."""
    exp_id = mu.get_or_create_experiment(cl, spec.experiment or fam.name)
    parent = cl.create_run(exp_id, run_name=spec.name, tags={
        "sweep": spec.name, "family": fam.name, "space": spec.space, "kind": "sweep",
        "selection_metric": space.metric, "selection_mode": space.mode,
        **({OBJECTIVES_TAG: spec.objectives} if spec.objectives else {})}).info.run_id
    logger = mu.RunLogger(parent, uri)
    logger.log_params({"sweep.n_trials": spec.n_trials, "sweep.epochs_per_trial": spec.epochs_per_trial,
                       "sweep.space": spec.space, "sweep.preset": spec.preset, "sweep.seed": spec.seed,
                       "sweep.max_concurrent": k, "sweep.workers_per_trial": spec.workers_per_trial,
                       "sweep.early_stop_patience": spec.early_stop_patience,
                       "sweep.overrides": " ".join(spec.overrides)})
    logger.log_text(Path(space.path).read_text(), "search_space.yaml")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / STATE_FILE).write_text(json.dumps({"spec": asdict(spec), "parent_run_id": parent,
                                                    "experiment_id": exp_id, "started_at": time.time()}, indent=2))
    return exp_id, parent, logger


def freeze_for_trials(fam: Any, base_cfg: Any, logger: Any) -> dict[str, Any] | None:
    """Make the frozen validation set once on the driver and attach it (with its hash) to the parent run;
    every trial with the same data config reads the same file and tags the same hash. Returns its record."""
    from mlplatform.integrity.frozen import freeze_validation, log_frozen

    if base_cfg.train.val_set != "frozen":
        return None
    _, record = freeze_validation(fam, base_cfg, fam.build_datasets(base_cfg, DataContext()))
    log_frozen(logger, record, base_cfg.train.frozen_val_artifact_mb)
    return record


def retire_orphan_runs(cl: Any, exp_id: str, parent: str, sweep_dir: Path) -> None:
    """A trial that started after Tune's last experiment snapshot is unknown to ``Tuner.restore`` and
    is replaced by a new one; its MLflow run would be a child of no trial. Tag it and soft-delete it
    (``mlflow gc`` or the UI's "deleted" filter still has it) so each trial has exactly one child run."""
    from ray.tune import ExperimentAnalysis

    try:
        known = {t.trial_id for t in ExperimentAnalysis(str(sweep_dir)).trials}
    except Exception as e:  # noqa: BLE001 - no usable state: Tuner.restore will say so
        print(f"[sweep] could not read the saved sweep state ({type(e).__name__}); keeping all runs", flush=True)
        return
    for run in mu.iter_child_runs(cl, exp_id, parent):
        tid = run.data.tags.get("trial_id")
        if tid and tid not in known and run.data.tags.get("confirm") != "true":  # those are the confirmation's
            ended = Outcome("superseded", "driver died before the sweep state recorded this trial")
            mu.end_run_if_running(cl, run.info.run_id, ended.status, {"stop_reason": ended.render(), "orphaned": "true"})
            cl.delete_run(run.info.run_id)
            print(f"[sweep] retired the MLflow run of trial {tid} (not in the saved sweep state)", flush=True)


def _fit(spec: SweepSpec, fam: Any, base_cfg: Any, space: Any, k: int, parent: str, exp_id: str, uri: str,
         storage: str, sweep_dir: Path, resume: bool, trial_manifest: dict[str, Any]) -> tuple[Any, float, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from mlplatform.tune.callbacks import MlflowTrialCloser, SweepProgress
    from mlplatform.tune.scheduler_state import SchedulerState
    from mlplatform.tune.snapshot import StateBackup

    from mlplatform.train.executors import TrialOptions
    from mlplatform.train.options import RunOptions

    run = RunOptions(family=fam, cfg=base_cfg, tracking_uri=uri, verbose=False, val_set_logged=True,
                     executor="tune-function" if spec.workers_per_trial == 1 else "tune-torchtrainer",
                     manifest=trial_manifest)
    base = TrialOptions(run, parent_run_id=parent, experiment_id=exp_id, sweep_name=spec.name,
                        storage_path=str(storage), workers_per_trial=spec.workers_per_trial,
                        cpus_per_worker=spec.cpus_per_worker, gpus_per_worker=spec.gpus_per_worker)
    trainable = _trainable(spec, base)
    progress = SweepProgress(space.metric, space.mode, spec.n_trials, k)
    callbacks = [progress, MlflowTrialCloser(uri, exp_id, parent)]
    if spec.workers_per_trial > 1:  # a TorchTrainer per trial: its placement group is ours to clean up too
        from mlplatform.tune.placement import PlacementGroupJanitor, remove_orphans

        remove_orphans(sweep_dir)
        callbacks.append(PlacementGroupJanitor(sweep_dir))
    print(f"[sweep] {spec.name}: {spec.n_trials} trials of {fam.name} ({spec.preset} preset, {spec.epochs_per_trial} "
          f"epochs max, space '{spec.space}' with {len(space.params)} params), {k} at a time; "
          f"OptunaSearch(seed={spec.seed}) + ASHA(grace={spec.grace_period}, rf={spec.reduction_factor}); "
          f"selection {space.metric} ({space.mode}); Optuna study '{spec.name}' in "
          f"{resolve_storage(uri, spec.optuna_storage)} (make optuna-ui)", flush=True)
    # per-epoch checkpoints of short trials trip Tune's snapshot-frequency warning; it is expected here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    t0 = time.time()
    if resume and tune.Tuner.can_restore(str(sweep_dir)):
        tuner = tune.Tuner.restore(str(sweep_dir), trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=spec.epochs_per_trial,
                                   grace_period=min(spec.grace_period, spec.epochs_per_trial),
                                   reduction_factor=spec.reduction_factor)
                     if spec.scheduler == "asha" else FIFOScheduler())
        # Tune's snapshot leaves the scheduler out: this callback keeps ASHA's rungs in it (scheduler_state)
        callbacks.append(SchedulerState(scheduler))
        if "://" not in storage:  # a whole copy of the snapshot, for repair() on resume (local storage)
            callbacks.append(StateBackup(str(sweep_dir)))
        tune_config = tune.TuneConfig(
            metric=space.metric, mode=space.mode, num_samples=spec.n_trials,
            search_alg=build_searcher(spec, RunLink(uri, exp_id, parent)),
            scheduler=scheduler,
            max_concurrent_trials=k,
            reuse_actors=spec.reuse_actors and spec.workers_per_trial == 1,
        )
        if spec.objectives:
            tune_config = multi_objective(tune_config, spec, RunLink(uri, exp_id, parent))
        tuner = tune.Tuner(
            trainable,
            param_space=space.tune_domains(),
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name=spec.name, storage_path=str(storage), verbose=0,
                callbacks=callbacks,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            ),
        )
    from mlplatform.cli import call_interruptibly

    results = call_interruptibly(tuner.fit)  # off the main thread: SIGINT/SIGTERM stay ours (jobs/hpo.py)
    wall, confirmed = time.time() - t0, None
    if spec.confirm_top > 0:  # before the parent run ends: its children and confirm/* metrics belong to it
        from mlplatform.tune.confirm import run_confirmation

        confirmed = run_confirmation(spec, base, trainable, results, space.metric, space.mode, k, storage)
    return results, wall, confirmed


def multi_objective(tune_config: Any, spec: SweepSpec, runs: RunLink) -> Any:
    """A Pareto sweep's TuneConfig: the searcher carries the metrics and modes (Tune's own metric/mode must
    stay unset, or it would overwrite the searcher's list with one metric) and no scheduler prunes (FIFO).
    The study is stored like a one-metric sweep's (``study.build_searcher``)."""
    import dataclasses

    from ray.tune.schedulers import FIFOScheduler

    objectives = parse_objectives(get_family(spec.family), spec.objectives)
    search, scheduler = build_searcher(spec, runs, objectives), FIFOScheduler()
    print(f"[sweep] Pareto sweep over {format_objectives(objectives)}: multi-objective {spec.search.upper()} "
          "(OptunaSearch) and FIFO instead of the above (ASHA needs one metric)", flush=True)
    return dataclasses.replace(tune_config, metric=None, mode=None, search_alg=search, scheduler=scheduler)


def best_row_value(df: Any, metric: str, mode: str, column: str) -> float | None:
    """``column`` at the epoch where ``metric`` was best (None when it was never logged there)."""
    if column not in df.columns or df[metric].isna().all():
        return None
    row = df[metric].idxmin() if mode == "min" else df[metric].idxmax()
    v = df.loc[row, column]
    return None if v != v else float(v)  # NaN: not logged at that epoch


def summarize(results: Any, space: Any, spec: SweepSpec, cl: Any, uri: str, exp_id: str, parent: str,
              wall: float) -> dict[str, Any]:
    metric, mode = space.metric, space.mode
    n_err = sum(1 for r in results if r.error is not None)
    try:
        best = results.get_best_result(metric=metric, mode=mode, scope="all")
    except RuntimeError:
        best = None
    summary: dict[str, Any] = {"n_trials": len(results), "n_errors": n_err, "wall_s": wall,
                               "parent_run_id": parent, "experiment_id": exp_id, "tracking_uri": uri,
                               "metric": metric, "mode": mode}
    logger = mu.RunLogger(parent, uri)
    # every trial failed before reporting the metric: Tune may still name a "best" result without it
    if best is not None and best.metrics_dataframe is not None and metric in best.metrics_dataframe.columns:
        df = best.metrics_dataframe
        col = df[metric]
        value = float(col.min() if mode == "min" else col.max())
        trial_id = best.metrics.get("trial_id")
        run_id = mu.find_run(cl, exp_id, {"trial_id": trial_id, mu.PARENT_TAG: parent}) if trial_id else None
        summary.update(best_trial=trial_id, best_value=value, best_config=best.config, best_run_id=run_id)
        best_metrics = {f"best/{metric}": value, "sweep/n_errors": n_err, "sweep/wall_s": wall}
        gain = best_row_value(df, metric, mode, "val/captured_gain")
        if gain is not None:  # where the best trial sits between its floor (0) and its ceiling (1)
            summary["best_captured_gain"] = best_metrics["best/val/captured_gain"] = gain
        logger.log_metrics(best_metrics, step=0)
        logger.set_tags({"best_trial": trial_id, "best_run_id": run_id or ""})
    logger.end("FINISHED")
    return summary
