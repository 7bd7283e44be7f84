#!/usr/bin/env python
"""Baselines in the field.

riscov: NMSE of the trained debug model's R_pred and R_blend (β = its final β) between its floors (sample
covariance, scikit-learn's Ledoit-Wolf shrinkage, forward-backward and Toeplitz averaging) and its ceiling
(the true-DOA non-negative least-squares fit), at L = 8, 16, 64 snapshots. One debug model is trained per L
(the snapshot count is part of the data config), then all estimators are scored on one fresh test set
per L drawn from the same simulator WITH its snapshots and angles kept (Ledoit-Wolf needs the snapshots,
which the Parquet cache does not store). Complex snapshots enter sklearn as real vectors [Re x, Im x]; the
2N x 2N estimate maps back to R = C_rr + C_ii + j(C_ir - C_ri). Figures: NMSE (the family's, diag_weight
0.5), each estimator's NMSE divided by the sample covariance's, and the model's captured gain (in dB,
against Toeplitz averaging and the oracle; docs/integrity.md).

tse: SI-SDR of the debug model's estimate vs the unprocessed mixture on the family's validation
mixtures (target-present scenes), i.e. SI-SDRi.

  python benchmarks/baselines.py [--snapshots 8,16,64] [--riscov-epochs N] [--tse-epochs 8] [--skip-tse]
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

import benchlib as B


def simulate_with_snapshots(d: Any, n_items: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [n, N, L] complex snapshots, R_true [n, N, N], angles [n, max_sources] in degrees, NaN padded)
    from the riscov simulator's distribution
    (same steering, angles, SNR and noise model as ``families/riscov/data.simulate``)."""
    from mlplatform.families.riscov.data import _angles, steering

    rng = np.random.default_rng(seed)
    n, snaps = d.n_elements, d.snapshots
    xs, rts = np.empty((n_items, n, snaps), np.complex128), np.empty((n_items, n, n), np.complex128)
    angles = np.full((n_items, d.max_sources), np.nan)
    for i in range(n_items):
        k = int(rng.integers(d.min_sources, d.max_sources + 1))
        angles[i, :k] = _angles(rng, k, d.angle_min_deg, d.angle_max_deg, d.min_separation_deg)
        a = steering(n, angles[i, :k])
        p = 10 ** ((rng.uniform(d.snr_db_min, d.snr_db_max) + rng.uniform(-3, 3, size=k)) / 10)
        s = np.sqrt(p / 2)[:, None] * (rng.standard_normal((k, snaps)) + 1j * rng.standard_normal((k, snaps)))
        w = np.sqrt(0.5) * (rng.standard_normal((n, snaps)) + 1j * rng.standard_normal((n, snaps)))
        xs[i], rts[i] = a @ s + w, (a * p[None, :]) @ a.conj().T + np.eye(n)
    return xs, rts, angles


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """sklearn's Ledoit-Wolf on one item's snapshots. Shape: x [N, L] complex -> [N, N] complex."""
    from sklearn.covariance import LedoitWolf

    n = x.shape[0]
    c = LedoitWolf(assume_centered=True).fit(np.concatenate([x.real.T, x.imag.T], axis=1)).covariance_
    return (c[:n, :n] + c[n:, n:]) + 1j * (c[n:, :n] - c[:n, n:])


