"""vqvae losses: optimum at identical inputs, reductions, shape checks, and the LossTerms compute_loss builds."""
from __future__ import annotations

import pytest
import torch

from mlplatform.families.vqvae.family import compute_loss
from mlplatform.families.vqvae.losses import commitment, per_category_mse, per_sample_mse
from mlplatform.families.vqvae.model import HierVQVAE
from mlplatform.protocol import StepContext
from mlplatform.registry import build_config
from mlplatform.train.terms import NONNEG


def test_losses_optimum_reduction_and_shapes():
    x = torch.randn(6, 5)
    assert per_sample_mse(x, x).abs().max() == 0
    y = x + 1.0
    assert torch.allclose(per_sample_mse(y, x), torch.ones(6))
    pc = per_category_mse(y.clone().index_fill_(1, torch.tensor([0, 1]), 0) + x * 0, x, [2, 3])
    assert pc.shape == (6, 2)
    # the overall MSE is the feature-weighted mean of the per-category ones
    z = torch.randn(6, 5)
    pc = per_category_mse(z, x, [2, 3])
    assert torch.allclose((pc[:, 0] * 2 + pc[:, 1] * 3) / 5, per_sample_mse(z, x), atol=1e-6)
    with pytest.raises(ValueError):
        per_sample_mse(x, x[:, :4])
    with pytest.raises(ValueError):
        per_category_mse(x, x, [2, 2])
    with pytest.raises(ValueError):
        commitment(torch.ones(3))


def test_compute_loss_terms_are_nonneg_weighted_from_the_config_and_reject_wrong_input():
    cfg = build_config("vqvae", "debug", ["loss.recon_weight=2.0", "loss.commitment_weight=0.3"])
    torch.manual_seed(0)
    model = HierVQVAE(["a", "b"], [3, 5], [[1, 2, 6], [2, 4, 9]], [8, 8, 8], 16, 16,
                      {"decay": 0.9, "kmeans_init": True, "kmeans_iters": 2, "dead_code_threshold": 2.0})
    ctx = StepContext(cfg, 0, 0, False, {}, torch.device("cpu"), {})
    terms = compute_loss(model, {"x": torch.randn(32, 8)}, ctx)
    assert terms.weights() == {"recon": 2.0, "commitment": 0.3}
    assert all(t.bound == NONNEG for t in terms.terms.values())
    vals = terms.check(0)
    assert vals["recon"] > 0 and vals["commitment"] >= 0
    assert vals["loss"] == pytest.approx(2.0 * vals["recon"] + 0.3 * vals["commitment"], rel=1e-6)
    assert terms.outputs["recon"].shape == (32, 8)  # validation reuses this forward
    with pytest.raises(ValueError):
        compute_loss(model, {"x": torch.randn(4, 7)}, ctx)
