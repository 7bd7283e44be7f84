"""Search-space YAML -> Ray Tune domains, validated against the family's config before any Ray work.

```yaml
family: riscov
metric: val/nmse_blend
mode: min
spaces:
  wide:
    loss.lam_cov_pred: {type: loguniform, low: 0.01, high: 0.5}
```
Types: ``uniform``, ``loguniform``, ``int`` (inclusive bounds), ``choice`` (``values: [...]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import Config, ConfigError

TYPES = ("uniform", "loguniform", "int", "choice")


@dataclass
class SearchSpace:
    family: str
    metric: str
    mode: str
    name: str
    params: dict[str, dict[str, Any]]  # key -> validated spec
    path: str

    def tune_domains(self) -> dict[str, Any]:
        from ray import tune

        out = {}
        for key, s in self.params.items():
            t = s["type"]
            if t == "uniform":
                out[key] = tune.uniform(s["low"], s["high"])
            elif t == "loguniform":
                out[key] = tune.loguniform(s["low"], s["high"])
            elif t == "int":
                out[key] = tune.randint(s["low"], s["high"] + 1)  # randint's upper bound is exclusive
            else:
                out[key] = tune.choice(list(s["values"]))
        return out


def default_path(family: str) -> Path:
    from mlplatform.paths import repo_root

    here = Path(__file__).resolve().parents[3] / "search_spaces" / f"{family}.yaml"
    return here if here.exists() else repo_root() / "search_spaces" / f"{family}.yaml"


def load_search_space(path: str | Path, space: str, cfg: Config, family: str,
                      selection_metric: str | None = None, selection_mode: str | None = None) -> SearchSpace:
    """Load and validate one named space. Every error is one line naming the file and key."""
    p = Path(path)
    where = str(p)
    if not p.exists():
        raise ConfigError(f"search space file {where} not found")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}: malformed YAML{at} ({getattr(e, 'problem', e)})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with keys family, metric, mode, spaces")
    missing = [k for k in ("family", "metric", "mode", "spaces") if k not in doc]
    if missing:
        raise ConfigError(f"{where}: missing top-level key(s) {', '.join(missing)}")
    if doc["family"] != family:
        raise ConfigError(f"{where}: is for family {doc['family']!r}, not {family!r}")
    if doc["mode"] not in ("min", "max"):
        raise ConfigError(f"{where}: mode must be min or max, got {doc['mode']!r}")
    if selection_metric is not None and (doc["metric"] != selection_metric or doc["mode"] != selection_mode):
        raise ConfigError(f"{where}: metric {doc['metric']} ({doc['mode']}) disagrees with the family's "
                          f"checkpoint-selection metric {selection_metric} ({selection_mode}); they must match")
    spaces = doc["spaces"]
    if not isinstance(spaces, dict) or not spaces:
        raise ConfigError(f"{where}: spaces must be a non-empty mapping of named spaces")
    if space not in spaces:
        raise ConfigError(f"{where}: no space named {space!r}; choose one of {', '.join(spaces)}")
    params = spaces[space]
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where}: spaces.{space} must be a non-empty mapping of config keys")
    valid_keys = set(cfg.keys())
    out: dict[str, dict[str, Any]] = {}
    for key, spec in params.items():
        at = f"{where}: spaces.{space}.{key}"
        if key not in valid_keys:
            from mlplatform.config import unknown_key_message
            raise ConfigError(f"{where}: spaces.{space}: {unknown_key_message(cfg, key)}")
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise ConfigError(f"{at}: needs type one of {', '.join(TYPES)}")
        t = spec["type"]
        if t == "choice":
            vals = spec.get("values")
            if not isinstance(vals, list) or not vals:
                raise ConfigError(f"{at}: choice needs a non-empty list 'values'")
            probe = vals
        else:
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"{at}: {t} needs low and high")
            lo, hi = spec["low"], spec["high"]
            if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or isinstance(lo, bool):
                raise ConfigError(f"{at}: low and high must be numbers")
            if not lo < hi:
                raise ConfigError(f"{at}: low ({lo}) must be < high ({hi})")
            if t == "loguniform" and lo <= 0:
                raise ConfigError(f"{at}: loguniform needs low > 0")
            if t == "int" and (int(lo) != lo or int(hi) != hi):
                raise ConfigError(f"{at}: int bounds must be integers")
            probe = [lo, hi]
        for v in probe:  # every edge of the space must be a valid config value
            try:
                cfg.override({key: v})
            except ConfigError as e:
                raise ConfigError(f"{where}: spaces.{space}: {e}") from None
        out[key] = dict(spec)
    return SearchSpace(family, doc["metric"], doc["mode"], space, out, where)
