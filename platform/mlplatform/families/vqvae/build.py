"""Build a vqvae model from a config, or load one from a checkpoint. Separate from ``family`` so the
diagnostics and the floor/ceiling code can load models without importing the Family bundle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mlplatform.families.vqvae import data as D
from mlplatform.families.vqvae.model import HierVQVAE


def build_model(cfg: Any) -> HierVQVAE:
    """All sizes come from the table and the analysis (``data.layout``), none is hard-coded."""
    lay = D.layout(cfg)
    m = cfg.model
    vq = {"decay": m.ema_decay, "kmeans_init": m.kmeans_init, "kmeans_iters": m.kmeans_iters,
          "dead_code_threshold": m.dead_code_threshold}
    return HierVQVAE(list(lay.categories), lay.sizes, [list(d) for d in lay.latent_dims], m.codebook_sizes,
                     m.group_embedding_dim, m.group_hidden_dim, vq, m.quantize)


def load_model(checkpoint: str | Path) -> tuple[Any, torch.nn.Module]:
    """(config, model) from a checkpoint folder, loaded with ``weights_only=True``."""
    from mlplatform.families.vqvae.config import VqvaeConfig
    from mlplatform.train.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint, "vqvae")
    cfg = VqvaeConfig.from_dict(payload["config"])
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    model.eval()
    return cfg, model
