"""The one training loop every executor runs (Ray Train worker, Tune function trial, plain process).

``run_training(opts, reporter)`` reads as four phases over two typed values, a fixed
:class:`~mlplatform.train.setup.RunContext` and a checkpointed :class:`~mlplatform.train.state.RunState`:

1. :func:`~mlplatform.train.setup.setup_run`: device, seeded model and data, frozen validation set,
   optimizer and scheduler, resume (every RNG state: exact), the rank-0 MLflow logger;
2. :func:`train_epoch`: the optimiser steps with ``LossTerms`` checks, gradient clipping, AMP on GPU;
3. :func:`validate_and_select`: deterministic validation, the "best" by the run's selection metric,
   guards and exploit alarms, early-stopping patience; a stop is an :class:`Outcome`;
4. :func:`checkpoint_and_report`: the checkpoint (and "best" copy), MLflow metrics, the epoch line, the
   executor's report; the outcome is rendered to the ``stop_reason`` text only here.

Executors differ only in the ``Reporter`` they pass (see ``mlplatform.train.executors``).
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch

from mlplatform.data.streaming import TimedIterator
from mlplatform.integrity.floors import below_floor
from mlplatform.integrity.frozen import batches_digest
from mlplatform.observe import gauges
from mlplatform.protocol import StepContext
from mlplatform.rng import isolated_rng
from mlplatform.train.checkpoint import PER_ITEM_FILE, STATE_FILE, load_checkpoint, save_checkpoint
from mlplatform.train.options import RunOptions
from mlplatform.train.outcome import COMPLETED, Outcome, from_error
from mlplatform.train.setup import RunContext, build_optimizer, build_scheduler, setup_run  # noqa: F401 - re-exported
from mlplatform.train.state import RunState, is_better  # noqa: F401 - re-exported for tests
from mlplatform.train.terms import LossBoundError
from mlplatform.train.validation import to_device, validate  # noqa: F401 - re-exported for jobs and tests


class Reporter(Protocol):
    rank: int
    world_size: int
    local_rank: int

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None: ...

    def latest_checkpoint(self) -> str | None: ...


def _crash_once(marker: str, step: int) -> None:
    """Kill this process (as an OOM kill or a lost node would), once: the marker file remembers."""
    import os

    if marker and Path(marker).exists():
        return
    if marker:
        Path(marker).write_text(f"crashed at step {step}\n")
    print(f"[drill] worker process exits at step {step}", flush=True)
    os._exit(1)


def _inject_faults(cfg: Any, step: int, terms: Any) -> None:
    """Fault drills, never on by default: a process crash, or a NaN loss."""
    if step == cfg.train.inject_crash_at_step:
        _crash_once(cfg.train.inject_crash_marker, step)
    if step == cfg.train.inject_nan_at_step:
        first = next(iter(terms.terms.values()))
        first.value = first.value * float("nan")


def _pause_after_log(cfg: Any, epoch: int) -> None:
    """Fault drill: stop between "epoch logged" and "epoch checkpointed", the window in which a kill made a
    retried or resumed run log that epoch twice; a test kills this process (pid in the marker) there."""
    import os

    marker = cfg.train.inject_crash_marker
    if epoch != cfg.train.inject_pause_after_log_epoch or not marker or Path(marker).exists():
        return
    Path(marker).write_text(f"{os.getpid()}\n")
    print(f"[drill] epoch {epoch} logged, not yet checkpointed: pid {os.getpid()} waits to be killed", flush=True)
    time.sleep(600)


def _optimizer_step(run: RunContext, total: torch.Tensor) -> float:
    """Backward, clip, step (through the fp16 scaler when there is one); the gradient norm or 0."""
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(total).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        total.backward()
    norm = 0.0
    if run.cfg.train.grad_clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.train.grad_clip))
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    return norm


def train_epoch(run: RunContext, state: RunState, epoch: int, sched: dict[str, float]) -> dict[str, Any]:
    """Phase 2: one epoch of optimiser steps; the epoch's ``train/``, ``sys/`` metrics."""
    cfg, t0 = run.cfg, time.perf_counter()
    run.train_model.train()
    sums: dict[str, float] = defaultdict(float)
    n, grad_norm_sum = 0, 0.0
    batches = TimedIterator(run.data.train_batches(epoch))  # time waited for data, apart from compute
    for i, batch in enumerate(batches):
        if cfg.train.steps_per_epoch and i >= cfg.train.steps_per_epoch:
            break
        batch = to_device(batch, run.device)
        ctx = StepContext(cfg, epoch, state.step, True, sched, run.device, run.family_state)
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            terms = run.fam.compute_loss(run.train_model, batch, ctx)
        _inject_faults(cfg, state.step, terms)
        vals = terms.check(state.step)
        grad_norm_sum += _optimizer_step(run, terms.total)
        state.step += 1
        if run.scheduler is not None and cfg.optim.schedule_unit == "step":
            run.scheduler.step()
        for k, v in vals.items():
            sums[k] += v
        n += 1
    batches.close()  # a prefetching loader stops its thread now
    if n == 0:
        raise RuntimeError(f"epoch {epoch + 1}: the training split yielded no batch (empty dataset?)")
    if run.scheduler is not None and cfg.optim.schedule_unit == "epoch":
        run.scheduler.step()
    metrics: dict[str, Any] = {f"train/{k}": v / n for k, v in sums.items()}
    metrics.update({f"train/{k}": float(v) for k, v in sched.items()})
    if cfg.train.grad_clip > 0:
        metrics["train/grad_norm"] = grad_norm_sum / n
    metrics["sys/lr"] = run.optimizer.param_groups[0]["lr"]
    metrics["sys/epoch_time_s"] = time.perf_counter() - t0
    metrics["sys/data_wait_frac"] = batches.wait_s / max(metrics["sys/epoch_time_s"], 1e-9)
    return metrics


