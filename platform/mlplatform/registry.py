"""The ``Family`` bundle and the explicit ``FAMILIES`` registry.

A family is a folder of builder functions; adding one is that folder plus one line in ``FAMILIES``.
The shared loop (``mlplatform.train.loop``) only ever talks to a family through this bundle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import torch

from mlplatform.config import Config, ConfigError


@dataclass
class StepContext:
    """What a family's loss/eval functions see at each step."""

    cfg: Config
    epoch: int  # 0-based
    step: int  # optimizer steps done so far
    training: bool
    schedule: dict[str, float]  # values from Family.schedule for this epoch (e.g. beta)
    device: torch.device
    state: dict[str, Any]  # per-run scratch space of the family (e.g. "printed [LOSS] lines once")


@dataclass
class DataContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass
class Datasets:
    """``train_batches(epoch)`` yields this rank's shard; ``val_batches()`` yields the fixed val items.

    The loop calls ``val_batches`` under the fixed validation seed, so on-the-fly generation there is
    still deterministic; ``train_batches`` must derive its order from ``(seed, epoch)`` or the global
    RNG (both are restored on resume).
    """

    train_batches: Callable[[int], Iterable[Any]]
    val_batches: Callable[[], Iterable[Any]]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardSpec:
    """A collapse signal: ``metric`` outside ``[lo, hi]`` for ``train.guard_patience`` validations."""

    name: str  # logged as guard/<name>
    metric: str  # e.g. "val/rms_ratio"
    lo: float | None = None
    hi: float | None = None
    reason: str = ""

    def violated(self, value: float) -> bool:
        return (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi)


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type[Config]
    presets: dict[str, Callable[[], Config]]
    build_model: Callable[[Config], torch.nn.Module]
    build_datasets: Callable[[Config, DataContext], Datasets]
    compute_loss: Callable[[torch.nn.Module, Any, StepContext], Any]  # -> LossTerms
    # per-sample metric values for one validation batch: {name: 1-D tensor}; the loop averages them
    evaluate: Callable[[torch.nn.Module, Any, Any, StepContext], dict[str, torch.Tensor]]
    selection_metric: str  # e.g. "val/nmse_blend"; the "best" checkpoint and the sweep metric
    mode: Literal["min", "max"]
    schedule: Callable[[Config, int], dict[str, float]] = lambda cfg, epoch: {}
    prepare_data: Callable[[Config], dict[str, Any]] | None = None  # run on the driver, via Ray
    guards: Callable[[Config], list[GuardSpec]] = lambda cfg: []
    # metrics whose value is not a mean of per-sample values (e.g. an RMSE): post-process the means
    finalize_metrics: Callable[[dict[str, float]], dict[str, float]] = lambda m: m
    # the litmus job's per-step schedule (default: epoch 0's schedule) and the overfit job's pass rule
    litmus_schedule: Callable[[Config, int, int], dict[str, float]] | None = None
    overfit: tuple[str, str, float, tuple[str, ...]] | None = None  # (metric, "<" or ">", threshold, overrides)
    description: str = ""


def _families() -> dict[str, Family]:
    from mlplatform.families.riscov.family import FAMILY as riscov
    from mlplatform.families.creative.family import FAMILY as creative
    from mlplatform.families.tse.family import FAMILY as tse
    from mlplatform.families.vqvae.family import FAMILY as vqvae

    return {
        "riscov": riscov,
        "creative": creative,
        "tse": tse,
        "vqvae": vqvae,
    }


_CACHE: dict[str, Family] = {}


def __getattr__(name: str) -> Any:
    # ``FAMILIES`` is built on first use, not at import: family modules import this module for the
    # bundle types, and a Ray worker may import a family module first (a cycle otherwise).
    if name == "FAMILIES":
        return families()
    raise AttributeError(name)


def families() -> dict[str, Family]:
    if not _CACHE:
        _CACHE.update(_families())
    return _CACHE


def get_family(name: str) -> Family:
    fams = families()
    if name not in fams:
        raise ConfigError(f"unknown family {name!r}; choose one of {', '.join(sorted(fams))}")
    return fams[name]


def build_config(family: str, preset: str = "debug", overrides: Iterable[str] | dict[str, Any] = ()) -> Config:
    """Preset + overrides, validated. The one way every job and test makes a config."""
    fam = get_family(family)
    if preset not in fam.presets:
        raise ConfigError(f"unknown preset {preset!r} for family {family}; choose one of {', '.join(fam.presets)}")
    cfg = fam.presets[preset]()
    return cfg.override(overrides)
