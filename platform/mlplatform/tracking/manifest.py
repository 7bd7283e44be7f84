"""``manifest.json``: what a run or a sweep was, so it can be rerun and its result trusted.

Every training run (rank 0) and every sweep parent attaches one: the code (git commit and dirty flag, and a
digest of the package's source, which still identifies the code where there is no ``.git``, e.g. inside a
``ray job submit --working-dir`` copy), the resolved config, its seeds, the data fingerprint and the
frozen validation set's hash, the versions of the packages that decide the numbers, and the device and
driver. ``jobs/rerun.py`` reads it back. Two parts: the driver's (``driver_part``: command, code, data) and
the worker's (``complete``: config, frozen set, device), because only the driver sees the repository and
only rank 0 sees the device it trained on.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import os
import platform as _platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

VERSION = 1
FILE = "manifest.json"
PACKAGES = ("torch", "ray", "mlflow", "optuna", "numpy", "scipy", "pyarrow", "scikit-learn")


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty", "branch"}`` of the repository at ``root`` (default: the one holding this code,
    not ``MLPLATFORM_HOME``, which only says where data and stores live); ``commit`` None (with the reason)
    where there is no repository or no git. ``dirty``: tracked files differ from the commit (untracked files,
    e.g. results, do not change what ran)."""
    root = root or Path(__file__).resolve().parents[3]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError) as e:
        why = "git not installed" if isinstance(e, OSError) else f"no git repository at {root}"
        return {"commit": None, "dirty": None, "branch": None, "reason": why}
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
    except (OSError, subprocess.SubprocessError):
        dirty, branch = None, None
    return {"commit": commit, "dirty": dirty, "branch": branch}


def source_digest(package_dir: Path | None = None) -> str:
    """SHA-256 over the package's ``*.py`` files (relative path and bytes, in sorted order)."""
    package_dir = package_dir or Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(package_dir.rglob("*.py")):
        h.update(str(f.relative_to(package_dir)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def mask(text: str) -> str:
    """A URL's password as ``***`` (``postgresql://bob:secret@host/db`` -> ``postgresql://bob:***@host/db``)."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", text)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": _platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def driver_part(kind: str, family: str, preset: str, overrides: list[str], data: Mapping[str, Any] | None,
                **extra: Any) -> dict[str, Any]:
    """What the job's driver knows: the command, the code, the preset and overrides, the data it prepared."""
    return {"manifest_version": VERSION, "kind": kind, "family": family, "preset": preset,
            "overrides": list(overrides), "command": [Path(sys.argv[0]).name, *map(mask, sys.argv[1:])],
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git": git_state(), "source_sha256": source_digest(), "data": data_identity(data),
            "versions": versions(), "driver_host": _platform.node(), **extra}


def data_identity(prepared: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The identifying part of a family's ``prepare_data`` result (fingerprint, version, path, counts);
    large values (lists of files, per-item tables) are left out."""
    if not prepared:
        return None
    keep = {}
    for k, v in prepared.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            keep[k] = v
        elif isinstance(v, dict) and len(json.dumps(v, default=str)) <= 2000:
            keep[k] = v
    return keep


def frozen_identity(frozen: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The frozen validation set's identity (its hash and size; not its path, which is machine-local)."""
    return None if not frozen else {k: frozen.get(k) for k in ("mode", "sha256", "items", "batches")}


def seeds(flat_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every config key that is a seed (``train.seed``, ``data.seed``, ``train.val_seed``, ...)."""
    return {k: v for k, v in flat_cfg.items() if k.rsplit(".", 1)[-1].endswith("seed")}


def device_part(device: Any, world: int) -> dict[str, Any]:
    """The device rank 0 trained on, and the accelerator's driver when there is one."""
    import torch

    out: dict[str, Any] = {"torch_device": str(device), "world_size": world, "host": _platform.node(),
                           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "cuda": torch.version.cuda, "deterministic_algorithms":
                               torch.are_deterministic_algorithms_enabled()}
    if getattr(device, "type", "") == "cuda" and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cudnn"] = torch.backends.cudnn.version()
        out["gpu_driver"] = _nvidia_driver()
    return out


def _nvidia_driver() -> str | None:
    try:
        import pynvml  # nvidia-ml-py, the gpu extra

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:  # noqa: BLE001 - no NVML: ask the tool
        try:
            return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20).stdout.split("\n")[0] or None
        except (OSError, subprocess.SubprocessError):
            return None


def complete(driver: Mapping[str, Any], family: str, cfg: Any, frozen: Mapping[str, Any] | None, device: Any,
             world: int) -> dict[str, Any]:
    """The run's whole manifest: the driver's part (or a fresh one where a caller gave none, e.g. a test
    calling the loop directly) plus the resolved config, its seeds, the frozen set and the device."""
    from mlplatform.config import flatten

    base = dict(driver) if driver else driver_part("train", family, "", [], None)
    return {**base, "config": cfg.to_dict(), "seeds": seeds(flatten(cfg)), "frozen_val": frozen_identity(frozen),
            "device": device_part(device, world)}


def sweep_manifest(spec: Mapping[str, Any], family: str, base_cfg: Any, prepared: Mapping[str, Any] | None,
                   frozen: Mapping[str, Any] | None) -> dict[str, Any]:
    """A sweep parent's manifest: the sweep as asked (its spec, search seed included), the trials' base config,
    the code, the data and the frozen set every trial is scored on. Each trial carries its own as well."""
    from mlplatform.config import flatten

    # the stores' URLs may hold a password: the tracking URI is dropped (the run knows its store), others masked
    spec = {k: (mask(v) if isinstance(v, str) else v) for k, v in spec.items() if k != "tracking_uri"}
    base = driver_part("sweep", family, str(spec.get("preset", "")), list(spec.get("overrides", [])), prepared,
                       sweep=spec)
    return {**base, "config": base_cfg.to_dict(), "seeds": {**seeds(flatten(base_cfg)), "sweep.seed": spec.get("seed")},
            "frozen_val": frozen_identity(frozen)}


def dumps(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
