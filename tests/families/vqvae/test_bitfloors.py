"""The bit-matched floors (``bitfloors``): they never use more codes than the model's codebooks allow, are
exact where the data has no more distinct points than that, are seeded, and are logged by a debug run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlplatform.families.vqvae import bounds as B
from mlplatform.families.vqvae.bitfloors import PcaScalarQuantiser, ResidualKMeans, bit_budget, lloyd_1d
from mlplatform.registry import build_config, get_family
from mlplatform.train.executors import run_local

SMALL = ["data.n_rows=3000", "data.analysis_rows=3000", "train.epochs=2", "train.val_batches=2"]


def _gaussian(n: int = 2000, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))


def _distinct(codes: np.ndarray) -> int:
    return len(np.unique(codes, axis=0))


def test_codes_never_outnumber_the_models_codebooks():
    x, ks = _gaussian(), [4, 3, 2]
    rkm = ResidualKMeans.fit(x, ks, seed=0)
    assert [len(c) for c in rkm.codebooks] == ks
    assert _distinct(rkm.encode(x)) <= int(np.prod(ks))
    assert _distinct(rkm.reconstruct(x).round(9)) <= int(np.prod(ks))
    pq = PcaScalarQuantiser.fit(x, n_components=3, bits=bit_budget(ks), seed=0)
    assert sum(pq.bits) == bit_budget(ks) == 4  # floor(log2 24): 2^4 = 16 <= 24 codes
    assert all(len(lv) <= 2 ** b for lv, b in zip(pq.levels, pq.bits))
    assert _distinct(pq.encode(x)) <= 2 ** bit_budget(ks) <= int(np.prod(ks))


def test_exact_on_data_with_as_many_distinct_points_as_codes():
    rng = np.random.default_rng(1)
    ks, d = [4, 4, 2], 5
    # 32 distinct points with the residual structure: one code per level, scales 100 / 10 / 1 apart
    books = [rng.normal(size=(k, d)) * s for k, s in zip(ks, (100.0, 10.0, 1.0))]
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in ks], indexing="ij"), -1).reshape(-1, 3)
    pts = sum(b[idx[:, i]] for i, b in enumerate(books))
    x = np.tile(pts, (50, 1))  # every point equally often: each level's residual keeps the product structure
    rkm = ResidualKMeans.fit(x, ks, seed=0)
    assert np.abs(rkm.reconstruct(x) - x).max() < 1e-6
    # 2^5 = 32 points on a 4 x 8 grid of a 2-D subspace: 5 bits, split 2 + 3 by the allocation
    grid = np.stack(np.meshgrid(np.arange(4) * 3.0, np.arange(8) * 1.0, indexing="ij"), -1).reshape(-1, 2)
    basis = np.linalg.qr(rng.normal(size=(d, 2)))[0]
    y = np.tile(grid, (50, 1)) @ basis.T + 7.0  # balanced: the principal axes are the grid's axes
    pq = PcaScalarQuantiser.fit(y, n_components=2, bits=bit_budget([4, 4, 2]), seed=0)
    assert sorted(pq.bits) == [2, 3]
    assert np.abs(pq.reconstruct(y) - y).max() < 1e-6


def test_more_bits_never_hurt_and_shapes_hold():
    x = _gaussian(d=4)
    errs = [float(((PcaScalarQuantiser.fit(x, 4, b, 0).reconstruct(x) - x) ** 2).mean()) for b in (0, 2, 4, 8)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < errs[0] / 10
    assert np.isclose(errs[0], x.var(0).sum() / 4)  # no bits: every row coded as the mean
    rkm = ResidualKMeans.fit(x, [8, 8], 0)
    assert rkm.encode(x[:7]).shape == (7, 2) and rkm.reconstruct(x[:7]).shape == (7, 4)
    assert lloyd_1d(np.array([1.0, 1.0, 2.0]), 8).tolist() == [1.0, 2.0]  # never more levels than values


def test_seeded_fits_are_identical():
    x = _gaussian(seed=3)
    a, b = ResidualKMeans.fit(x, [8, 8, 8], 5), ResidualKMeans.fit(x, [8, 8, 8], 5)
    assert all(np.array_equal(p, q) for p, q in zip(a.codebooks, b.codebooks))
    c = ResidualKMeans.fit(x, [8, 8, 8], 6)
    assert not all(np.array_equal(p, q) for p, q in zip(a.codebooks, c.codebooks))
    p, q = PcaScalarQuantiser.fit(x, 3, 9, 5), PcaScalarQuantiser.fit(x, 3, 9, 5)
    assert p.bits == q.bits and all(np.array_equal(u, v) for u, v in zip(p.levels, q.levels))


def test_floors_on_the_family_matrix_are_bit_matched_and_seeded(home):
    from mlplatform.families.vqvae import data as D

    cfg = build_config("vqvae", "debug", SMALL + ["train.integrity=false"])
    get_family("vqvae").prepare_data(cfg)
    x, lay = D.load_matrix(cfg)
    _, va = D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    xv = torch.from_numpy(x[va])
    rec = B.bit_matched_reconstruct(cfg, xv)
    assert set(rec) == {"residual_kmeans", "pca_quantised"}
    k = int(np.prod(cfg.model.codebook_sizes))
    for name, r in rec.items():
        assert r.shape == xv.shape and r.dtype == xv.dtype
        for rc in r.split(lay.sizes, dim=1):  # distinct reconstructions per category <= K^levels
            assert len(torch.unique(rc, dim=0)) <= k, name
    err = {n: float((r - xv).pow(2).mean()) for n, r in rec.items()}
    assert all(0 < e < 1.0 for e in err.values())  # better than the mean, worse than exact
    again = B.bit_matched_reconstruct(cfg.override(["train.epochs=3"]), xv)  # refitted: same seed, same floor
    assert all(torch.equal(rec[n], again[n]) for n in rec)


def test_debug_run_logs_the_bit_matched_floors_and_the_pca_reference(home):
    cfg = build_config("vqvae", "debug", SMALL)
    _, rep = run_local({"family": "vqvae", "cfg": cfg.to_dict()})
    m = rep.history[-1]
    for key in ("val/floor_residual_kmeans", "val/floor_pca_quantised", "val/reference_pca", "val/captured_gain"):
        assert key in m and np.isfinite(m[key]), key
    assert "val/floor_pca" not in m  # the unbounded PCA is a reference now, not a floor
    # captured gain is measured from the strongest floor (the bit-matched ones or the feature mean), in dB
    db = lambda v: 10 * math.log10(v)  # noqa: E731
    floor = min(m[k] for k in ("val/floor_residual_kmeans", "val/floor_pca_quantised", "val/floor_feature_mean"))
    gain = (db(m["val/recon_error"]) - db(floor)) / (db(m["val/ceiling_unquantised"]) - db(floor))
    assert m["val/captured_gain"] == pytest.approx(gain, rel=1e-6)
