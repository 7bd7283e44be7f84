"""Pareto (multi-objective) sweeps: ``jobs/hpo.py --objectives METRIC:MODE,METRIC:MODE``.

Optuna's multi-objective TPE sampler (Ray's ``OptunaSearch(metric=[...], mode=[...])``) proposes the trials;
a trial's objective vector is its last validation's values (what Optuna is told when the trial ends).
ASHA compares trials on one metric, and pruning on the first objective would cut exactly the trials that
trade it for the second: a Pareto sweep runs FIFO (every trial to its last epoch or its plateau stop).

Objectives are checked against the family's metric contracts before Ray starts: a declared metric, the
contract's direction, and no exploitable metric unless the family declares the pair (``Family.objectives``:
its partner objective is what keeps the exploit from paying, e.g. tse's target-absent suppression, which
silence maximises, beside TP SI-SDRi, which silence ruins). ``--objectives pair`` takes the declared pair.
"""
from __future__ import annotations

from typing import Any

from mlplatform.config import ConfigError

PAIR = "pair"  # --objectives pair: the family's declared objectives


def parse_objectives(fam: Any, text: str) -> list[tuple[str, str]]:
    """``"val/a:min,val/b:max"`` (or ``"pair"``) -> ``[("val/a", "min"), ("val/b", "max")]``, checked."""
    declared = [_split(fam, o) for o in fam.objectives]
    if text.strip() == PAIR:
        if not declared:
            raise ConfigError(f"--objectives pair: family {fam.name} declares no objective pair")
        objs = declared
    else:
        objs = [_split(fam, o) for o in text.split(",") if o.strip()]
    if len(objs) < 2:
        raise ConfigError(f"--objectives needs at least two METRIC:MODE entries, got {text!r} "
                          f"(family {fam.name}'s pair: {','.join(fam.objectives) or 'none declared'})")
    names = [m for m, _ in objs]
    if len(set(names)) != len(names):
        raise ConfigError(f"--objectives names a metric twice: {text!r}")
    for metric, mode in objs:
        spec = fam.metrics.get(metric)
        if spec is None:
            raise ConfigError(f"--objectives: {metric!r} is not a declared metric of family {fam.name}; "
                              f"declared: {', '.join(sorted(fam.metrics))}")
        if mode != spec.mode:
            raise ConfigError(f"--objectives: {metric} is {spec.mode}imised by its contract ({spec.meaning}); "
                              f"got {mode!r}")
        if spec.exploitable and set(objs) != set(declared):
            raise ConfigError(f"--objectives: {metric} is exploitable ({spec.exploitable}); it is only allowed in "
                              f"family {fam.name}'s declared pair {','.join(fam.objectives) or '(none)'}")
    if all(fam.metrics[m].exploitable for m in names):
        raise ConfigError(f"--objectives: every objective is exploitable ({', '.join(names)}); one must not be")
    return objs


def _split(fam: Any, entry: str) -> tuple[str, str]:
    metric, sep, mode = entry.strip().rpartition(":")
    if not sep or not metric or mode not in ("min", "max"):
        raise ConfigError(f"--objectives: {entry.strip()!r} is not METRIC:MODE with MODE min or max "
                          f"(e.g. {','.join(fam.objectives) or 'val/a:min,val/b:max'})")
    return metric if metric.startswith("val/") else f"val/{metric}", mode


def format_objectives(objectives: list[tuple[str, str]]) -> str:
    return ",".join(f"{m}:{d}" for m, d in objectives)


def front(points: dict[str, list[float]], modes: list[str]) -> list[str]:
    """The ids of the non-dominated points (Optuna's ``study.best_trials`` on a study rebuilt from them)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(directions=["minimize" if d == "min" else "maximize" for d in modes])
    finally:
        optuna.logging.set_verbosity(verbosity)
    for tid, vals in points.items():
        study.add_trial(optuna.trial.create_trial(values=list(vals), user_attrs={"trial_id": tid}))
    return [t.user_attrs["trial_id"] for t in study.best_trials]
