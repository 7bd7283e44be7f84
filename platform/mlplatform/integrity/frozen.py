"""Frozen validation sets: made once per (config, seed), hashed, saved, reused by every trial.

Validation data some families generate on the fly (tse mixtures) is materialised once under the fixed
validation seed, saved next to the data caches with its SHA-256, and every trial of a sweep reads the
same file, so trials are compared on the same items (a set redrawn per call is too noisy to select
on: the selection metric then moves with the draw, not the model; docs/integrity.md). The key is the ``data`` section plus ``train.val_seed/val_batches/batch_size``: a family's
``val_batches()`` must depend on nothing else (see ``registry.Datasets``).

``train.val_set=fresh`` keeps the old behaviour (redrawn per call, from the training RNG) only so a
test can show that :func:`batches_digest`, checked at every validation, catches it.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

import torch

from mlplatform.config import ConfigError
from mlplatform.data.cache import fingerprint
from mlplatform.protocol import Datasets, Family
from mlplatform.rng import isolated_rng

VERSION = "1"


def feed(h: Any, obj: Any) -> None:
    """Canonical, order-stable traversal: dict keys sorted; tensors by dtype, shape and bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        # reshape: a 0-d tensor (a model's scalar parameter or buffer) cannot be viewed as bytes directly
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            feed(h, v)
    else:
        h.update(repr(obj).encode())


def batches_digest(batches: Iterable[Any]) -> str:
    """SHA-256 of a sequence of batches (what a validation call saw)."""
    h = new_digest()
    for b in batches:
        feed(h, b)
    return h.hexdigest()


def new_digest() -> Any:
    """An incremental digest: ``feed(h, batch)`` per batch gives ``batches_digest`` of the sequence."""
    return hashlib.sha256()




def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _items(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    vals = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for v in vals:
        if isinstance(v, torch.Tensor) and v.dim():
            return int(v.shape[0])
    return 1


def frozen_key(fam: Family, cfg: Any) -> dict[str, Any]:
    t = cfg.train
    return {"family": fam.name, "data": cfg.to_dict().get("data", {}), "val_seed": t.val_seed,
            "val_batches": t.val_batches, "batch_size": t.batch_size}


def frozen_path(fam: Family, cfg: Any) -> Path:
    from mlplatform.paths import repo_root

    return repo_root() / "data" / "frozen_val" / f"{fam.name}-{fingerprint(frozen_key(fam, cfg), VERSION)}.pt"


def freeze_validation(fam: Family, cfg: Any, data: Datasets, log: Any = print) -> tuple[Datasets, dict[str, Any]]:
    """Datasets whose ``val_batches()`` replays the frozen set; plus its record (sha256, path, items)."""
    if cfg.train.val_set == "fresh":
        return data, {"mode": "fresh"}
    path = frozen_path(fam, cfg)
    if path.exists():
        payload = torch.load(path, map_location="cpu", weights_only=True)
        batches = payload["batches"]
        if batches_digest(batches) != payload["sha256"]:
            raise ConfigError(f"frozen validation set {path} does not match its recorded hash (corrupt?); "
                              "delete it to make it again")
    else:
        with isolated_rng(cfg.train.val_seed):
            batches = [_to_cpu(b) for b in itertools.islice(data.val_batches(), cfg.train.val_batches)]
        if not batches:
            raise ConfigError(f"family {fam.name}: the validation split yielded no batch")
        payload = {"batches": batches, "sha256": batches_digest(batches), "key": frozen_key(fam, cfg),
                   "version": VERSION}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: concurrent trials write identical content
        log(f"[val] froze {len(batches)} validation batches -> {path} (sha256 {payload['sha256'][:12]})")
    record = {"mode": "frozen", "sha256": payload["sha256"], "path": str(path), "batches": len(batches),
              "items": sum(_items(b) for b in batches), "bytes": path.stat().st_size}
    frozen = Datasets(train_batches=data.train_batches, val_batches=lambda: iter(batches),
                      info={**data.info, "val_set": record})
    return frozen, record


def log_frozen(logger: Any, record: dict[str, Any], max_mb: float, with_file: bool = True) -> None:
    """Tag the run with the set's hash; attach the file itself when small enough."""
    if logger is None or record.get("mode") != "frozen":
        return
    logger.set_tags({"val_set.sha256": record["sha256"], "val_set.items": record["items"],
                     "val_set.path": record["path"]})
    if with_file and record["bytes"] <= max_mb * 2**20:
        folder = Path(tempfile.mkdtemp(prefix="mlp-val-"))
        shutil.copy2(record["path"], folder / Path(record["path"]).name)
        (folder / "val_set.sha256").write_text(f"{record['sha256']}  {Path(record['path']).name}\n")
        logger.log_artifacts(str(folder), "validation")
