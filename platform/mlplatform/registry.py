"""The explicit family list, ``FAMILIES``, and the one way every job and test makes a config.

Adding a family is its folder plus one line below. Nothing in the package imports this module back
(families import their types from the leaf ``mlplatform.protocol``), so the import graph stays a DAG.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

from mlplatform.config import Config, ConfigError
from mlplatform.families.codec.family import FAMILY as _codec
from mlplatform.families.creative.family import FAMILY as _creative
from mlplatform.families.riscov.family import FAMILY as _riscov
from mlplatform.families.tse.family import FAMILY as _tse
from mlplatform.families.vqvae.family import FAMILY as _vqvae
from mlplatform.protocol import Family, set_family_resolver

FAMILIES: dict[str, Family] = {f.name: f for f in (_riscov, _tse, _creative, _vqvae, _codec)}

# families added for the life of a ``registered`` block (tests); looked up after FAMILIES
_EXTRA: dict[str, Family] = {}


@contextlib.contextmanager
def registered(family: Family) -> Iterator[Family]:
    """Make ``family`` resolvable by name inside the block (in this process only), then forget it.

    The supported way for a test to run a variant of a family (another guard, a crippled model)
    through the real loop without editing ``FAMILIES``.
    """
    if family.name in FAMILIES or family.name in _EXTRA:
        raise ValueError(f"a family named {family.name!r} is already registered")
    _EXTRA[family.name] = family
    try:
        yield family
    finally:
        _EXTRA.pop(family.name, None)


def families() -> dict[str, Family]:
    return {**FAMILIES, **_EXTRA}


def get_family(name: str) -> Family:
    fam = FAMILIES.get(name) or _EXTRA.get(name)
    if fam is None:
        raise ConfigError(f"unknown family {name!r}; choose one of {', '.join(sorted(families()))}")
    return fam


def build_config(family: str, preset: str = "debug", overrides: Iterable[str] | dict[str, Any] = ()) -> Config:
    """Preset + overrides, validated. The one way every job and test makes a config."""
    fam = get_family(family)
    if preset not in fam.presets:
        raise ConfigError(f"unknown preset {preset!r} for family {family}; choose one of {', '.join(fam.presets)}")
    cfg = fam.presets[preset]()
    return cfg.override(overrides)


set_family_resolver(get_family)
