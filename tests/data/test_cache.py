"""Fingerprinted Parquet caches (mlplatform.data.cache): stable fingerprints, build once, never a
half-written folder that looks complete."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mlplatform.data import cache


def test_fingerprint_is_stable_key_order_free_and_changes_with_content_and_version():
    a = cache.fingerprint({"n": 10, "seed": 1}, "gen-1")
    assert a == cache.fingerprint({"seed": 1, "n": 10}, "gen-1") and len(a) == 16
    assert a != cache.fingerprint({"n": 11, "seed": 1}, "gen-1")  # content changed
    assert a != cache.fingerprint({"n": 10, "seed": 1}, "gen-2")  # generator changed


def test_build_once_builds_then_reuses_the_manifest(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        cache.write_table(pa.table({"x": [1, 2, 3]}), tmp / "train" / "part-00000.parquet")
        cache.write_table(pa.table({"x": [4, 5]}), tmp / "train" / "part-00001.parquet")
        return {"kind": "test", "rows": 5}

    folder = tmp_path / "cache" / cache.fingerprint({"k": 1})
    logs = []
    man = cache.build_once(folder, build, log=logs.append)
    assert man["rows"] == 5 and "build_seconds" in man and "created" in man
    assert json.loads((folder / cache.MANIFEST).read_text()) == man and len(logs) == 1
    assert cache.read_split(folder, "train").column("x").to_pylist() == [1, 2, 3, 4, 5]  # parts in order
    assert cache.build_once(folder, build, log=logs.append) == man and len(calls) == 1  # reused, not rebuilt
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left


def test_a_failed_build_leaves_nothing_that_looks_complete(tmp_path):
    folder = tmp_path / "c" / "abc"

    def build(tmp):
        cache.write_table(pa.table({"x": [1]}), tmp / "train" / "part-00000.parquet")
        raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError, match="generator crashed"):
        cache.build_once(folder, build, log=lambda s: None)
    assert cache.read_manifest(folder) is None and not folder.exists()
    assert list(folder.parent.iterdir()) == []


def test_read_split_names_the_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="'val'"):
        cache.read_split(tmp_path, "val")
