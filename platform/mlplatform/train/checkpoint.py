"""Checkpoints and RNG state.

A checkpoint is a folder holding ``state.pt`` (model, optimizer, scheduler, loop state, schedule state,
every RNG state, the resolved config, the family name and a format version). Everything in it is
plain tensors/containers, so it loads with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mlplatform.rng import get_rng_state

FORMAT_VERSION = 1
STATE_FILE = "state.pt"
# beside the "best" checkpoint: the selection metric per validation item (model and floors), JSON
PER_ITEM_FILE = "per_item.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (missing, other family, other version)."""


# ----------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------

def save_checkpoint(folder: str | Path, *, family: str, cfg: dict, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, scheduler: Any, loop: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "family": family,
        "config": cfg,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loop": loop,
        "rng": get_rng_state(),
    }
    tmp = folder / (STATE_FILE + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(folder / STATE_FILE)  # atomic: a crash never leaves a half-written state.pt
    return folder


def load_checkpoint(path: str | Path, family: str | None = None) -> dict[str, Any]:
    """Load a checkpoint folder (or its state.pt) safely; check family and format version."""
    p = Path(path)
    if p.is_dir():
        p = p / STATE_FILE
    if not p.exists():
        raise CheckpointError(f"checkpoint {path} not found (expected a folder with {STATE_FILE})")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt or foreign file
        raise CheckpointError(f"checkpoint {p} cannot be read safely ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160]})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"checkpoint {p} is not an mlplatform checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {payload['format_version']}; "
                              f"this platform reads version {FORMAT_VERSION}")
    if family is not None and payload["family"] != family:
        raise CheckpointError(f"checkpoint {p} belongs to family {payload['family']!r}, not {family!r}")
    return payload
