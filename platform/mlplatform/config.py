"""Typed configs with one dotted ``key=value`` override syntax.

A family config is a dataclass whose fields are *sections* (``model``, ``loss``, ``data``, ``train``,
``optim``), each itself a dataclass of typed leaves. Leaves are declared with :func:`F`, which carries
the range/choice constraints, so every error can name the key and what is allowed.

The same path is used by the CLI (``--set loss.lam_cov=0.5``), by search spaces (their keys are dotted
config keys) and by tests, and it validates before any Ray work starts.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A bad config key or value. Its message is one line and names the key."""


def F(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
      le: float | None = None, lt: float | None = None, help: str = "",
      default_factory: Any = dataclasses.MISSING) -> Any:
    """A config leaf with optional numeric bounds (``ge``/``gt``/``le``/``lt``) and a help string."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A nested config section (a dataclass) with its defaults."""
    return field(default_factory=cls)


# ----------------------------------------------------------------------------------------------
# type handling
# ----------------------------------------------------------------------------------------------

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Turn ``value`` (a CLI string or a typed value) into ``tp`` or raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, str) and value not in choices:
            # allow typed literals given as strings on the CLI ("true", "3")
            for c in choices:
                if str(c) == value:
                    return c
        if value in choices:
            return value
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, choices))}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: {value!r} is not a bool (use true or false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not an int")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a float")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: {value!r} is not a string")
    if origin in (dict, list, tuple) or tp in (dict, list, tuple):
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)  # safe: literals only, never code
            except yaml.YAMLError as e:
                raise ConfigError(f"{key}: cannot parse {value!r} as {_type_name(tp)} ({e.__class__.__name__})")
        want = origin or tp
        if want is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, want):
            raise ConfigError(f"{key}: {value!r} is not a {want.__name__}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _check_bounds(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    ge, gt, le, lt = meta.get("ge"), meta.get("gt"), meta.get("le"), meta.get("lt")
    if value != value:  # NaN
        raise ConfigError(f"{key}: NaN is not allowed")
    ok = ((ge is None or value >= ge) and (gt is None or value > gt)
          and (le is None or value <= le) and (lt is None or value < lt))
    if not ok:
        lo = f"[{ge}" if ge is not None else (f"({gt}" if gt is not None else "(-inf")
        hi = f"{le}]" if le is not None else (f"{lt})" if lt is not None else "inf)")
        raise ConfigError(f"{key}: {value!r} is out of range; allowed {lo}, {hi}")


# ----------------------------------------------------------------------------------------------
# the base class every family config derives from
# ----------------------------------------------------------------------------------------------

@dataclass
class Config:
    """Base for family configs. Sections are dataclass fields; leaves are typed and bounded."""

    def check(self) -> None:
        """Cross-field rules of a family (override in the family config). Raise ConfigError."""

    # -- access --------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(flatten(self).keys())

    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            if not is_dataclass(obj) or part not in {f.name for f in fields(obj)}:
                raise ConfigError(unknown_key_message(self, dotted))
            obj = getattr(obj, part)
        return obj

    def override(self, assignments: typing.Iterable[str] | typing.Mapping[str, Any]) -> "Config":
        """Return a validated copy with ``key=value`` strings (or a {key: value} mapping) applied."""
        new = copy.deepcopy(self)
        items = assignments.items() if isinstance(assignments, typing.Mapping) else map(_split_assignment, assignments)
        for key, value in items:
            _set(new, key, value)
        validate(new)
        return new

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: typing.Mapping[str, Any]) -> "Config":
        """Rebuild a config from :meth:`to_dict` output (e.g. from a checkpoint), validating it.

        Walks the config's own structure, so a dict-valued leaf stays one value; a key the config does
        not have is an error, as with any override."""
        base = cls()
        known = _leaf_paths(base)
        items: dict[str, Any] = {}

        def walk(d: typing.Mapping[str, Any], prefix: str) -> None:
            for k, v in d.items():
                key = f"{prefix}{k}"
                if isinstance(v, dict) and key not in known:
                    walk(v, key + ".")
                else:
                    items[key] = v
        walk(data, "")
        return base.override(items)


