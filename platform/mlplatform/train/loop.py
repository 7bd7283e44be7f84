"""The one training loop every executor runs (Ray Train worker, Tune function trial, plain process).

``run_training(opts, reporter)`` owns: epochs, the family's schedule, the optimiser step with
``LossTerms`` checks, gradient clipping, AMP on GPU, deterministic validation, selection of the
"best" checkpoint by the family's selection metric, early-stopping patience, guards, checkpoints
with every RNG state (exact resume), and MLflow logging from rank 0. Executors differ only in the
``Reporter`` they pass (see ``mlplatform.train.executors``).
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

import torch

from mlplatform.config import flatten
from mlplatform.integrity.contracts import check_contract
from mlplatform.integrity.frozen import freeze_validation, log_frozen
from mlplatform.integrity.monitor import Monitor, fresh_state
from mlplatform.protocol import DataContext, StepContext
from mlplatform.registry import get_family
from mlplatform.rng import seed_everything, set_rng_state
from mlplatform.train.checkpoint import load_checkpoint, save_checkpoint
from mlplatform.train.terms import LossBoundError
from mlplatform.train.validation import to_device, validate  # noqa: F401 - re-exported for jobs and tests


class Reporter(Protocol):
    rank: int
    world_size: int
    local_rank: int

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None: ...

    def latest_checkpoint(self) -> str | None: ...


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> Any:
    if cfg.optim.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, cfg.train.epochs), eta_min=cfg.optim.lr * cfg.optim.min_lr_ratio)
    return None


def is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _amp(cfg: Any, device: torch.device) -> tuple[bool, torch.dtype]:
    if device.type != "cuda" or cfg.train.amp == "off":
        return False, torch.float32
    if cfg.train.amp == "fp16":
        return True, torch.float16
    return True, torch.bfloat16


def _crash_once(marker: str, step: int) -> None:
    """Kill this process (as an OOM kill or a lost node would), once: the marker file remembers."""
    import os

    if marker and Path(marker).exists():
        return
    if marker:
        Path(marker).write_text(f"crashed at step {step}\n")
    print(f"[drill] worker process exits at step {step}", flush=True)
    os._exit(1)


def run_training(opts: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Train one run. ``opts``: family, cfg (dict), mlflow_run_id, tracking_uri, resume_from,
    reset_optimizer, work_dir, verbose, label. Returns a summary dict."""
    from mlplatform.tracking.mlflow_utils import RunLogger

    fam = get_family(opts["family"])
    cfg = fam.config_cls.from_dict(opts["cfg"])
    sel_metric, sel_mode = check_contract(fam, cfg)  # jobs check this before Ray starts; belt and braces
    rank, world = reporter.rank, reporter.world_size
    use_cuda = torch.cuda.is_available() and opts.get("use_gpu", True)
    device = torch.device(f"cuda:{reporter.local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    elif opts.get("cpus"):
        torch.set_num_threads(max(1, int(opts["cpus"])))  # Ray sets OMP_NUM_THREADS=1 in workers
    verbose = opts.get("verbose", True) and rank == 0
    label = opts.get("label", fam.name)

    seed_everything(cfg.train.seed)
    model = fam.build_model(cfg).to(device)
    data = fam.build_datasets(cfg, DataContext(rank, world, device))
    data, val_record = freeze_validation(fam, cfg, data, log=print if verbose else (lambda *_: None))
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    loop: dict[str, Any] = {"epoch": 0, "step": 0, "best": None, "best_epoch": -1, "bad_vals": 0, **fresh_state()}

    ckpt = reporter.latest_checkpoint()
    explicit = ckpt is None and bool(opts.get("resume_from"))
    if explicit:
        ckpt = opts["resume_from"]
    if ckpt:
        payload = load_checkpoint(ckpt, fam.name)
        model.load_state_dict(payload["model"])
        fresh_optim = explicit and opts.get("reset_optimizer", False)
        if not fresh_optim:
            optimizer.load_state_dict(payload["optimizer"])
            if scheduler is not None and payload["scheduler"] is not None:
                scheduler.load_state_dict(payload["scheduler"])
        loop = payload["loop"]
        if explicit:
            # a new run from an old checkpoint: keep weights and step, forget selection history
            loop.update(best=None, best_epoch=-1, bad_vals=0, **fresh_state())
        set_rng_state(payload["rng"])
        if verbose:
            how = "fresh optimizer and scheduler (--reset-optimizer)" if fresh_optim else "optimizer restored"
            print(f"[{label}] resumed from {ckpt} at epoch {loop['epoch']}, step {loop['step']}; {how}", flush=True)

    train_model: torch.nn.Module = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None)

    logger = RunLogger(opts["mlflow_run_id"], opts.get("tracking_uri")) if (rank == 0 and opts.get("mlflow_run_id")) else None
    if logger is not None:
        logger.log_params(flatten(cfg))
        logger.set_tags({"family": fam.name, "selection_metric": sel_metric, "selection_mode": sel_mode,
                         "executor": opts.get("executor", "local"), "world_size": world})
        # in a sweep the driver attaches the frozen set once to the parent run; trials tag its hash
        log_frozen(logger, val_record, cfg.train.frozen_val_artifact_mb, with_file=not opts.get("val_set_logged"))
        if loop["epoch"] == 0:
            import yaml
            logger.log_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/resolved_config.yaml")

    work_dir = Path(opts.get("work_dir") or tempfile.mkdtemp(prefix=f"mlp-{fam.name}-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    use_amp, amp_dtype = _amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if (use_amp and amp_dtype == torch.float16) else None
    # families may log their own artifacts/tags (plots, codec provenance) through the rank-0 logger
    family_state: dict[str, Any] = {"rank": rank, "verbose": verbose, "logger": logger, "work_dir": str(work_dir)}
    monitor = Monitor(fam, cfg, fam.guards(cfg), sel_metric, sel_mode)
    stop_reason = "completed"
    status = "FINISHED"
    metrics: dict[str, Any] = {}

    def finish(reason: str, st: str) -> None:
        if logger is not None:
            logger.set_tags({"stop_reason": reason, "best_epoch": loop["best_epoch"] + 1,
                             f"best/{sel_metric}": loop["best"]})
            logger.end(st)

    try:
        for epoch in range(loop["epoch"], cfg.train.epochs):
            t0 = time.perf_counter()
            sched = fam.schedule(cfg, epoch)
            train_model.train()
            sums: dict[str, float] = defaultdict(float)
            n = 0
            grad_norm_sum = 0.0
            for i, batch in enumerate(data.train_batches(epoch)):
                if cfg.train.steps_per_epoch and i >= cfg.train.steps_per_epoch:
                    break
                batch = to_device(batch, device)
                ctx = StepContext(cfg, epoch, loop["step"], True, sched, device, family_state)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    terms = fam.compute_loss(train_model, batch, ctx)
                if loop["step"] == cfg.train.inject_crash_at_step:  # a fault drill, never on by default
                    _crash_once(cfg.train.inject_crash_marker, loop["step"])
                if loop["step"] == cfg.train.inject_nan_at_step:  # a fault drill, never on by default
                    first = next(iter(terms.terms.values()))
                    first.value = first.value * float("nan")
                vals = terms.check(loop["step"])
                optimizer.zero_grad(set_to_none=True)
                total = terms.total
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.unscale_(optimizer)
                else:
                    total.backward()
                if cfg.train.grad_clip > 0:
                    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                    grad_norm_sum += float(gn)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                loop["step"] += 1
                for k, v in vals.items():
                    sums[k] += v
                n += 1
            if n == 0:
                raise RuntimeError(f"epoch {epoch + 1}: the training split yielded no batch (empty dataset?)")
            if scheduler is not None:
                scheduler.step()
            metrics = {f"train/{k}": v / n for k, v in sums.items()}
            metrics.update({f"train/{k}": float(v) for k, v in sched.items()})
            if cfg.train.grad_clip > 0:
                metrics["train/grad_norm"] = grad_norm_sum / n
            metrics["sys/lr"] = optimizer.param_groups[0]["lr"]
            metrics["sys/epoch_time_s"] = time.perf_counter() - t0
            last = epoch == cfg.train.epochs - 1
            stop = False
            if (epoch + 1) % cfg.train.val_every == 0 or last:
                info: dict[str, Any] = {}
                metrics.update(validate(fam, model, data, cfg, epoch, loop["step"], sched, device, family_state, info))
                value = metrics.get(sel_metric)
                if value is None:
                    raise KeyError(f"family {fam.name} did not produce its selection metric {sel_metric}")
                improved = is_better(value, loop["best"], sel_mode)
                if improved:
                    loop.update(best=value, best_epoch=epoch, bad_vals=0)
                else:
                    loop["bad_vals"] += 1
                for ev in monitor.update(loop, metrics, epoch, info["digest"], info["optimised"]):
                    kind, name = ev.name.split(":", 1)
                    print(f"[{label}] {kind.upper()} {name} fired: {ev.message}", flush=True)
                    if logger is not None:
                        logger.set_tags({f"{kind}.{name}": ev.message[:4000], "flagged": "true"})
                    if cfg.train.guard_action == "stop" and not stop:
                        stop, stop_reason, status = True, f"{ev.name}: {ev.message}", "KILLED"
                if cfg.train.early_stop_patience and loop["bad_vals"] >= cfg.train.early_stop_patience and not stop:
                    stop, stop_reason = True, f"early_stop: no improvement in {loop['bad_vals']} validations"
            else:
                improved = False
            loop["epoch"] = epoch + 1
            metrics["epoch"] = epoch + 1
            if loop["best"] is not None:
                metrics[f"best/{sel_metric}"] = loop["best"]

            ckpt_dir = None
            if rank == 0:
                ckpt_dir = str(save_checkpoint(work_dir / f"epoch_{epoch + 1:04d}", family=fam.name,
                                               cfg=cfg.to_dict(), model=model, optimizer=optimizer,
                                               scheduler=scheduler, loop=loop))
                if improved:
                    best_dir = work_dir / "best"
                    shutil.rmtree(best_dir, ignore_errors=True)
                    shutil.copytree(ckpt_dir, best_dir)
                    if logger is not None:
                        logger.log_artifacts(str(best_dir), "checkpoints/best")
            if logger is not None:
                logger.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch + 1)
            if verbose:
                shown = [f"{k}={v:.4g}" for k, v in metrics.items()
                         if k.startswith(("train/loss", "val/", "train/beta")) and isinstance(v, float)
                         and not k.startswith(("val/baseline_", "val/probe_"))][:8]
                print(f"[{label}] epoch {epoch + 1}/{cfg.train.epochs} " + "  ".join(shown)
                      + f"  ({metrics['sys/epoch_time_s']:.2f}s)", flush=True)
            final = stop or last
            if final:
                # end the MLflow run before the last report: a scheduler may stop us right after it
                finish(stop_reason, status)
                metrics["stop_reason"] = stop_reason
            reporter.report(metrics, ckpt_dir)
            if ckpt_dir is not None:
                # Ray copied it to storage; keep only the newest locally
                for old in sorted(work_dir.glob("epoch_*"))[:-1]:
                    shutil.rmtree(old, ignore_errors=True)
            if final:
                break
    except LossBoundError as e:
        print(f"[{label}] FAILED: {e}", flush=True)
        finish(f"loss_guard: {e}", "FAILED")
        raise
    return {"best": loop["best"], "best_epoch": loop["best_epoch"] + 1, "epochs": loop["epoch"],
            "steps": loop["step"], "stop_reason": stop_reason, "metrics": metrics,
            "work_dir": str(work_dir)}
