"""The explicit family list, ``FAMILIES``, and the one way every job and test makes a config.

Adding a family is its folder plus one line in ``_MODULES`` below. Nothing in the package imports this module back
(families import their types from the leaf ``mlplatform.protocol``), so the import graph stays a DAG.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from mlplatform.config import Config, ConfigError
from mlplatform.protocol import Family, set_family_resolver

# name -> the module whose ``FAMILY`` it is. A family's module is imported the first time it is asked for:
# importing all five costs ~5 s of CPU per process (vqvae's vector-quantize-pytorch pulls in einx, sympy
# and torch._dynamo), and every Ray Train worker, Tune trainable and job process looks up one family.
_MODULES = {
    "riscov": "mlplatform.families.riscov.family",
    "tse": "mlplatform.families.tse.family",
    "creative": "mlplatform.families.creative.family",
    "vqvae": "mlplatform.families.vqvae.family",
    "codec": "mlplatform.families.codec.family",
}


class _Families(Mapping):
    """The read-only table of families, ``{name: Family}``; iterating lists the names without importing."""

    def __getitem__(self, name: str) -> Family:
        fam = importlib.import_module(_MODULES[name]).FAMILY
        assert fam.name == name, f"{_MODULES[name]} defines family {fam.name!r}, registered as {name!r}"
        return fam

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


FAMILIES: Mapping[str, Family] = _Families()

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
    fam = FAMILIES[name] if name in _MODULES else _EXTRA.get(name)
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
