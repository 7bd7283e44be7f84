"""tse loss properties: one test per failure case of docs/families/tse.md, plus the usual optimum/shape/
equivalence checks."""
from __future__ import annotations

import inspect

import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from mlplatform.families.tse.config import TseLoss
from mlplatform.families.tse.losses import (amplitude_loss, energy_db, energy_loss, phase_sensitive_loss,
                                            scene_aware_loss, si_sdr, si_sdr_loss)
from mlplatform.train.terms import NONNEG

SR = 8000


def wave(b: int = 4, t: int = 4000, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    return torch.randn(b, t, generator=torch.Generator().manual_seed(seed)) * scale


# ---- the TA energy loss can never reward suppression ---------------------------------

@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-3, 0.03, 1.0, 10.0])
def test_ta_loss_is_nonnegative_for_any_output(scale):
    est = wave(seed=int(scale * 1000) + 1, scale=scale)
    assert (energy_loss(est, -30.0) >= 0).all()


def test_ta_loss_has_zero_value_and_gradient_below_target_db():
    est = (wave(scale=1.0) * 10 ** (-45 / 20)).requires_grad_()  # about -45 dBFS, target -30
    assert (energy_db(est) < -30).all()
    loss = energy_loss(est, -30.0).sum()
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.count_nonzero(est.grad) == 0


def test_ta_loss_pushes_down_above_target_db():
    est = (wave(scale=1.0) * 10 ** (-20 / 20)).requires_grad_()  # -20 dBFS: 10 dB too loud
    loss = energy_loss(est, -30.0)
    assert torch.allclose(loss, torch.full_like(loss, 10.0), atol=0.2)
    loss.sum().backward()
    assert float((est.grad * est.detach()).sum()) > 0  # gradient descent shrinks the output


def test_suppressing_a_ta_output_further_cannot_lower_the_total_loss():
    """The seed's exploit: with raw dB, 0.1·(-40) was free loss reduction for silence."""
    cfg = TseLoss()
    tgt = torch.zeros(4, 4000)
    tp = torch.zeros(4, dtype=torch.bool)
    quiet = wave(scale=1.0) * 10 ** (-35 / 20)
    totals = [float(scene_aware_loss(quiet * g, tgt, tp, cfg, SR).total) for g in (1.0, 0.1, 1e-3, 0.0)]
    assert totals == [0.0, 0.0, 0.0, 0.0]


# ---- amplitude anchor -------------------------------------------------------------------

def test_amplitude_loss_is_zero_with_zero_gradient_at_ratio_one():
    tgt = wave(seed=1)
    est = (tgt * -1.0).clone().requires_grad_()  # a sign flip keeps the rms ratio at 1
    loss = amplitude_loss(est, tgt)
    loss.sum().backward()
    assert torch.allclose(loss, torch.zeros_like(loss), atol=1e-10)
    assert est.grad.abs().max() < 1e-6


@pytest.mark.parametrize("r", [0.9, 0.738, 0.5, 0.2])
def test_amplitude_loss_is_symmetric_in_log_ratio(r):
    tgt = wave(seed=2)
    lo, hi = amplitude_loss(tgt * r, tgt), amplitude_loss(tgt / r, tgt)
    assert torch.allclose(lo, hi, rtol=1e-4)
    assert torch.allclose(lo, torch.full_like(lo, torch.log(torch.tensor(r)).item() ** 2), rtol=1e-4)


def test_amplitude_loss_clamps_at_the_floor():
    tgt = wave(seed=3)
    est = (tgt * 0.01).requires_grad_()
    loss = amplitude_loss(est, tgt, floor=0.05)
    loss.sum().backward()
    assert torch.allclose(loss, torch.full_like(loss, torch.log(torch.tensor(0.05)).item() ** 2), rtol=1e-4)
    assert torch.count_nonzero(est.grad) == 0


def test_amplitude_loss_is_finite_at_silence():
    est = torch.zeros(2, 1000, requires_grad=True)
    amplitude_loss(est, wave(2, 1000)).sum().backward()
    assert torch.isfinite(est.grad).all()


# ---- SI-SDR ---------------------------------------------------------------------------------------

def test_si_sdr_agrees_with_torchmetrics():
    tgt = wave(6, 8000, seed=4)
    est = tgt * 0.7 + wave(6, 8000, seed=5, scale=0.05) + 0.01
    ours = si_sdr(est, tgt)
    ref = scale_invariant_signal_distortion_ratio(est, tgt, zero_mean=True)
    assert torch.allclose(ours, ref, atol=1e-3)


def test_si_sdr_is_scale_invariant_and_loss_nonnegative_with_optimum_at_identity():
    tgt = wave(seed=6)
    est = tgt + wave(seed=7, scale=0.05)
    assert torch.allclose(si_sdr(est, tgt), si_sdr(est * 0.25, tgt), atol=1e-3)
    assert (si_sdr_loss(est, tgt) >= 0).all()
    assert (si_sdr_loss(tgt, tgt, cap_db=50.0) < 0.01).all()
    assert (si_sdr_loss(est, tgt) > si_sdr_loss(tgt, tgt)).all()
    # below the cap its value is -SI-SDR shifted by the cap
    assert torch.allclose(si_sdr_loss(est, tgt, cap_db=50.0), 50.0 - si_sdr(est, tgt), atol=0.01)


