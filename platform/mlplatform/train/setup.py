"""The loop's set-up phase: everything a run builds once before its first epoch, as one :class:`RunContext`.

Order matters for exact reproduction: the RNG is seeded before the model and the datasets are built,
and a resumed run restores every RNG state after them (``checkpoint.py``).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from mlplatform.config import Config, flatten
from mlplatform.integrity.contracts import check_contract
from mlplatform.integrity.frozen import freeze_validation, log_frozen
from mlplatform.integrity.monitor import Monitor
from mlplatform.protocol import DataContext, Datasets, Family
from mlplatform.rng import seed_everything, set_rng_state
from mlplatform.train.checkpoint import load_checkpoint
from mlplatform.train.options import RunOptions
from mlplatform.train.state import RunState


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)


def lr_factor(cfg: Any, t: int) -> float:
    """The LR multiplier after ``t`` schedule units (epochs or optimizer steps, ``optim.schedule_unit``):
    linear warmup over ``optim.warmup`` units, then cosine from 1 down to ``optim.min_lr_ratio`` at the end."""
    o = cfg.optim
    total = cfg.train.epochs * (cfg.train.steps_per_epoch if o.schedule_unit == "step" else 1)
    if t < o.warmup:
        return (t + 1) / (o.warmup + 1)
    if o.scheduler == "none":
        return 1.0
    progress = min(1.0, (t - o.warmup) / max(1, total - o.warmup))
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> Any:
    o = cfg.optim
    if o.schedule_unit == "step" or o.warmup > 0:
        if o.scheduler == "none" and o.warmup == 0:
            return None
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(cfg, t))
    if o.scheduler == "cosine":  # per epoch, no warmup: the schedule every run before these options had
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, cfg.train.epochs), eta_min=o.lr * o.min_lr_ratio)
    return None


@dataclass
class RunContext:
    """What stays fixed for the whole run (the per-epoch state is :class:`RunState`)."""

    opts: RunOptions
    fam: Family
    cfg: Config
    sel_metric: str  # the run's checkpoint-selection metric and direction (``integrity.contracts.selection``)
    sel_mode: str
    rank: int
    world: int
    device: torch.device
    verbose: bool  # epoch lines, on rank 0 only
    label: str
    model: torch.nn.Module
    train_model: torch.nn.Module  # ``model``, wrapped in DDP when world > 1
    data: Datasets
    optimizer: torch.optim.Optimizer
    scheduler: Any
    use_amp: bool
    amp_dtype: torch.dtype
    scaler: Any  # a GradScaler for fp16 AMP, else None
    logger: Any  # the rank-0 MLflow ``RunLogger``, else None
    work_dir: Path
    monitor: Monitor
    family_state: dict[str, Any]  # the family's scratch space (``StepContext.state``)


def _device(opts: RunOptions, cfg: Config, local_rank: int) -> torch.device:
    use_cuda = torch.cuda.is_available() and opts.use_gpu
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    elif opts.cpus:
        torch.set_num_threads(max(1, int(opts.cpus)))  # Ray sets OMP_NUM_THREADS=1 in workers
    return device


def _amp(cfg: Any, device: torch.device) -> tuple[bool, torch.dtype]:
    """(autocast on?, its dtype). On a GPU ``auto`` is bf16; on a CPU only an explicit ``bf16`` turns it on
    (PyTorch's CPU autocast): the tests run every family that way, which catches the ops that refuse bf16
    (complex construction, FFTs) without a GPU."""
    if cfg.train.amp == "off" or (device.type != "cuda" and cfg.train.amp != "bf16"):
        return False, torch.float32
    if cfg.train.amp == "fp16":
        return True, torch.float16
    return True, torch.bfloat16


def restore(opts: RunOptions, latest: str | None, fam: Family, model: torch.nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any, say: Callable[[str], None]) -> RunState:
    """The state to start from: fresh; the executor's latest checkpoint (a retried worker or a restored
    sweep: everything continues); or ``opts.resume_from`` (a new run from old weights and step)."""
    ckpt = latest or opts.resume_from
    if not ckpt:
        return RunState()
    explicit = latest is None
    payload = load_checkpoint(ckpt, fam.name)
    model.load_state_dict(payload["model"])
    fresh_optim = explicit and opts.reset_optimizer
    if not fresh_optim:
        optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None and payload["scheduler"] is not None:
            scheduler.load_state_dict(payload["scheduler"])
    state = RunState.from_payload(payload["loop"])
    if explicit:
        state.forget_selection()
    set_rng_state(payload["rng"])
    how = "fresh optimizer and scheduler (--reset-optimizer)" if fresh_optim else "optimizer restored"
    say(f"resumed from {ckpt} at epoch {state.epoch}, step {state.step}; {how}")
    return state


# every epoch's metrics batch carries it (``loop.train_epoch``): the logger's "already in the store" mark
EPOCH_MARKER = "sys/epoch_time_s"


def where_tags(logger: Any, device: torch.device, start_epoch: int) -> dict[str, str]:
    """Where this (re)start of the run executes: the torch device it chose, and under Ray the node and the
    GPU ids Ray assigned (logical on a simulated cluster). ``ray.node_ids`` accumulates every node the run
    has run on, so a trial retried on another node after a node loss shows both."""
    tags = {"device": str(device)}
    if start_epoch > 0:
        tags["resumed_at_epoch"] = str(start_epoch)
    try:
        import ray

        if not ray.is_initialized():
            return tags
        node = ray.get_runtime_context().get_node_id()
        gpu_ids = ray.get_gpu_ids()
    except Exception:  # noqa: BLE001 - no Ray context (a plain process): nothing more to say
        return tags
    try:
        before = logger.cl.get_run(logger.run_id).data.tags.get("ray.node_ids", "")
    except Exception:  # noqa: BLE001 - the store is down: the logger buffers; the history starts here
        before = ""
    tags.update({"ray.node_id": node, "ray.node_ids": ",".join([*filter(None, before.split(",")), node]),
                 "ray.gpu_ids": ",".join(str(g) for g in gpu_ids)})
    return tags


def open_logger(opts: RunOptions, fam: Family, cfg: Config, rank: int, world: int, selection: tuple[str, str],
                val_record: dict[str, Any], device: torch.device, start_epoch: int) -> Any:
    """Rank 0's MLflow ``RunLogger`` with the run's params and tags (and MLflow's system-metrics monitor
    on the run), or None."""
    if rank != 0 or not opts.mlflow_run_id:
        return None  # before the imports: a run without tracking (gpu.py on a bare GPU box) needs no MLflow
    from mlplatform.tracking import system_metrics
    from mlplatform.tracking.mlflow_utils import RunLogger

    logger = RunLogger(opts.mlflow_run_id, opts.tracking_uri, epoch_marker=EPOCH_MARKER)
    system_metrics.start(logger.run_id, logger.uri, resume=start_epoch > 0)
    logger.log_params(flatten(cfg))
    logger.set_tags({"family": fam.name, "selection_metric": selection[0], "selection_mode": selection[1],
                     "executor": opts.executor, "world_size": world, **where_tags(logger, device, start_epoch)})
    # in a sweep the driver attaches the frozen set once to the parent run; trials tag its hash
    log_frozen(logger, val_record, cfg.train.frozen_val_artifact_mb, with_file=not opts.val_set_logged)
    if start_epoch == 0 or opts.resume_from:  # a continued run keeps the manifest of its start
        import yaml

        from mlplatform.tracking import manifest

        logger.log_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/resolved_config.yaml")
        man = manifest.complete(opts.manifest, fam.name, cfg, val_record, device, world)
        if opts.resume_from:
            man["resumed_from"] = opts.resume_from  # its start is a checkpoint: jobs/rerun.py cannot rebuild it
        logger.log_text(manifest.dumps(man), manifest.FILE)
    return logger


def setup_run(opts: RunOptions, rank: int, world: int, local_rank: int,
              latest_checkpoint: str | None) -> tuple[RunContext, RunState]:
    """Phase 1: device, seeded model and data, frozen validation set, optimizer, resume, logger."""
    fam, cfg = opts.family, opts.cfg
    sel_metric, sel_mode = check_contract(fam, cfg)  # jobs check this before Ray starts; belt and braces
    device = _device(opts, cfg, local_rank)
    verbose, label = opts.verbose and rank == 0, opts.label or fam.name
    say = (lambda text: print(f"[{label}] {text}", flush=True)) if verbose else (lambda text: None)

    seed_everything(cfg.train.seed)
    model = fam.build_model(cfg).to(device)
    data = fam.build_datasets(cfg, DataContext(rank, world, device))
    data, val_record = freeze_validation(fam, cfg, data, log=print if verbose else (lambda *_: None))
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    state = restore(opts, latest_checkpoint, fam, model, optimizer, scheduler, say)
    if cfg.train.integrity and (fam.floors is None and fam.baselines is None or fam.ceilings is None):
        say(f"family {fam.name} declares no {'ceiling' if fam.ceilings is None else 'floor'}: "
            "val/captured_gain is not logged (docs/integrity.md)")

    train_model: torch.nn.Module = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    logger = open_logger(opts, fam, cfg, rank, world, (sel_metric, sel_mode), val_record, device, state.epoch)
    work_dir = Path(opts.work_dir or tempfile.mkdtemp(prefix=f"mlp-{fam.name}-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    use_amp, amp_dtype = _amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if (use_amp and amp_dtype == torch.float16) else None
    # families may log their own artifacts/tags (plots, codec provenance) through the rank-0 logger
    family_state: dict[str, Any] = {"rank": rank, "verbose": verbose, "logger": logger, "work_dir": str(work_dir)}
    monitor = Monitor(fam, cfg, fam.guards(cfg), sel_metric, sel_mode)
    ctx = RunContext(opts, fam, cfg, sel_metric, sel_mode, rank, world, device, verbose, label, model, train_model,
                     data, optimizer, scheduler, use_amp, amp_dtype, scaler, logger, work_dir, monitor, family_state)
    return ctx, state
