"""The protocol between the shared spine and a family: the ``Family`` bundle and the types it speaks.

A leaf module: it imports no family and nothing of ``train/``, ``tune/`` or ``tracking/``, so a family
imports it for the types and ``registry.py`` (which can import every family) is imported by nobody below it.
The shared loop (``mlplatform.train.loop``) only ever talks to a family through this bundle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import torch

from mlplatform.config import Config


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
class MetricSpec:
    """A metric's contract: its direction, what it means, and whether selecting on it can be gamed.

    ``exploitable``: the metric contains a term the optimiser can lower without the output getting
    better (a negative reward, a swept weight): selection refuses it (``mlplatform.integrity.contracts``).
    """

    mode: Literal["min", "max"]
    meaning: str
    exploitable: str = ""  # why it is exploitable; empty = safe to select on
    # how captured gain compares values (mlplatform.integrity.floors): "log" = in dB of the value (NMSE-like
    # errors), "db" = the value is already in dB (SI-SDR), "linear" = as it is
    scale: Literal["linear", "log", "db"] = "linear"


@dataclass(frozen=True)
class Probe:
    """A reliance probe: re-evaluate a validation batch with one mechanism switched off.

    ``run(model, batch, terms, ctx)`` returns per-sample values of the selection metric (and optionally
    more) with the mechanism off. ``versus`` says what the probe is compared with to give
    ``val/reliance_<name>`` (signed so that positive = the network / the mechanism contributes):
    ``"model"`` (the model with the mechanism on) or ``"baseline:<name>"`` (a trivial baseline).
    """

    name: str
    run: Callable[[torch.nn.Module, Any, Any, "StepContext"], dict[str, torch.Tensor]]
    versus: str = "model"
    meaning: str = ""
    collapse: bool = True  # reliance <= train.alarm_min_reliance is a collapse signal


# the defaults of Family's hooks are named functions, not lambdas, so a Family pickles by reference
# (RunOptions carries it across Ray and through plain pickle)
def no_schedule(cfg: Config, epoch: int) -> dict[str, float]:
    return {}


def no_guards(cfg: Config) -> list[GuardSpec]:
    return []


def means_as_they_are(means: dict[str, float]) -> dict[str, float]:
    return means


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
    schedule: Callable[[Config, int], dict[str, float]] = no_schedule
    prepare_data: Callable[[Config], dict[str, Any]] | None = None  # run on the driver, via Ray
    guards: Callable[[Config], list[GuardSpec]] = no_guards
    # metrics whose value is not a mean of per-sample values (e.g. an RMSE): post-process the means
    finalize_metrics: Callable[[dict[str, float]], dict[str, float]] = means_as_they_are
    # the litmus job's per-step schedule (default: epoch 0's schedule) and the overfit job's pass rule
    litmus_schedule: Callable[[Config, int, int], dict[str, float]] | None = None
    # overrides the litmus runs with: a model that starts at a floor by construction cannot lose 20% of its
    # loss in 5 steps, so its wiring is checked on a variant that starts far from the answer
    litmus_overrides: tuple[str, ...] = ()
    overfit: tuple[str, str, float, tuple[str, ...]] | None = None  # (metric, "<" or ">", threshold, overrides)
    # metric contracts (direction, meaning, exploitable?): must declare the selection metric
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    # trivial solutions the losses could drift to, scored at every validation on the same batch:
    # (model, batch, terms, ctx) -> {baseline name: {metric: per-sample values}}; must include the
    # selection metric (without "val/") so val/margin_<name> can be computed
    baselines: Callable[[torch.nn.Module, Any, Any, StepContext], dict[str, dict[str, torch.Tensor]]] | None = None
    probes: tuple[Probe, ...] = ()
    # floors: the strongest estimators that need no training; ceilings: oracles that use information the
    # model cannot have. Same signature and output as ``baselines`` (every baseline counts as a floor too);
    # scored on the same frozen batches -> val/floor_<name>, val/ceiling_<name>, val/captured_gain
    floors: Callable[[torch.nn.Module, Any, Any, StepContext], dict[str, dict[str, torch.Tensor]]] | None = None
    ceilings: Callable[[torch.nn.Module, Any, Any, StepContext], dict[str, dict[str, torch.Tensor]]] | None = None
    gain_ceiling: str = ""  # the ceiling captured gain is measured against; empty = the best one
    # captured gain of further metrics beside the selection metric's (one per validation set, say):
    # {name: metric without "val/"} -> val/captured_gain_<name>, from that metric's own floors and ceilings
    gain_sets: dict[str, str] = field(default_factory=dict)
    # end-of-run scores too slow for every validation (PESQ, STOI), of the best checkpoint on the frozen
    # validation set: (model, cfg, data) -> {name: value}, logged once as test/<name> by rank 0
    final_eval: Callable[[torch.nn.Module, Config, Any], dict[str, float]] | None = None
    # the family's natural trade-off for Pareto sweeps ("val/<metric>:<min|max>", each with a contract in
    # ``metrics``); an exploitable metric is allowed only here, beside the objective that stops it paying
    # (``mlplatform.tune.pareto``; ``jobs/hpo.py --objectives pair``)
    objectives: tuple[str, ...] = ()
    description: str = ""
    # the model's forward arguments, by name and in order (a registered model's predict: tracking.models)
    inputs: tuple[str, ...] = ()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The family's own module behind the one the loop passes in.

    With several workers ``compute_loss`` receives the DistributedDataParallel wrapper
    (``mlplatform.train.loop``); a family that needs its model's attributes or extra forward arguments
    (an ablation flag, a dropped level) calls this instead of reaching for ``.module`` itself.
    """
    return getattr(model, "module", model)


# Name -> Family lookups go through the registry, which imports any family; the spine below it (the loop,
# the executors) must not import it back, or a family that trains another family (creative trains its codec
# through the shared loop) closes an import cycle. So the registry registers its lookup here when imported,
# and a RunOptions normally carries the Family itself.
_resolver: Callable[[str], "Family"] | None = None


def set_family_resolver(resolver: Callable[[str], "Family"]) -> None:
    global _resolver
    _resolver = resolver


def resolve_family(family: "Family | str") -> "Family":
    """The Family itself, or the one registered under that name (``mlplatform.registry`` must be imported)."""
    if isinstance(family, Family):
        return family
    if _resolver is None:
        raise LookupError(f"family name {family!r} given before mlplatform.registry was imported; pass the Family")
    return _resolver(family)

