"""The registry: an explicit literal list, a leaf protocol module, and a supported way to add a family."""
import dataclasses
import json
import subprocess
import sys

import pytest

from mlplatform.config import ConfigError
from mlplatform.protocol import Family
from mlplatform.registry import FAMILIES, build_config, families, get_family, registered


def test_families_are_the_literal_list():
    assert sorted(FAMILIES) == ["codec", "creative", "riscov", "tse", "vqvae"]
    assert all(isinstance(f, Family) and f.name == n for n, f in FAMILIES.items())


def test_looking_up_one_family_imports_only_that_family():
    # every Ray worker and job process looks up one family; importing all five cost ~5 s of CPU each
    code = ("import json, sys; from mlplatform.registry import FAMILIES, get_family; "
            "assert sorted(FAMILIES) and get_family('riscov').name == 'riscov'; "
            "print(json.dumps([sorted({m.split('.')[2] for m in sys.modules if m.startswith('mlplatform.families.')}), "
            "'vector_quantize_pytorch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [["riscov"], False], out


def test_registered_adds_a_family_for_the_block_only():
    variant = dataclasses.replace(get_family("riscov"), name="riscov_variant")
    with registered(variant):
        assert get_family("riscov_variant") is variant and "riscov_variant" in families()
        cfg = build_config("riscov_variant", "debug")
        assert cfg.train.epochs == build_config("riscov", "debug").train.epochs
    assert "riscov_variant" not in families()
    with pytest.raises(ConfigError, match="unknown family 'riscov_variant'"):
        get_family("riscov_variant")


def test_registered_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        with registered(get_family("tse")):
            pass


def test_a_family_module_imports_without_the_registry():
    # the protocol is a leaf: importing a family must not pull the registry (the old 9-module cycle)
    code = ("import sys, mlplatform.families.riscov.family as f; "
            "assert 'mlplatform.registry' not in sys.modules, 'registry imported'; print(f.FAMILY.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "riscov"
