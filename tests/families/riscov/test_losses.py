"""riscov losses, schedule and guards."""
import math
import warnings

import pytest
import torch

from mlplatform.families.riscov.data import steering
from mlplatform.families.riscov.family import beta_at, warmup_epochs
from mlplatform.families.riscov.losses import blend, check_lam_cov, effective_weights, nmse, nmse_parts
from mlplatform.families.riscov.metrics import doa_sq_error, music_doa
from mlplatform.families.riscov.model import CovEstimator
from mlplatform.registry import build_config


def rand_cov(b=4, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.complex(torch.randn(b, n, 12, generator=g), torch.randn(b, n, 12, generator=g))
    return x @ x.conj().transpose(-2, -1) / 12


def test_nmse_identical_is_zero_and_positive_otherwise():
    r = rand_cov()
    assert torch.all(nmse(r, r) == 0)
    assert torch.all(nmse(r + 0.1 * rand_cov(seed=1), r) > 0)


def test_nmse_is_scale_invariant():
    a, b = rand_cov(seed=2), rand_cov(seed=3)
    for c in (1e-3, 7.0, 1e4):
        torch.testing.assert_close(nmse(c * a, c * b), nmse(a, b), rtol=1e-4, atol=1e-7)


def test_nmse_diag_offdiag_split():
    r = rand_cov()
    n = r.shape[-1]
    eye = torch.eye(n, dtype=torch.bool)
    diag_err = r + torch.diag_embed(torch.ones(r.shape[0], n)).to(r.dtype)
    d, o = nmse_parts(diag_err, r)
    assert torch.all(d > 0) and torch.all(o == 0)
    off = r.clone()
    off[:, ~eye] *= 1.5
    d, o = nmse_parts(off, r)
    assert torch.all(d == 0) and torch.all(o > 0)
    torch.testing.assert_close(nmse(off, r, diag_weight=0.5), 0.5 * o)


def test_nmse_is_finite_for_zero_reference_and_rejects_bad_shapes():
    z = torch.zeros(2, 4, 4, dtype=torch.complex64)
    assert torch.isfinite(nmse(z + 1e-3, z)).all()  # eps = 1e-12 in the denominator
    with pytest.raises(ValueError):
        nmse(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError):
        nmse(torch.zeros(4, 4), torch.zeros(4, 4))


def test_blend_endpoints():
    a, b = rand_cov(seed=4), rand_cov(seed=5)
    assert torch.equal(blend(a, b, 0.0), a)
    torch.testing.assert_close(blend(a, b, 1.0), b)
    with pytest.raises(ValueError):
        blend(a, b, 1.5)


def test_beta_schedule_values():
    cfg = build_config("riscov", "debug", ["train.epochs=30"])
    assert warmup_epochs(cfg) == 6  # max(2, int(0.2 * 30))
    assert [round(beta_at(cfg, e), 4) for e in (0, 3, 6, 10, 29)] == [0.0, 0.15, 0.3, 0.3, 0.3]
    short = build_config("riscov", "debug", ["train.epochs=5"])
    assert warmup_epochs(short) == 2  # the floor of 2 epochs
    jit = build_config("riscov", "debug", ["train.epochs=30", "train.beta_jitter=0.05"])
    vals = [beta_at(jit, e) for e in range(6, 30)]
    assert all(0.25 - 1e-9 <= v <= 0.35 + 1e-9 for v in vals) and len(set(vals)) > 1
    assert beta_at(jit, 12) == beta_at(jit, 12)  # jitter is deterministic per (seed, epoch)


def test_guards_on_lam_cov():
    with pytest.raises(ValueError, match="lam_cov must be > 0"):
        check_lam_cov(0.0)
    with pytest.raises(ValueError):
        check_lam_cov(-1.0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_lam_cov(150.0)
    assert any("unusually large" in str(x.message) for x in w)


def test_both_paths_set_lam_cov_and_beta_one_safety():
    cfg = build_config("riscov", "debug", ["loss.lam_cov=2.0"])
    cur = build_config("riscov", "debug", ["loss.lam_cov=2.0", "loss.curriculum=true"])
    for c in (cfg, cur):
        lam_cov, _, _ = effective_weights(c.loss, 0.3, 5, 4)
        assert lam_cov == 2.0
    assert effective_weights(cur.loss, 0.0, 0, 4)[1] == pytest.approx(0.2)  # curriculum start
    assert effective_weights(cur.loss, 0.3, 4, 4)[1] == pytest.approx(0.05)  # reaches lam_cov_pred
    lam_cov, lam_pred, safety = effective_weights(cfg.loss, 1.0, 10, 4)
    assert safety and lam_pred == pytest.approx(0.4)  # max(0.05, 0.2 * 2.0)
    assert effective_weights(cfg.loss, 0.9, 10, 4) == (2.0, 0.05, False)


def test_training_requires_grad_guard():
    from mlplatform.families.riscov.family import compute_loss, schedule
    from mlplatform.protocol import StepContext

    cfg = build_config("riscov", "debug")
    model = CovEstimator(8, 16, 1)
    for p in model.parameters():
        p.requires_grad_(False)
    r = rand_cov(n=8)
    batch = {"r_samp": r, "r_true": r}
    ctx = StepContext(cfg, 0, 0, True, {**schedule(cfg, 0), "beta": 0.3}, torch.device("cpu"), {"verbose": False})
    with pytest.raises(RuntimeError, match="R_blend must require gradients"):
        compute_loss(model, batch, ctx)


def test_model_output_is_hermitian_psd_with_matched_trace():
    model = CovEstimator(6, 32, 2)
    torch.nn.init.normal_(model.head.weight, std=0.3)
    r = rand_cov(b=5, n=6)
    out = model(r)
    torch.testing.assert_close(out, out.conj().transpose(-2, -1))
    assert torch.linalg.eigvalsh(out).min() > -1e-5
    torch.testing.assert_close(torch.diagonal(out, dim1=-2, dim2=-1).real.sum(-1),
                               torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1), rtol=1e-4, atol=1e-4)


def test_music_recovers_true_angles_from_r_true():
    n = 8
    angles = torch.tensor([[-20.0, 15.0, float("nan")], [33.0, float("nan"), float("nan")]])
    rs = []
    for row in angles:
        th = row[~torch.isnan(row)].numpy()
        a = torch.from_numpy(steering(n, th))
        rs.append(a @ a.conj().T * 10 + torch.eye(n))
    r = torch.stack(rs).to(torch.complex64)
    est = music_doa(r, torch.tensor([2, 1]), 3, torch.arange(-90.0, 90.01, 0.5))
    assert math.sqrt(float(doa_sq_error(est, angles).max())) < 0.5


def test_compute_loss_terms_take_every_weight_from_the_schedule_and_reach_the_optimum():
    from mlplatform.families.riscov.family import compute_loss, schedule
    from mlplatform.protocol import StepContext

    cfg = build_config("riscov", "debug")
    model = CovEstimator(8, 16, 1)
    r = rand_cov(n=8)
    # weights the config would never give: compute_loss must read them from the loop's schedule
    sched = {**schedule(cfg, 0), "beta": 1.0, "lam_cov": 2.0, "lam_cov_pred_eff": 0.3}
    ctx = StepContext(cfg, 0, 0, False, sched, torch.device("cpu"), {"verbose": False})
    terms = compute_loss(model, {"r_samp": r, "r_true": r}, ctx)
    assert terms.weights() == {"nmse_blend": 2.0, "nmse_pred": 0.3, "nmse_blend_diag": 0.0, "nmse_blend_off": 0.0}
    vals = terms.check(0)
    assert vals["nmse_blend"] == 0.0  # β = 1 and R_samp = R_true: the blend is exact
    assert vals["nmse_pred"] > 0 and vals["loss"] == pytest.approx(0.3 * vals["nmse_pred"], rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        compute_loss(model, {"r_samp": r, "r_true": rand_cov(n=6)}, ctx)
