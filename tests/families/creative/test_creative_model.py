"""Model: shapes from seconds, gradients to every selector output, identity TonalityReducer, init, batching."""
from __future__ import annotations

import pytest
import torch

from mlplatform.families.creative.codec import load_codec
from mlplatform.families.creative.family import build_model
from mlplatform.families.creative.model import TemporalCompressor, TonalityReducer
from mlplatform.registry import build_config


def _cfg(**ov):
    return build_config("creative", "debug", ov)


def test_shapes_come_from_seconds_and_the_codec_frame_rate():
    for clip, win in ((2.0, 1.2), (3.0, 1.6)):
        cfg = _cfg(**{"data.clip_s": clip, "data.window_s": win})
        codec = load_codec(quiet=True)
        assert codec.frame_rate == 75.0
        model = build_model(cfg)
        w, t = codec.frames(win), codec.frames(clip)
        assert model.window_frames == w == round(win * 75)
        x = torch.randn(2, codec.dim, t)
        out = model(x, torch.randn(2, codec.dim, t))
        assert out["output"].shape == (2, cfg.model.num_pairs, codec.dim, w)
        assert out["original_input"].shape == out["window_input"].shape == out["output"].shape
        assert out["ratio_input"].shape == (2, cfg.model.num_pairs)


def test_full_preset_is_the_seeds_24s_clip_16s_window_three_pairs():
    cfg = build_config("creative", "full")
    assert (cfg.data.clip_s, cfg.data.window_s, cfg.model.num_pairs, cfg.model.pool_frames) == (24.0, 16.0, 3, 50)
    assert cfg.model.ratio_min < 0.8 and cfg.model.ratio_max >= 1.2  # stretching and compression allowed
    assert (cfg.loss.diversity_weight, cfg.loss.reconstruction_weight) == (0.1, 0.05)
    with pytest.raises(Exception, match="window_s"):
        cfg.override({"model.ratio_max": 2.0})  # 16 s x 2.0 would leave a 24 s clip


def test_initialisation_spread_starts_unit_ratios_half_tonality_windows_inside_clip():
    cfg = _cfg()
    model = build_model(cfg)
    t = 150
    out = model(torch.randn(3, 128, t), torch.randn(3, 128, t))
    assert torch.allclose(out["ratio_input"], torch.ones(3, 3), atol=1e-4)
    assert torch.allclose(out["ratio_target"], torch.ones(3, 3), atol=1e-4)
    assert torch.allclose(out["tonality_strength"], torch.full((3, 3), 0.5))
    frac = out["start_frac_input"][0]
    frac = frac.detach()
    assert frac[0] < 0.1 and abs(float(frac[1]) - 0.5) < 1e-5 and frac[2] > 0.9  # beginning, middle, end
    w = model.window_frames
    # ends never leave the clip, whatever the selector says
    with torch.no_grad():
        model.selector.mlp[-1].bias.normal_(0, 20)
    out = model(torch.randn(3, 128, t), torch.randn(3, 128, t))
    for side in ("input", "target"):
        end = out[f"start_{side}"] + w * out[f"ratio_{side}"]
        assert (out[f"start_{side}"] >= 0).all() and (end <= t + 1e-4).all()


def test_gradient_reaches_every_selector_output():
    cfg = _cfg()
    model = build_model(cfg)
    torch.manual_seed(0)
    x, y = torch.randn(2, 128, 150), torch.randn(2, 128, 150)
    with torch.no_grad():  # non-zero tonality transform so the strength has an effect to learn
        for r in (model.tonality_input, model.tonality_target):
            r.norm.weight.fill_(1.0)
    captured = {}
    orig = model.selector.forward

    def hook(*a, **k):
        prm = orig(*a, **k)
        for key in ("start_input", "start_target", "ratio_input", "ratio_target", "tonality_strength"):
            prm[key].retain_grad()
            captured[key] = prm[key]
        return prm

    model.selector.forward = hook
    out = model(x, y)
    (out["output"].pow(2).mean() + out["original_input"].pow(2).mean()).backward()
    for key, v in captured.items():
        assert v.grad is not None and (v.grad.abs() > 0).all(), f"no gradient reaches {key}: {v.grad}"


def test_compressor_is_differentiable_in_start_and_ratio_and_exact_at_integer_starts():
    comp = TemporalCompressor()
    x = torch.randn(2, 4, 50)
    start = torch.tensor([3.0, 10.0], requires_grad=True)
    ratio = torch.tensor([1.0, 1.0], requires_grad=True)
    out = comp(x, start, ratio, 20)
    assert torch.allclose(out[0], x[0, :, 3:23], atol=1e-5) and torch.allclose(out[1], x[1, :, 10:30], atol=1e-5)
    out.sum().backward()
    assert (start.grad.abs() > 0).all() and (ratio.grad.abs() > 0).all()
    # compression by 2 reads every other frame
    out2 = comp(x, torch.tensor([0.0, 0.0]), torch.tensor([2.0, 2.0]), 20)
    assert torch.allclose(out2[0], x[0, :, 0:40:2], atol=1e-5)


def test_tonality_reducer_is_identity_at_init_and_not_after_training():
    red = TonalityReducer(128, 7)
    x = torch.randn(4, 128, 30)
    for s in (0.0, 0.5, 1.0):
        assert torch.allclose(red(x, torch.full((4,), s)), x, atol=1e-6)
    with torch.no_grad():
        red.norm.weight.fill_(1.0)
    assert not torch.allclose(red(x, torch.full((4,), 1.0)), x, atol=1e-3)  # the test can fail
    assert torch.allclose(red(x, torch.zeros(4)), x, atol=1e-6)  # strength 0 is always the identity


def test_all_pairs_go_through_the_agent_in_one_batched_forward():
    cfg = _cfg()
    model = build_model(cfg)
    calls = []
    model.agent.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    model(torch.randn(2, 128, 150), torch.randn(2, 128, 150))
    assert calls == [2 * cfg.model.num_pairs]


def test_search_space_loads_for_both_presets():
    from mlplatform.registry import get_family
    from mlplatform.tune.search_space import default_path, load_search_space

    fam = get_family("creative")
    for preset in ("debug", "full"):
        for space in ("wide", "narrow"):
            s = load_search_space(default_path("creative"), space, build_config("creative", preset), "creative",
                                  fam.selection_metric, fam.mode)
            assert {"loss.diversity_weight", "loss.reconstruction_weight", "model.ratio_min", "model.ratio_max",
                    "optim.lr"} == set(s.params)