def test_phase_sensitive_loss_is_zero_at_identity_and_sees_scale_and_phase():
    tgt = wave(seed=8)
    assert (phase_sensitive_loss(tgt, tgt, 256) < 1e-6).all()
    # scale-sensitive (unlike SI-SDR): (0.5^0.3 - 1)^2 = 0.0352 with compression 0.3
    assert torch.allclose(phase_sensitive_loss(tgt * 0.5, tgt, 256), torch.tensor(0.0352), atol=1e-3)
    assert (phase_sensitive_loss(-tgt, tgt, 256) > 1.0).all()  # phase-sensitive (a magnitude loss is 0 here)


@pytest.mark.parametrize("fn", [si_sdr, si_sdr_loss, amplitude_loss])
def test_wrong_shapes_raise(fn):
    with pytest.raises(ValueError):
        fn(torch.zeros(2, 100), torch.zeros(2, 99))
    with pytest.raises(ValueError):
        fn(torch.zeros(100), torch.zeros(100))


# ---- scene-aware loss and its configured weight --------------------------------------------------------------

def test_scene_aware_loss_takes_every_weight_from_the_config():
    """No function default can stand in for the configured ta_weight."""
    sig = inspect.signature(scene_aware_loss)
    assert all(p.default is inspect.Parameter.empty for p in sig.parameters.values())
    est, tgt = wave(seed=9), wave(seed=10)
    tp = torch.tensor([True, True, False, False])
    for w in (0.1, 0.2, 0.5):
        terms = scene_aware_loss(est, tgt, tp, TseLoss(ta_weight=w), SR)
        assert terms.weights() == pytest.approx({"sep": 1 - w, "psl": (1 - w) * 0.5, "amp": 1.0, "ta_energy": w})
        assert all(t.bound == NONNEG for t in terms.terms.values())


def test_scene_aware_loss_masks_scenes():
    cfg = TseLoss()
    est, tgt = wave(seed=11), wave(seed=12)
    tp = torch.tensor([True, False, True, False])
    base = {k: float(t.value) for k, t in scene_aware_loss(est, tgt, tp, cfg, SR).terms.items()}
    est2 = est.clone()
    est2[1] *= 100  # a TA sample: TP terms must not move
    est2[2] *= 3  # a TP sample: the TA term must not move
    moved = {k: float(t.value) for k, t in scene_aware_loss(est2, tgt, tp, cfg, SR).terms.items()}
    assert moved["ta_energy"] > base["ta_energy"]
    assert moved["amp"] > base["amp"]
    est3 = est.clone()
    est3[1] *= 100
    only_ta = {k: float(t.value) for k, t in scene_aware_loss(est3, tgt, tp, cfg, SR).terms.items()}
    for k in ("sep", "psl", "amp"):
        assert only_ta[k] == pytest.approx(base[k])


@pytest.mark.parametrize("flags", [[True] * 4, [False] * 4])
def test_scene_aware_loss_guards_batches_without_tp_or_ta(flags):
    est = wave(seed=13).requires_grad_()
    tgt = wave(seed=14) * torch.tensor(flags, dtype=torch.float32)[:, None]
    terms = scene_aware_loss(est, tgt, torch.tensor(flags), TseLoss(), SR)
    vals = terms.check(0)
    zero = ["ta_energy"] if all(flags) else ["sep", "psl", "amp"]
    assert all(vals[k] == 0.0 for k in zero)
    terms.total.backward()
    assert torch.isfinite(est.grad).all()


def test_scene_aware_loss_is_at_its_optimum_for_a_perfect_estimate():
    """The target itself (and silence where the target is absent) gives every component ~0."""
    torch.manual_seed(3)
    tgt = 0.1 * torch.randn(4, SR)
    tp = torch.tensor([True, True, True, False])
    tgt[~tp] = 0.0
    terms = scene_aware_loss(tgt.clone(), tgt, tp, TseLoss(), SR)
    vals = terms.check(0)
    assert set(vals) == {"sep", "psl", "amp", "ta_energy", "loss"}
    assert all(t.bound == NONNEG for t in terms.terms.values())
    assert vals["psl"] == pytest.approx(0.0, abs=1e-6) and vals["amp"] == 0.0 and vals["ta_energy"] == 0.0
    assert 0.0 <= vals["sep"] < 1e-3  # the soft SI-SDR cap leaves a rounding-sized remainder
    worse = scene_aware_loss(0.5 * tgt + 0.01 * torch.randn_like(tgt), tgt, tp, TseLoss(), SR).check(0)
    assert worse["loss"] > vals["loss"] + 0.1
