"""Model pieces: dead-code revival, shapes, codebook metrics."""
from __future__ import annotations

import pytest
import torch

from mlplatform.families.vqvae.metrics import codebook_stats, finalize, usage_onehots
from mlplatform.families.vqvae.model import HierVQVAE, make_quantizer


def _utilisation_after_training(threshold: float) -> float:
    """A codebook built to have dead codes: every code far from the data except code 0."""
    torch.manual_seed(0)
    vq = make_quantizer(4, 32, kmeans_init=False, dead_code_threshold=threshold)
    cb = vq._codebook
    with torch.no_grad():
        cb.embed.fill_(50.0)
        cb.embed[:, 0] = 0.0
        cb.embed_avg.copy_(cb.embed)
    vq.train()
    for _ in range(30):
        vq(torch.randn(256, 4))
    vq.eval()
    with torch.no_grad():
        _, idx, _ = vq(torch.randn(4096, 4))
    return idx.unique().numel() / 32


def test_dead_code_revival_raises_utilisation():
    without = _utilisation_after_training(0.0)
    with_revival = _utilisation_after_training(2.0)
    assert without <= 1 / 32 + 1e-9  # the built-in dead codes stay dead without revival
    assert with_revival >= 0.5, with_revival


def test_model_shapes_follow_layout_and_reject_wrong_input():
    m = HierVQVAE(["a", "b"], [3, 5], [[1, 2, 6], [2, 4, 9]], [8, 8, 8], 16, 16,
                  {"decay": 0.9, "kmeans_init": True, "kmeans_iters": 2, "dead_code_threshold": 2.0})
    out = m(torch.randn(32, 8))
    assert out["recon"].shape == (32, 8) and out["indices"].shape == (32, 2, 3) and out["commitment"].shape == (2, 3)
    assert m.coders[1].down[2].out_features == 9
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        m(torch.randn(4, 7))


def test_codebook_metrics_from_per_sample_onehots():
    idx = torch.tensor([[[0, 1, 1]], [[0, 2, 1]], [[0, 3, 1]], [[0, 3, 1]]])  # [B=4, C=1, L=3]
    oh = usage_onehots(idx, ["c"], [4, 4, 4])
    means = {k: float(v.mean()) for k, v in oh.items()}
    means["mse/c"] = 0.5
    out = finalize(means)
    assert out["util/c/L0"] == 0.25 and out["util/c/L1"] == 0.75 and out["util/c/L2"] == 0.25
    assert out["dead_codes"] == 3 + 1 + 3
    assert out["perplexity/c/L0"] == pytest.approx(1.0)
    assert out["perplexity/c/L1"] == pytest.approx(torch.tensor([0.25, 0.25, 0.5]).mul(
        torch.tensor([0.25, 0.25, 0.5]).log()).sum().neg().exp().item())
    assert not any(k.startswith("_u/") for k in out)
    assert codebook_stats({("c", 0): [0.5, 0.5]})["perplexity"] == pytest.approx(2.0)
