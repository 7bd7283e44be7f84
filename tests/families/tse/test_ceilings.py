"""tse floors and ceilings: oracle masks (IRM, PSM), the target-absent suppression metric, and the
Family declarations the platform's captured gain reads."""
from __future__ import annotations

import math

import pytest
import torch

from mlplatform.families.tse import oracles as O
from mlplatform.families.tse.family import FAMILY
from mlplatform.families.tse.losses import si_sdr
from mlplatform.families.tse.metrics import scene_metrics, ta_suppression_db
from mlplatform.integrity.floors import gain_metrics
from mlplatform.protocol import StepContext
from mlplatform.registry import build_config

SR = 8000


def speechlike(n: int, seed: int, batch: int = 3) -> torch.Tensor:
    """Amplitude-modulated harmonic tones: sparse in time-frequency like speech."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    f0 = 100 + 200 * torch.rand(batch, 1, generator=g)
    x = sum(torch.sin(2 * math.pi * k * f0 * t + torch.rand(batch, 1, generator=g) * 6) / k for k in range(1, 6))
    env = (torch.sin(2 * math.pi * (2 + 3 * torch.rand(batch, 1, generator=g)) * t) > 0.2).float()
    return 0.05 * x * env


@pytest.mark.parametrize("kind", ["irm", "psm"])
def test_an_oracle_on_a_mixture_equal_to_the_target_is_exact(kind):
    s = speechlike(SR, 0)
    out = O.oracle_masks(s, s, SR)[kind]
    assert torch.allclose(out, s, atol=1e-5)
    assert (si_sdr(out, s) > 60).all()


@pytest.mark.parametrize("kind", ["irm", "psm"])
def test_an_oracle_without_a_target_is_silent(kind):
    noise = 0.05 * torch.randn(2, SR, generator=torch.Generator().manual_seed(1))
    out = O.oracle_masks(noise, torch.zeros_like(noise), SR)[kind]
    assert out.abs().max() < 1e-6


def test_masks_are_in_unit_range_and_psm_is_closest_to_the_target_per_bin():
    s, n = speechlike(SR, 2), speechlike(SR, 3) + 0.01 * torch.randn(3, SR)
    n_fft = int(O.WINDOW_S * SR)
    y_spec, s_spec = O._stft(s + n, n_fft), O._stft(s, n_fft)
    m = O.masks(y_spec, s_spec)
    for v in m.values():
        assert v.min() >= 0 and v.max() <= 1
    err = {k: (v * y_spec - s_spec).abs().pow(2) for k, v in m.items()}
    # the clipped PSM minimises |m·Y - S|² over m in [0, 1] bin by bin, the IRM is one such m
    assert (err["psm"] <= err["irm"] + 1e-9).all()
    # in the time domain (after the inverse STFT) that order is not guaranteed, but both beat the mixture
    out = O.oracle_masks(s + n, s, SR)
    base = si_sdr(s + n, s)
    assert (si_sdr(out["irm"], s) > base + 3).all() and (si_sdr(out["psm"], s) > base + 3).all()


def test_oracles_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        O.oracle_masks(torch.zeros(2, 100), torch.zeros(2, 99), SR)


def test_ta_suppression_is_the_level_drop_in_db_and_scored_on_ta_items_only():
    mix = speechlike(SR, 4, batch=4) + 0.01
    est = mix * torch.tensor([0.1, 1.0, 0.01, 1.0])[:, None]
    assert torch.allclose(ta_suppression_db(est, mix, 1e-14), torch.tensor([20.0, 0.0, 40.0, 0.0]), atol=1e-3)
    # eps bounds it: exact silence is finite (mixture energy over eps)
    assert torch.isfinite(ta_suppression_db(torch.zeros_like(mix), mix)).all()
    tp = torch.tensor([False, True, False, True])
    subset = torch.tensor([0, 0, 1, 1], dtype=torch.int8)
    m = scene_metrics(est, mix * tp[:, None], mix, tp, 1e-14, subset)
    assert m["ta_suppression_db"].tolist() == pytest.approx([20.0], abs=1e-3)
    assert m["ta_suppression_db_unseen"].tolist() == pytest.approx([40.0], abs=1e-3)
    assert m["si_sdr_tp"].shape == m["si_sdr_tp_unseen"].shape == (1,)
    assert m["rms_ratio"].tolist() == pytest.approx([1.0]) and m["rms_ratio_unseen"].tolist() == pytest.approx([1.0])
    # a set with no item in the batch gives empty tensors under its names (the loop skips them)
    assert m["si_sdr_tp_unseen_synth"].shape == m["ta_suppression_db_unseen_synth"].shape == (0,)
    m3 = scene_metrics(est, mix * tp[:, None], mix, tp, 1e-14, torch.tensor([0, 2, 1, 2], dtype=torch.int8))
    assert m3["ta_suppression_db"].tolist() == pytest.approx([20.0], abs=1e-3)
    assert m3["ta_suppression_db_unseen"].tolist() == pytest.approx([40.0], abs=1e-3)
    assert m3["si_sdr_tp_unseen_synth"].shape == (2,) and m3["si_sdr_tp"].shape == (0,)


def _batch(n: int = 4) -> dict:
    s = speechlike(SR, 5, batch=n)
    tp = torch.tensor([True, True, False, True])
    tgt = s * tp[:, None]
    return {"mixture": tgt + speechlike(SR, 6, batch=n), "target": tgt, "tp": tp, "enroll": s,
            "subset": torch.tensor([0, 0, 0, 1], dtype=torch.int8)}


def test_family_declares_ceilings_floors_and_db_scale():
    cfg = build_config("tse", "debug")
    assert FAMILY.gain_ceiling == "irm" and FAMILY.ceilings is not None and FAMILY.baselines is not None
    for k in ("val/si_sdr_tp", "val/si_sdri_tp", "val/si_sdr_tp_unseen", "val/si_sdri_tp_unseen"):
        assert FAMILY.metrics[k].scale == "db" and FAMILY.metrics[k].mode == "max" and not FAMILY.metrics[k].exploitable
    for k in ("val/ta_suppression_db", "val/ta_suppression_db_unseen", "val/ta_energy_db", "val/rms_ratio"):
        assert FAMILY.metrics[k].exploitable  # silence maximises suppression: never a selection metric
    b = _batch()
    ctx = StepContext(cfg, 0, 0, False, {}, torch.device("cpu"), {})
    model = FAMILY.build_model(cfg)
    terms = FAMILY.compute_loss(model, b, ctx)
    ceil = FAMILY.ceilings(model, b, terms, ctx)
    floors = FAMILY.baselines(model, b, terms, ctx)
    sel = FAMILY.selection_metric.removeprefix("val/")
    assert set(ceil) == {"irm", "psm"} and set(floors) == {"silence", "mixture"}
    for v in list(ceil.values()) + list(floors.values()):
        assert v[sel].shape == (1,)  # the unseen TP items: the same items as the model's val/si_sdr_tp_unseen
        assert v["si_sdr_tp"].shape == (2,) and v["si_sdr_tp_unseen_synth"].shape == (0,)  # every set apart
    assert sel == "si_sdr_tp_unseen" and FAMILY.gain_sets["unseen"] == sel
    # what the platform computes from the logged means
    extra = {f"ceiling_{n}_{k}": float(v.mean()) for n, d in ceil.items() for k, v in d.items()}
    extra.update({f"baseline_{n}_{k}": float(v.mean()) for n, d in floors.items() for k, v in d.items()})
    irm = extra[f"ceiling_irm_{sel}"]
    top_floor = max(extra[f"baseline_silence_{sel}"], extra[f"baseline_mixture_{sel}"])
    half = top_floor + 0.5 * (irm - top_floor)
    g = gain_metrics(extra, half, sel, FAMILY.mode, FAMILY.metrics[FAMILY.selection_metric].scale,
                     FAMILY.gain_ceiling)
    assert g["captured_gain"] == pytest.approx(0.5) and g["ceiling_irm"] == irm