def _split_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. loss.lam_cov=0.5)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def unknown_key_message(cfg: Config, dotted: str) -> str:
    import difflib
    keys = list(flatten(cfg).keys())
    close = difflib.get_close_matches(dotted, keys, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    sections = sorted({k.split('.')[0] for k in keys})
    return f"unknown config key {dotted!r}{hint} (sections: {', '.join(sections)}; `--list-keys` shows all)"


def _set(cfg: Config, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    obj: Any = cfg
    for part in parts[:-1]:
        names = {f.name for f in fields(obj)} if is_dataclass(obj) else set()
        if part not in names or not is_dataclass(getattr(obj, part)):
            raise ConfigError(unknown_key_message(cfg, dotted))
        obj = getattr(obj, part)
    leaf = parts[-1]
    flds = {f.name: f for f in fields(obj)} if is_dataclass(obj) else {}
    if leaf not in flds or is_dataclass(getattr(obj, leaf)):
        raise ConfigError(unknown_key_message(cfg, dotted))
    tp = _hints(type(obj))[leaf]
    coerced = _coerce(dotted, value, tp)
    _check_bounds(dotted, coerced, flds[leaf].metadata)
    setattr(obj, leaf, coerced)


def validate(cfg: Config) -> Config:
    """Check every leaf's type and bounds, then the family's cross-field rules."""
    def walk(obj: Any, prefix: str) -> None:
        hints = _hints(type(obj))
        for f in fields(obj):
            val = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if is_dataclass(val):
                walk(val, key + ".")
                continue
            coerced = _coerce(key, val, hints[f.name])
            _check_bounds(key, coerced, f.metadata)
            setattr(obj, f.name, coerced)
    walk(cfg, "")
    _check_schedule(cfg)
    cfg.check()
    return cfg


def _check_schedule(cfg: Config) -> None:
    """A per-step schedule needs the run's step count up front (a full pass has no fixed length)."""
    optim, train = getattr(cfg, "optim", None), getattr(cfg, "train", None)
    if isinstance(optim, OptimSection) and isinstance(train, TrainSection) and optim.schedule_unit == "step" \
            and train.steps_per_epoch == 0:
        raise ConfigError("optim.schedule_unit=step needs train.steps_per_epoch > 0 (the schedule's length is "
                          "epochs x steps_per_epoch)")


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} for every leaf, in declaration order."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        val = getattr(cfg, f.name)
        if is_dataclass(val):
            out.update(flatten(val, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = val
    return out


def _leaf_paths(cfg: Any) -> set[str]:
    return set(flatten(cfg).keys())


def describe(cfg: Config) -> list[str]:
    """Human-readable lines ``key = value  (type, range) help`` for ``--list-keys``."""
    lines = []

    def walk(obj: Any, prefix: str) -> None:
        hints = _hints(type(obj))
        for f in fields(obj):
            val = getattr(obj, f.name)
            if is_dataclass(val):
                walk(val, f"{prefix}{f.name}.")
                continue
            m = f.metadata
            rng = [f"{op} {m[op]}" for op in ("ge", "gt", "le", "lt") if m.get(op) is not None]
            extra = f" [{', '.join(rng)}]" if rng else ""
            hlp = f"  # {m['help']}" if m.get("help") else ""
            lines.append(f"{prefix}{f.name} = {val!r}  ({_type_name(hints[f.name])}{extra}){hlp}")
    walk(cfg, "")
    return lines


# ----------------------------------------------------------------------------------------------
# sections shared by every family (families subclass these to add their own keys)
# ----------------------------------------------------------------------------------------------

@dataclass
class TrainSection:
    epochs: int = F(20, ge=1, help="epochs to train")
    steps_per_epoch: int = F(0, ge=0, help="0 = one full pass over the training split")
    batch_size: int = F(32, ge=1)
    grad_clip: float = F(1.0, ge=0.0, help="max grad norm; 0 disables clipping")
    val_every: int = F(1, ge=1, help="validate every N epochs (and always after the last)")
    val_batches: int = F(8, ge=1, help="validation batches per call (fixed items, fixed seed)")
    val_seed: int = F(1234, help="seed used by every validation call; training RNG is restored after")
    seed: int = F(0)
    early_stop_patience: int = F(0, ge=0, help="stop after N validations without improvement; 0 = off")
    guard_patience: int = F(3, ge=1, help="validations a guard may be violated before it fires")
    guard_action: Literal["flag", "stop"] = F("flag", help="flag the run, or stop it (sweeps use stop)")
    amp: Literal["auto", "off", "bf16", "fp16"] = F("auto", help="autocast: auto = bf16 on a GPU, off on a CPU; "
                                                              "bf16 = also on a CPU (PyTorch's CPU autocast)")
    num_threads: int = F(0, ge=0, help="torch threads per worker; 0 = the CPUs Ray gave this worker")
    # selection contract (mlplatform.integrity.contracts): empty = the family's declared selection metric
    selection_metric: str = F("", help="checkpoint-selection and sweep metric, e.g. val/nmse_blend; empty = the "
                                       "family's; refused if undeclared, exploitable or of the wrong direction")
    selection_mode: Literal["", "min", "max"] = F("", help="direction of selection_metric; empty = the declared one")
    # loss-integrity checks at validation (mlplatform.integrity)
    val_set: Literal["frozen", "fresh"] = F("frozen", help="frozen: validation items made once per (config, seed), "
                                            "hashed and reused by every trial; fresh: redrawn per call (the noisy "
                                            "selection it causes is kept only to test that the alarm catches it)")
    frozen_val_artifact_mb: float = F(64.0, ge=0.0, help="log the frozen validation set as an MLflow artifact "
                                                         "when smaller than this (its hash is always logged)")
    integrity: bool = F(True, help="score baselines, floors, ceilings and reliance probes at every validation")
    final_eval: bool = F(True, help="at the run's end, score the best checkpoint with the family's slow metrics "
                                    "(test/*; PESQ and STOI for tse), where the family has them")
    alarms: bool = F(True, help="exploit alarms: divergence, reliance collapse, validation set changed, below the floor")
    alarm_window: int = F(3, ge=2, help="validations a loss component must keep falling over")
    alarm_patience: int = F(1, ge=1, help="consecutive validations an alarm condition must hold before it fires")
    alarm_warmup_epochs: int = F(2, ge=0, help="epochs before divergence/reliance alarms are checked")
    alarm_metric_tol: float = F(0.01, ge=0.0, help="relative worsening of the selection metric (or a margin) "
                                                   "over the window that counts as 'worse'")
    alarm_min_reliance: float = F(0.0, help="a probe's val/reliance_<name> at or below this is a collapse signal")
    alarm_min_clip_spread: float = F(1e-3, ge=0.0, help="alarm:selector_collapse when val/clip_spread (how much a "
                                                        "model's input-driven choices differ between items) stays "
                                                        "at or below this; 0 = off")
    inject_nan_at_step: int = F(-1, ge=-1, help="fault injection for tests/drills: make the loss NaN at this "
                                                "optimizer step; -1 = never")
    inject_crash_at_step: int = F(-1, ge=-1, help="fault drill: the worker process dies at this optimizer step, "
                                                  "once (see inject_crash_marker); -1 = never")
    inject_crash_marker: str = F("", help="file created when the crash drill fires, so a retried worker "
                                          "does not crash again")
    inject_pause_after_log_epoch: int = F(0, ge=0, help="fault drill: after epoch N's metrics reach MLflow and "
                                                        "before its checkpoint is reported, rank 0 writes its pid "
                                                        "to inject_crash_marker and waits to be killed, unless "
                                                        "the marker exists; 0 = never")


@dataclass
class OptimSection:
    name: Literal["adamw", "adam", "sgd"] = F("adamw")
    lr: float = F(1e-3, gt=0.0, le=1.0)
    weight_decay: float = F(0.0, ge=0.0)
    scheduler: Literal["none", "cosine"] = F("cosine", help="LR schedule (stepped per optim.schedule_unit)")
    min_lr_ratio: float = F(0.05, ge=0.0, le=1.0, help="cosine floor as a fraction of lr")
    schedule_unit: Literal["epoch", "step"] = F("epoch", help="cosine (and warmup) advance per epoch, or per "
                                                              "optimizer step (needs train.steps_per_epoch > 0)")
    warmup: int = F(0, ge=0, help="linear LR warmup length, in optim.schedule_unit units; 0 = none")
    beta1: float = F(0.9, ge=0.0, lt=1.0, help="Adam/AdamW first-moment decay")
    beta2: float = F(0.999, ge=0.0, lt=1.0, help="Adam/AdamW second-moment decay")
