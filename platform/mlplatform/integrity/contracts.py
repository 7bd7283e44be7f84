"""Metric contracts, checked at launch: the Tune metric, the checkpoint-selection metric and MLflow's
"best" must be one metric with one direction, and never one the optimiser can game.

Selecting the "best" checkpoint by a validation loss that contains a negative energy term picks the
most suppressed model (docs/families/tse.md tells that case). Every family declares its metrics (``Family.metrics``: direction,
meaning, ``exploitable``); jobs call :func:`check_contract` before Ray starts and refuse in one line.
"""
from __future__ import annotations

from typing import Any

from mlplatform.config import ConfigError
from mlplatform.protocol import Family

# metric names the platform itself derives (margins, reliance) are "higher is better" by construction
DERIVED_MAX = ("val/margin_", "val/reliance_")


def declared(fam: Family, metric: str) -> tuple[str, str] | None:
    """(mode, meaning) of a declared (or platform-derived) metric, else None."""
    spec = fam.metrics.get(metric)
    if spec is not None:
        return spec.mode, spec.meaning
    if metric.startswith(DERIVED_MAX):
        return "max", "platform-derived: model minus reference, signed so that positive is better"
    return None


def selection(fam: Family, cfg: Any) -> tuple[str, str]:
    """The run's checkpoint-selection metric and mode: ``train.selection_metric`` or the family's."""
    metric = cfg.train.selection_metric or fam.selection_metric
    decl = declared(fam, metric)
    mode = cfg.train.selection_mode or (decl[0] if decl else fam.mode)
    return metric, mode


def check_contract(fam: Family, cfg: Any, tune_metric: str | None = None, tune_mode: str | None = None) -> tuple[str, str]:
    """Refuse (``ConfigError``, one line) a launch whose metrics disagree; return (metric, mode).

    Checks: the selection metric is declared; its direction agrees with the declaration; it contains
    no exploitable term; and the sweep's Tune metric/mode (when given) are that same metric/mode, so
    Tune's best trial, each trial's best checkpoint and the MLflow ``best/`` metric agree.
    """
    metric, mode = selection(fam, cfg)
    decl = declared(fam, metric)
    if decl is None:
        names = ", ".join(sorted(fam.metrics))
        raise ConfigError(f"train.selection_metric={metric!r} is not a declared metric of family {fam.name} "
                          f"(declared: {names})")
    if mode != decl[0]:
        raise ConfigError(f"selection of {metric} by {mode!r} contradicts its declared direction {decl[0]!r} "
                          f"({decl[1]})")
    spec = fam.metrics.get(metric)
    if spec is not None and spec.exploitable:
        raise ConfigError(f"refusing to select checkpoints by {metric}: {spec.exploitable} "
                          f"(select by {fam.selection_metric} instead)")
    if tune_metric is not None and (tune_metric != metric or (tune_mode or mode) != mode):
        raise ConfigError(f"the sweep's metric {tune_metric} ({tune_mode}) and the checkpoint-selection metric "
                          f"{metric} ({mode}) disagree: Tune's best trial and each trial's best checkpoint "
                          f"would be chosen by different rules")
    return metric, mode


def check_declarations(fam: Family) -> None:
    """A family's own declarations are consistent (run by the registry tests for every family)."""
    spec = fam.metrics.get(fam.selection_metric)
    if spec is None:
        raise ConfigError(f"family {fam.name}: selection metric {fam.selection_metric} is not declared in metrics")
    if spec.mode != fam.mode:
        raise ConfigError(f"family {fam.name}: selection mode {fam.mode} disagrees with the declaration {spec.mode}")
    if spec.exploitable:
        raise ConfigError(f"family {fam.name}: its selection metric {fam.selection_metric} is declared exploitable")
    for p in fam.probes:
        if p.versus != "model" and not p.versus.startswith("baseline:"):
            raise ConfigError(f"family {fam.name}: probe {p.name} versus={p.versus!r} must be 'model' or "
                              "'baseline:<name>'")