@dataclass(frozen=True)
class Selection:
    """What one validation decided: a new best checkpoint, and whether (and why) the run stops."""

    improved: bool = False
    stop: Outcome | None = None
    # the selection metric's per-item values on the validation set (model and floors), kept with a new best
    per_item: dict[str, Any] | None = None


def validate_and_select(run: RunContext, state: RunState, epoch: int, sched: dict[str, float],
                        metrics: dict[str, Any]) -> Selection:
    """Phase 3: validate (adds ``val/``, ``guard/``, ``alarm/`` metrics), select, run guards and alarms."""
    cfg = run.cfg
    if not ((epoch + 1) % cfg.train.val_every == 0 or epoch == cfg.train.epochs - 1):
        return Selection()
    info: dict[str, Any] = {}
    metrics.update(validate(run.fam, run.model, run.data, cfg, epoch, state.step, sched, run.device,
                            run.family_state, info))
    value = metrics.get(run.sel_metric)
    if value is None:
        raise KeyError(f"family {run.fam.name} did not produce its selection metric {run.sel_metric}")
    improved = state.select(value, epoch, run.sel_mode)
    if improved:  # the floors the best checkpoint is judged against at the end (alarm:below_floor)
        state.monitor["best_floors"] = {k.removeprefix("val/floor_"): float(v) for k, v in metrics.items()
                                        if k.startswith("val/floor_")}
    stop: Outcome | None = None
    for ev in run.monitor.update(state.monitor, metrics, epoch, info["digest"], info["optimised"]):
        kind, name = ev.name.split(":", 1)
        print(f"[{run.label}] {kind.upper()} {name} fired: {ev.message}", flush=True)
        if run.logger is not None:
            run.logger.set_tags({f"{kind}.{name}": ev.message[:4000], "flagged": "true"})
        if cfg.train.guard_action == "stop" and stop is None:
            stop = Outcome(kind, ev.message, name)  # type: ignore[arg-type]
    if cfg.train.early_stop_patience and state.bad_vals >= cfg.train.early_stop_patience and stop is None:
        stop = Outcome("early_stop", f"no improvement in {state.bad_vals} validations")
    per_item = {**info["per_item"], "epoch": epoch + 1, "digest": info["digest"]} if improved else None
    return Selection(improved, stop, per_item)


