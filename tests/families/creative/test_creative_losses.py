"""Losses: ratio diversity by hand, declared bound, reconstruction against the UNCOMPRESSED original."""
from __future__ import annotations

import pytest
import torch

from mlplatform.families.creative.codec import load_codec
from mlplatform.families.creative.family import build_model, compute_loss
from mlplatform.families.creative.losses import (agent_loss_parts, diversity_bounds, mean_over_pairs,
                                                  ratio_diversity_loss, reconstruction_loss)
from mlplatform.protocol import StepContext
from mlplatform.registry import build_config


def test_diversity_matches_hand_computed_values():
    r = torch.tensor([[0.8, 1.0, 1.2]])
    assert float(ratio_diversity_loss(r, r)) == pytest.approx(-0.08, abs=1e-6)  # unbiased var 0.04 per side
    assert float(ratio_diversity_loss(torch.ones(2, 3), torch.ones(2, 3))) == 0.0
    r2 = torch.tensor([[1.0, 1.0, 1.0], [0.8, 1.0, 1.2]])
    assert float(ratio_diversity_loss(r2, torch.ones(2, 3))) == pytest.approx(-0.02, abs=1e-6)  # mean over batch
    with pytest.raises(ValueError):
        ratio_diversity_loss(torch.ones(2, 1), torch.ones(2, 1))


def test_diversity_bound_holds_at_the_extremes():
    lo, hi = diversity_bounds(0.75, 1.5, 3)
    r = torch.tensor([[0.75, 1.5, 1.5]])
    v = float(ratio_diversity_loss(r, torch.tensor([[0.75, 0.75, 1.5]])))
    assert lo <= v <= hi == 0.0


def test_agent_loss_is_zero_for_identical_descriptors_and_rejects_shapes():
    x = torch.randn(3, 8, 20)
    parts = agent_loss_parts(x, x, x)
    for v in parts.values():
        assert torch.allclose(v, torch.zeros(3), atol=1e-5)
    assert (agent_loss_parts(torch.randn(3, 8, 20), x, x)["rhythm"] > 0).all()
    with pytest.raises(ValueError):
        agent_loss_parts(x, x[..., :10], x)


def test_mean_over_pairs_gives_every_pair_a_gradient():
    p = torch.tensor([0.3, 0.1, 0.2], requires_grad=True)
    mean_over_pairs(p).backward()
    assert torch.allclose(p.grad, torch.full((3,), 1 / 3))  # argmin would give [0, 1, 0]


def test_reconstruction_compares_against_the_uncompressed_original_window():
    cfg = build_config("creative", "debug")
    model = build_model(cfg)
    codec = load_codec(quiet=True)
    torch.manual_seed(1)
    x, y = torch.randn(2, 128, 150), torch.randn(2, 128, 150)
    with torch.no_grad():  # ratios far from 1 so compressed and original windows differ
        b = model.selector.mlp[-1].bias.view(3, 5)
        b[:, 2] = torch.tensor([-2.0, 0.5, 2.0])
        out = model(x, y)
    w = model.window_frames
    r = out["ratio_input"]
    assert (r - 1).abs().max() > 0.1
    for i in range(3):  # the reference is the RAW input at the predicted start, read at ratio 1
        s = out["start_input"][0, i]
        ref = model.compressor(x[:1], s.view(1), torch.ones(1), w)[0]
        assert torch.allclose(out["original_input"][0, i], ref, atol=1e-5)
    orig = out["original_input"].flatten(0, 1)
    comp = out["window_input"].flatten(0, 1)  # compressed (and tonality-reduced) window
    assert not torch.allclose(orig, comp, atol=1e-3)
    # an output equal to the original window has zero reconstruction loss; one equal to the compressed has not
    with torch.no_grad():
        assert float(reconstruction_loss(codec.decode, orig[:, :, :8], orig[:, :, :8]).max()) == 0.0
        assert float(reconstruction_loss(codec.decode, comp[:, :, :8], orig[:, :, :8]).min()) > 0.0


def test_compute_loss_declares_and_weights_the_ratio_supervision_terms():
    cfg = build_config("creative", "debug")
    model = build_model(cfg)
    batch = {"input": torch.randn(2, 128, 150), "target": torch.randn(2, 128, 150)}
    ctx = StepContext(cfg, 0, 0, True, {}, torch.device("cpu"), {})
    terms = compute_loss(model, batch, ctx)
    w = terms.weights()
    assert (w["agent"], w["ratio_diversity"], w["reconstruction"]) == (1.0, 0.1, 0.05)
    assert terms.terms["ratio_diversity"].bound.hi == 0.0 and terms.terms["ratio_diversity"].bound.lo < 0
    vals = terms.check(0)
    assert vals["reconstruction"] >= 0 and vals["ratio_diversity"] <= 0
    terms.total.backward()
    assert model.selector.mlp[-1].weight.grad.abs().sum() > 0
    codec = ctx.state["codec"]
    assert all(not p.requires_grad for p in codec.parameters()) and not codec.training  # frozen decoder


def test_compute_loss_rejects_mismatched_latents_before_any_term():
    cfg = build_config("creative", "debug")
    model = build_model(cfg)
    ctx = StepContext(cfg, 0, 0, True, {}, torch.device("cpu"), {})
    with pytest.raises(ValueError, match=r"latents \[B, C, T\]"):
        compute_loss(model, {"input": torch.randn(2, 128, 150), "target": torch.randn(3, 128, 150)}, ctx)
