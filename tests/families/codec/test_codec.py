"""codec family: loss properties, presets, a debug run through the shared loop, and the creative loader."""
from __future__ import annotations

import math

import pytest
import torch

from mlplatform.families.codec import losses as L
from mlplatform.families.codec.config import PRESETS
from mlplatform.families.codec.model import build_from_arch, build_model


def _wave(b: int = 2, n: int = 4800, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 24000
    return (torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.randn(b, n, generator=g))[:, None]


def test_identical_inputs_give_the_optimum():
    x = _wave()
    assert float(L.l1_wave(x, x)) == 0.0
    assert float(L.multi_res_stft(x, x, (256, 512))) == 0.0
    assert torch.all(L.mel_distance(x, x, 24000) == 0)
    assert torch.all(L.si_snr(x, x) > 60)
    assert float(L.si_snr_loss(x, x)) <= -60 and float(L.si_snr_loss(x, x)) >= -L.SI_SNR_LIMIT_DB


def test_si_snr_forms_agree_and_are_scale_invariant():
    x, y = _wave(seed=0), _wave(seed=1)
    assert torch.allclose(L.si_snr(y, x), L.si_snr(3.0 * y, x), atol=1e-4)
    assert abs(float(-L.si_snr_loss(y, x)) - float(L.si_snr(y, x).mean())) < 1e-3
    noise = torch.randn_like(x)
    assert -L.SI_SNR_LIMIT_DB <= float(L.si_snr_loss(noise, x)) <= L.SI_SNR_LIMIT_DB


def test_wrong_shapes_raise():
    with pytest.raises(ValueError):
        L.l1_wave(torch.zeros(2, 1, 10), torch.zeros(2, 1, 11))
    with pytest.raises(ValueError):
        L.si_snr(torch.zeros(2, 2, 10), torch.zeros(2, 2, 10))


def test_lowpass_keeps_the_band_and_removes_the_rest():
    t = torch.arange(24000) / 24000
    low, high = torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 9000 * t)
    y = L.lowpass((low + high)[None, None], 24000, 4800.0)[0, 0]
    assert float((y - low).abs().max()) < 1e-2 and float((y - low).pow(2).mean()) < 1e-6


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_at_75_frames_per_second(preset):
    cfg = PRESETS[preset]()
    net = build_model(cfg.override({"model.n_filters": 2, "model.lstm": 0}))
    z = net.encode(torch.zeros(1, 1, 24000))
    assert z.shape == (1, 128, 75) and net.frame_rate == 75.0


def test_quantiser_bitrate_and_codes():
    cfg = PRESETS["debug"]().override({"model.quantizer": "rvq"})
    net = build_model(cfg)
    assert net.bitrate == 2 * 6 * 75  # n_q=2, 64 entries
    out = net(_wave(n=3200))
    assert out["codes"].shape == (2, 10, 2) and out["recon"].shape == (2, 1, 3200)


def test_debug_run_and_creative_loads_the_checkpoint(home, tmp_path):
    from mlplatform.families.creative.codec import load_codec
    from mlplatform.registry import build_config
    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.train.executors import run_local

    cfg = build_config("codec", "debug")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    cl = mu.client(uri)
    run_id = cl.create_run(mu.get_or_create_experiment(cl, "codec-test")).info.run_id
    res, rep = run_local({"family": "codec", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "work"),
                          "verbose": False, "mlflow_run_id": run_id, "tracking_uri": uri})
    assert res["stop_reason"] == "completed" and len(rep.history) == cfg.train.epochs
    assert all(math.isfinite(h["val/si_snr"]) and "val/mel_distance" in h for h in rep.history)
    codec = load_codec(str(tmp_path / "work" / "best"), cache=False)
    assert codec.pretrained and codec.source == "codec_family" and codec.run_id == run_id
    assert codec.frame_rate == 75.0 and codec.dim == 128
    x = _wave(b=1, n=24000)
    assert codec.encode(x).shape == (1, 128, 75) and codec.decode(codec.encode(x)).shape == (1, 1, 24000)
    assert not any(p.requires_grad for p in codec.parameters())


def test_floors_score_the_random_codec_and_the_band_limited_copy():
    from mlplatform.families.codec.family import baselines, floor_bandwidth_hz, floors
    from mlplatform.protocol import StepContext

    cfg = PRESETS["debug"]()
    net = build_model(cfg).eval()
    batch = {"wav": _wave(n=4800)}
    ctx = StepContext(cfg, 0, 0, False, {}, torch.device("cpu"), {})
    out = {**floors(net, batch, None, ctx), **baselines(net, batch, None, ctx)}
    assert float(out["silence"]["si_snr"].mean()) < -60
    assert floor_bandwidth_hz(net) == 4800.0
    assert float(out["bandlimited"]["si_snr"].mean()) > 10  # 220 Hz tone + white noise: the tone survives
    assert float(out["random_codec"]["si_snr"].mean()) < 0
    assert build_from_arch(net.arch).arch == net.arch


def test_an_unweighted_stft_term_is_skipped_in_training_and_still_scored_at_validation():
    from mlplatform.families.codec.family import compute_loss
    from mlplatform.protocol import StepContext

    cfg = PRESETS["debug"]().override(["loss.stft_weight=0"])
    net = build_model(cfg)
    batch = {"wav": _wave(n=4800)}
    train = compute_loss(net, batch, StepContext(cfg, 0, 0, True, {}, torch.device("cpu"), {}))
    val = compute_loss(net, batch, StepContext(cfg, 0, 0, False, {}, torch.device("cpu"), {}))
    assert "stft" not in train.weights() and set(train.weights()) == {"l1", "neg_si_snr"}
    assert val.weights()["stft"] == 0 and float(val.terms["stft"].value) > 0
    assert PRESETS["cpu"]().optim.schedule_unit == "step" and PRESETS["cpu"]().optim.warmup > 0