def riscov_at(snapshots: int, epochs: int | None, n_test: int, work: Any) -> dict[str, Any]:
    from mlplatform.families.riscov.family import FAMILY, beta_at
    from mlplatform.families.riscov.floors import forward_backward, oracle_nnls, toeplitz_average
    from mlplatform.integrity.floors import captured_gain
    from mlplatform.families.riscov.losses import blend, nmse
    from mlplatform.registry import build_config
    from mlplatform.train.checkpoint import load_checkpoint
    from mlplatform.train.executors import run_local

    cfg = build_config("riscov", "debug", [f"data.snapshots={snapshots}"] + ([f"train.epochs={epochs}"] if epochs else []))
    FAMILY.prepare_data(cfg)
    t0 = time.perf_counter()
    summary, _ = run_local({"family": "riscov", "cfg": cfg.to_dict(), "cpus": 1, "verbose": False,
                            "work_dir": str(work / f"riscov-L{snapshots}")})
    train_s = time.perf_counter() - t0
    model = FAMILY.build_model(cfg)
    model.load_state_dict(load_checkpoint(str(work / f"riscov-L{snapshots}" / "best"), "riscov")["model"])
    model.eval()
    x, rt, angles = simulate_with_snapshots(cfg.data, n_test, seed=424_242 + snapshots)
    r_samp = torch.from_numpy(x @ x.conj().transpose(0, 2, 1) / snapshots).to(torch.complex64)
    r_true = torch.from_numpy(rt).to(torch.complex64)
    r_lw = torch.from_numpy(np.stack([ledoit_wolf(xi) for xi in x])).to(torch.complex64)
    beta = beta_at(cfg, cfg.train.epochs - 1)
    with torch.no_grad():
        r_pred = model(r_samp)
    w, eps = cfg.loss.diag_weight, cfg.loss.eps
    est = {"sample_cov": r_samp, "ledoit_wolf": r_lw, "forward_backward": forward_backward(r_samp),
           "toeplitz": toeplitz_average(r_samp), "oracle_doa": oracle_nnls(r_samp, torch.from_numpy(angles)),
           "model_pred": r_pred, "model_blend": blend(r_pred, r_samp, beta)}
    scores = {k: float(nmse(v, r_true, w, eps).mean()) for k, v in est.items()}
    floor = min(scores[k] for k in ("sample_cov", "ledoit_wolf", "forward_backward", "toeplitz"))
    gains = {k: captured_gain(scores[k], floor, scores["oracle_doa"], "log") for k in ("model_blend", "model_pred")}
    return {"snapshots": snapshots, "beta_final": beta, "train_s": train_s, "epochs": cfg.train.epochs,
            "best_epoch": summary["best_epoch"], "val_nmse_blend_best": summary["best"], "test_items": n_test,
            "nmse": scores, "captured_gain_db": gains,
            "ratio_to_sample_cov": {k: B.ratio(v, scores["sample_cov"]) for k, v in scores.items()}}


def tse(epochs: int, work: Any) -> dict[str, Any]:
    from mlplatform.families.tse.family import FAMILY
    from mlplatform.registry import build_config
    from mlplatform.train.executors import run_local

    cfg = build_config("tse", "debug", [f"train.epochs={epochs}"])
    FAMILY.prepare_data(cfg)
    t0 = time.perf_counter()
    summary, rep = run_local({"family": "tse", "cfg": cfg.to_dict(), "cpus": 1, "verbose": False,
                              "work_dir": str(work / "tse")})
    best = max(rep.history, key=lambda m: m["val/si_sdr_tp"])  # the family's selection rule
    return {"epochs": epochs, "train_s": time.perf_counter() - t0, "best_epoch": summary["best_epoch"],
            "si_sdr_model_db": best["val/si_sdr_tp"],
            "si_sdr_mixture_db": best["val/si_sdr_tp"] - best["val/si_sdri_tp"],
            "si_sdri_db": best["val/si_sdri_tp"], "last_epoch_si_sdri_db": rep.history[-1]["val/si_sdri_tp"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", default="8,16,64")
    p.add_argument("--riscov-epochs", type=int, default=None, help="default: the debug preset's")
    p.add_argument("--test-items", type=int, default=1000)
    p.add_argument("--tse-epochs", type=int, default=8)
    p.add_argument("--skip-tse", action="store_true")
    a = p.parse_args(argv)
    B.quiet_logs()
    work = B.scratch("base")
    ris = [riscov_at(int(L), a.riscov_epochs, a.test_items, work) for L in a.snapshots.split(",")]
    return B.emit("baselines", {"threads": torch.get_num_threads(), "riscov": ris,
                                "tse": None if a.skip_tse else tse(a.tse_epochs, work)})


if __name__ == "__main__":
    main()
