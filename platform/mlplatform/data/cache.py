"""Fingerprinted Parquet datasets with a manifest, written once (by Ray tasks) and reused.

Layout: ``<root>/<fingerprint>/<split>/part-XXXXX.parquet`` + ``<root>/<fingerprint>/manifest.json``.
A folder is built under a temporary name and renamed into place, so a crash or two concurrent
builders never leave a half-written cache that looks complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"


def ray_if_up() -> Any:
    """Ray's module when this process is connected to a Ray cluster, else None: the data builders then run
    here, one step after another. None also when Ray is not installed, so a cache made elsewhere is read
    (and a small one rebuilt) on a bare GPU machine (``benchmarks/gpu.py --prepared``)."""
    try:
        import ray
    except ImportError:
        return None
    return ray if ray.is_initialized() else None


def fingerprint(obj: Any, version: str = "1") -> str:
    """A short stable hash of a JSON-able description of the content (config + generator version)."""
    blob = json.dumps({"v": version, "obj": obj}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    p = Path(folder) / MANIFEST
    if not p.exists():
        return None
    return json.loads(p.read_text())


def write_table(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> int:
    """Write one part file; ``row_group_size`` rows per row group (the unit a streaming reader fetches)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return table.num_rows


def build_once(folder: str | Path, build: Callable[[Path], dict[str, Any]], *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Return the manifest of ``folder``, building it with ``build(tmp_folder) -> manifest`` if missing."""
    folder = Path(folder)
    man = read_manifest(folder)
    if man is not None:
        return man
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    try:
        manifest = build(tmp)
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        try:
            os.rename(tmp, folder)
        except OSError:
            if read_manifest(folder) is None:  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    man = read_manifest(folder)
    assert man is not None
    log(f"[data] built {folder} in {man['build_seconds']}s")
    return man


def read_split(folder: str | Path, split: str) -> pa.Table:
    files = sorted((Path(folder) / split).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files for split {split!r} in {folder}")
    return pa.concat_tables([pq.read_table(f) for f in files])