def flag_below_floor(run: RunContext, state: RunState, metrics: dict[str, Any]) -> None:
    """At the run's end: mark (never stop) a run whose best checkpoint is worse than its best floor."""
    message = below_floor(state.best, state.monitor.get("best_floors", {}), run.sel_mode)
    metrics["alarm/below_floor"] = float(bool(message))
    if not message:
        return
    print(f"[{run.label}] ALARM below_floor fired: {message}", flush=True)
    if "alarm:below_floor" not in state.monitor["flagged"]:
        state.monitor["flagged"].append("alarm:below_floor")
    if run.logger is not None:
        run.logger.set_tags({"alarm.below_floor": message[:4000], "flagged": "true"})


def finish_run(run: RunContext, state: RunState, outcome: Outcome) -> None:
    """End the MLflow run with the outcome's status and its ``stop_reason`` text."""
    if run.logger is not None:
        from mlplatform.tracking import system_metrics

        system_metrics.stop(run.logger.run_id)  # its last samples land before the run ends
        # the final weights' digest: jobs/rerun.py compares a rerun with it, bit for bit
        run.logger.set_tags({"stop_reason": outcome.render(), "best_epoch": state.best_epoch + 1,
                             f"best/{run.sel_metric}": state.best,
                             "weights.sha256": batches_digest([run.model.state_dict()])})
        run.logger.end(outcome.status)


def epoch_line(run: RunContext, epoch: int, metrics: dict[str, Any], sched: Mapping[str, float]) -> str:
    """The terminal line: losses and validation metrics (at most 8), then every value of the family's schedule."""
    shown = [f"{k}={v:.4g}" for k, v in metrics.items()
             if k.startswith(("train/loss", "val/")) and isinstance(v, float)
             and not k.startswith(("val/baseline_", "val/probe_", "val/floor_", "val/ceiling_", "val/margin_",
                                   "val/reliance_", "val/captured_gain"))][:8]
    sel = run.sel_metric
    if isinstance(metrics.get(sel), float) and not any(x.startswith(f"{sel}=") for x in shown):
        shown.append(f"{sel}={metrics[sel]:.4g}")  # the selection metric, even past the first eight
    if isinstance(metrics.get("val/captured_gain"), float):
        shown.append(f"val/captured_gain={metrics['val/captured_gain']:.3g}")
    shown += [f"train/{k}={float(v):.4g}" for k, v in sched.items()]
    return (f"[{run.label}] epoch {epoch + 1}/{run.cfg.train.epochs} " + "  ".join(shown)
            + f"  ({metrics['sys/epoch_time_s']:.2f}s)")


def _save(run: RunContext, state: RunState, epoch: int, improved: bool,
          per_item: dict[str, Any] | None = None) -> str | None:
    """Rank 0 writes this epoch's checkpoint (and copies it to ``best/`` and MLflow when it improved, with
    ``per_item.json``: the selection metric per validation item, for the sweep's confidence intervals)."""
    if run.rank != 0:
        return None
    ckpt_dir = str(save_checkpoint(run.work_dir / f"epoch_{epoch + 1:04d}", family=run.fam.name,
                                   cfg=run.cfg.to_dict(), model=run.model, optimizer=run.optimizer,
                                   scheduler=run.scheduler, loop=state.to_payload()))
    if improved:
        best_dir = run.work_dir / "best"
        shutil.rmtree(best_dir, ignore_errors=True)
        shutil.copytree(ckpt_dir, best_dir)
        if per_item is not None:
            (best_dir / PER_ITEM_FILE).write_text(json.dumps(per_item))
        if run.logger is not None:
            run.logger.log_artifacts(str(best_dir), "checkpoints/best")
    return ckpt_dir


def final_evaluation(run: RunContext) -> dict[str, float]:
    """The family's end-of-run scores (``Family.final_eval``) of the best checkpoint (this run's weights if
    none was kept here), as ``test/<name>``, on rank 0 only, under the validation seed."""
    fam = run.fam
    if fam.final_eval is None or run.rank != 0 or not run.cfg.train.final_eval:
        return {}
    model = copy.deepcopy(run.model)
    best = run.work_dir / "best"
    if (best / STATE_FILE).exists():
        model.load_state_dict(load_checkpoint(best, fam.name)["model"])
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad(), isolated_rng(run.cfg.train.val_seed):
        out = {f"test/{k}": float(v) for k, v in fam.final_eval(model, run.cfg, run.data).items()}
    out["sys/final_eval_s"] = time.perf_counter() - t0
    if run.verbose:
        print(f"[{run.label}] final evaluation of the best checkpoint ({out['sys/final_eval_s']:.1f}s): "
              + "  ".join(f"{k}={v:.4g}" for k, v in out.items() if k.startswith("test/")), flush=True)
    return out


