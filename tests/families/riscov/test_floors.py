"""riscov floors (sample, Ledoit-Wolf, forward-backward, Toeplitz) and the DOA-aware NNLS oracle."""
import numpy as np
import pytest
import torch

from mlplatform.families.riscov import floors as F
from mlplatform.families.riscov.config import RiscovData
from mlplatform.families.riscov.data import simulate_fresh, steering
from mlplatform.families.riscov.losses import nmse
from mlplatform.families.riscov.model import CovEstimator, psd_project


def rand_cov(b=4, n=6, snaps=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.complex(torch.randn(b, n, snaps, generator=g), torch.randn(b, n, snaps, generator=g))
    return x @ x.conj().transpose(-2, -1) / snaps, x


def true_cov(angles, powers, noise, n=8):
    a = torch.from_numpy(steering(n, np.asarray(angles)))
    return (a * torch.tensor(powers, dtype=torch.float64)) @ a.conj().T + noise * torch.eye(n, dtype=torch.complex128)


def is_toeplitz(r, tol=1e-6):
    n = r.shape[-1]
    return all(torch.allclose(torch.diagonal(r, m, -2, -1), torch.diagonal(r, m, -2, -1)[..., :1].expand(-1, n - abs(m)),
                              atol=tol) for m in range(-n + 1, n))


def test_sample_covariance_is_a_copy():
    r, _ = rand_cov()
    out = F.sample_covariance(r)
    assert torch.equal(out, r) and out.data_ptr() != r.data_ptr()


def test_forward_backward_exact_on_centro_hermitian_and_averages_otherwise():
    r = true_cov([-20.0, 31.0], [3.0, 1.0], 0.5).unsqueeze(0)  # ULA covariance: persymmetric already
    torch.testing.assert_close(F.forward_backward(r), r)
    rs, _ = rand_cov(n=5)
    fb = F.forward_backward(rs)
    j = torch.eye(5).flip(0).to(rs.dtype)
    torch.testing.assert_close(fb, 0.5 * (rs + j @ rs.conj() @ j))
    torch.testing.assert_close(fb, j @ fb.conj() @ j)


def test_toeplitz_average_is_hermitian_toeplitz_projection():
    rs, _ = rand_cov(b=3, n=7)
    t = F.toeplitz_average(rs)
    torch.testing.assert_close(t, t.conj().transpose(-2, -1))
    assert is_toeplitz(t)
    torch.testing.assert_close(torch.diagonal(t, dim1=-2, dim2=-1).real.sum(-1),
                               torch.diagonal(rs, dim1=-2, dim2=-1).real.sum(-1))
    # exact (a fixed point) on a Hermitian Toeplitz input; by hand on lag 1 of a 3x3 matrix
    r = true_cov([10.0], [2.0], 1.0).unsqueeze(0)
    torch.testing.assert_close(F.toeplitz_average(r), r)
    m = torch.tensor([[[1, 2 - 1j, 0], [2 + 1j, 3, 4j], [0, -4j, 5]]], dtype=torch.complex64)
    lag1 = ((2 + 1j) + (-4j)) / 2
    assert torch.isclose(F.toeplitz_average(m)[0, 1, 0], torch.tensor(lag1, dtype=torch.complex64))
    assert torch.isclose(F.toeplitz_average(m)[0, 0, 0], torch.tensor(3.0 + 0j))


def test_ledoit_wolf_matches_sklearn_formula_and_limits():
    rs, x = rand_cov(b=3, n=6, snaps=5)
    lw = F.ledoit_wolf(rs, x=x)
    for i in range(3):  # the closed form written out with numpy, |.|^2 for squares
        xi = x[i].numpy().T.astype(np.complex128)  # [L, N]
        ll, n = xi.shape
        emp = xi.T @ xi.conj() / ll
        mu = np.trace(emp).real / n
        b2 = (np.sum(np.sum(np.abs(xi) ** 2, 1) ** 2) / ll - np.sum(np.abs(emp) ** 2)) / (n * ll)
        d2 = np.sum(np.abs(emp - mu * np.eye(n)) ** 2) / n
        rho = min(b2, d2) / d2
        ref = (1 - rho) * emp + rho * mu * np.eye(n)
        np.testing.assert_allclose(lw[i].numpy(), ref, rtol=1e-4, atol=1e-5)
    # a scaled identity is already the target: unchanged
    eye = 3.0 * torch.eye(4, dtype=torch.complex64).unsqueeze(0)
    torch.testing.assert_close(F.ledoit_wolf(eye, snapshots=10), eye)
    # one snapshot: the per-snapshot spread around R is zero (b² = 0), so no shrinkage at all
    v = torch.randn(1, 4, 1, dtype=torch.complex64)
    r1 = v @ v.conj().transpose(-2, -1)
    torch.testing.assert_close(F.ledoit_wolf(r1, x=v), r1)
    # two orthogonal equal-norm snapshots: R = (x1x1ᴴ + x2x2ᴴ)/2, b² >= d², full shrinkage to μI
    x2 = torch.zeros(1, 4, 2, dtype=torch.complex64)
    x2[0, 0, 0], x2[0, 1, 1] = 1.0, 1.0j
    r2 = x2 @ x2.conj().transpose(-2, -1) / 2
    torch.testing.assert_close(F.ledoit_wolf(r2, x=x2), 0.25 * torch.eye(4, dtype=torch.complex64).unsqueeze(0))
    with pytest.raises(ValueError):
        F.ledoit_wolf(rs)  # neither snapshots nor their count


def test_oracle_recovers_powers_noiselessly_and_is_exact():
    angles = torch.tensor([[-30.0, 5.0, 40.0], [12.0, float("nan"), float("nan")]])
    powers = [[2.0, 0.5, 7.0], [3.0]]
    noise = [0.7, 1.0]
    r = torch.stack([true_cov(row[~torch.isnan(row)].numpy(), p, s)
                     for row, p, s in zip(angles, powers, noise)]).to(torch.complex128)
    fit, p, s2 = F.oracle_nnls(r, angles, return_powers=True)
    torch.testing.assert_close(p[0], torch.tensor(powers[0], dtype=torch.float64), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(p[1], torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s2, torch.tensor(noise, dtype=torch.float64), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(fit, r, rtol=1e-5, atol=1e-5)


def test_oracle_respects_non_negativity():
    # a covariance with less than the noise floor along the source: the power must clip at 0
    a = torch.from_numpy(steering(8, np.array([20.0])))
    r = (torch.eye(8, dtype=torch.complex128) - 0.5 * (a @ a.conj().T) / 8).unsqueeze(0)
    fit, p, s2 = F.oracle_nnls(r, torch.tensor([[20.0]]), return_powers=True)
    assert float(p[0, 0]) == 0.0 and float(s2[0]) > 0
    torch.testing.assert_close(fit, s2[0] * torch.eye(8, dtype=torch.complex128).unsqueeze(0))


def test_floors_rank_as_expected_on_fresh_draws():
    d = RiscovData()
    d.snapshots = 16
    b = simulate_fresh(d, 400, 123)
    rs, rt = b["r_samp"], b["r_true"]
    e = {k: float(nmse(f(rs), rt).mean()) for k, f in F.FLOORS.items()}
    e["oracle"] = float(nmse(F.oracle_nnls(rs, b["angles_deg"]), rt).mean())
    e["lw"] = float(nmse(F.ledoit_wolf(rs, 16), rt).mean())
    assert e["oracle"] < e["toeplitz"] < e["forward_backward"] < e["sample"]
    assert e["lw"] < e["sample"]


def test_wrong_shapes_raise():
    r, _ = rand_cov()
    for f in (F.sample_covariance, F.forward_backward, F.toeplitz_average, lambda t: F.ledoit_wolf(t, 4)):
        with pytest.raises(ValueError):
            f(r[0])  # [N, N] without a batch
        with pytest.raises(ValueError):
            f(torch.zeros(2, 3, 4, dtype=torch.complex64))
    with pytest.raises(ValueError):
        F.oracle_nnls(r, torch.zeros(r.shape[0] + 1, 2))
    with pytest.raises(ValueError):
        F.oracle_nnls(r, torch.zeros(r.shape[0]))
    with pytest.raises(ValueError):
        F.ledoit_wolf(r, x=torch.zeros(r.shape[0], r.shape[1] + 1, 3, dtype=r.dtype))


def test_psd_projection_value_and_gradient():
    a, _ = rand_cov(b=3, n=5)
    a = (a - 1.0 * torch.eye(5)).to(torch.complex128).requires_grad_(True)
    p = psd_project(a)
    lam, v = torch.linalg.eigh(a.detach())
    ref = (v * lam.clamp_min(0)[:, None, :].to(v.dtype)) @ v.conj().transpose(-2, -1)
    torch.testing.assert_close(p.detach(), ref)
    assert torch.linalg.eigvalsh(p.detach()).min() > -1e-10
    g = torch.randn(3, 5, 5, dtype=torch.complex128)
    (p * g.conj()).real.sum().backward()
    h = 1e-6  # finite difference along a Hermitian direction
    dirn = torch.randn(3, 5, 5, dtype=torch.complex128)
    dirn = dirn + dirn.conj().transpose(-2, -1)
    fd = ((psd_project(a.detach() + h * dirn) - psd_project(a.detach() - h * dirn)) / (2 * h) * g.conj()).real.sum()
    an = (a.grad.conj() * dirn).real.sum()
    assert abs(float(fd - an)) < 1e-5 * (1 + abs(float(fd)))


@pytest.mark.parametrize("core", ["toeplitz_residual", "spectrum"])
def test_model_cores_are_hermitian_psd_trace_matched(core):
    model = CovEstimator(8, 32, 2, core=core)
    torch.nn.init.normal_(model.head.weight, std=0.3)
    with torch.no_grad():
        model.cancel_raw.fill_(0.4)
    r, _ = rand_cov(b=5, n=8, snaps=16)
    out = model(r)
    torch.testing.assert_close(out, out.conj().transpose(-2, -1))
    assert torch.linalg.eigvalsh(out).min() > -1e-5
    torch.testing.assert_close(torch.diagonal(out, dim1=-2, dim2=-1).real.sum(-1),
                               torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1), rtol=1e-4, atol=1e-4)
    out.real.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_toeplitz_residual_core_starts_at_the_toeplitz_average():
    model = CovEstimator(8, 32, 2)
    b = simulate_fresh(RiscovData(), 64, 5)
    with torch.no_grad():
        err_model = nmse(model(b["r_samp"]), b["r_true"]).mean()
        err_toep = nmse(F.toeplitz_average(b["r_samp"]), b["r_true"]).mean()
    assert abs(float(err_model - err_toep)) < 1e-3


def test_fresh_draws_are_deterministic_per_epoch():
    from mlplatform.families.riscov.data import fresh_train_items
    from mlplatform.registry import build_config

    cfg = build_config("riscov", "debug")
    cfg.data.n_train = 32
    a, b, c = fresh_train_items(cfg, 3), fresh_train_items(cfg, 3), fresh_train_items(cfg, 4)
    assert torch.equal(a["r_samp"], b["r_samp"]) and not torch.equal(a["r_samp"], c["r_samp"])
    r0, r1 = fresh_train_items(cfg, 3, 0, 2), fresh_train_items(cfg, 3, 1, 2)
    assert len(r0["r_samp"]) == 16 and not torch.equal(r0["r_samp"], r1["r_samp"])
    ang = a["angles_deg"]
    assert torch.all((~torch.isnan(ang)).sum(-1) == a["n_sources"])
    gaps = ang[:, 1:] - ang[:, :-1]
    assert torch.all(torch.isnan(gaps) | (gaps >= cfg.data.min_separation_deg))