def checkpoint_and_report(run: RunContext, state: RunState, epoch: int, metrics: dict[str, Any],
                          sched: Mapping[str, float], improved: bool, final: Outcome | None,
                          reporter: Reporter, per_item: dict[str, Any] | None = None) -> None:
    """Phase 4: checkpoint, MLflow metrics, the epoch line, and the executor's report. ``final`` (the
    run's outcome when this is its last epoch) ends the MLflow run before the report: a scheduler may
    stop the trial right after it."""
    metrics["epoch"] = epoch + 1
    if state.best is not None:
        metrics[f"best/{run.sel_metric}"] = state.best
    ckpt_dir = _save(run, state, epoch, improved, per_item)
    if final is not None:
        metrics.update(final_evaluation(run))
    if run.logger is not None:
        run.logger.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch + 1)
        _pause_after_log(run.cfg, epoch + 1)
    if run.verbose:
        print(epoch_line(run, epoch, metrics, sched), flush=True)
    if final is not None:
        finish_run(run, state, final)
        metrics["stop_reason"] = final.render()
    reporter.report(metrics, ckpt_dir)
    if ckpt_dir is not None:
        # Ray copied it to storage; keep only the newest locally
        for old in sorted(run.work_dir.glob("epoch_*"))[:-1]:
            shutil.rmtree(old, ignore_errors=True)


def compute_seconds(run: RunContext, wall: float, cpu: float) -> dict[str, float]:
    """What this epoch (steps and validation) cost: wall seconds, CPU seconds of the run (rank 0's process
    times the world size: ranks do the same work) and GPU seconds held (wall times the GPUs in use), so a
    sweep report can put the quality it reached against the compute it spent (tune/report/compute.py)."""
    gpus = run.world if run.device.type == "cuda" else 0
    return {"sys/epoch_wall_s": wall, "sys/epoch_cpu_s": cpu * run.world, "sys/epoch_gpu_s": wall * gpus}


def run_training(opts: RunOptions | Mapping[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Train one run; return a summary (``stop_reason`` is the rendered ``outcome``)."""
    run, state = setup_run(RunOptions.coerce(opts), reporter.rank, reporter.world_size, reporter.local_rank,
                           reporter.latest_checkpoint())
    outcome, metrics = COMPLETED, {}
    try:
        for epoch in range(state.epoch, run.cfg.train.epochs):
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            sched, step0 = run.fam.schedule(run.cfg, epoch), state.step
            metrics = train_epoch(run, state, epoch, sched)
            chosen = validate_and_select(run, state, epoch, sched, metrics)
            metrics.update(compute_seconds(run, time.perf_counter() - t_wall, time.process_time() - t_cpu))
            state.epoch = epoch + 1
            gauges.record_epoch(run, metrics, epoch=state.epoch, steps=state.step - step0)  # no-op without Ray
            last = chosen.stop is not None or epoch == run.cfg.train.epochs - 1
            outcome = chosen.stop or COMPLETED
            if last and run.cfg.train.integrity and run.cfg.train.alarms:
                flag_below_floor(run, state, metrics)
            checkpoint_and_report(run, state, epoch, metrics, sched, chosen.improved, outcome if last else None,
                                  reporter, chosen.per_item)
            if last:
                break
    except LossBoundError as e:
        print(f"[{run.label}] FAILED: {e}", flush=True)
        finish_run(run, state, from_error(e))
        raise
    return {"best": state.best, "best_epoch": state.best_epoch + 1, "epochs": state.epoch, "steps": state.step,
            "stop_reason": outcome.render(), "outcome": outcome, "metrics": metrics, "work_dir": str(run.work_dir)}
