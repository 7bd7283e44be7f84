"""riscov config (docs/families/riscov.md): covariance estimation with R_blend = (1-β)·R_pred + β·R_samp."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlplatform.config import Config, ConfigError, F, OptimSection, TrainSection, section


@dataclass
class RiscovModel:
    hidden: int = F(256, ge=8, help="MLP width")
    depth: int = F(3, ge=1, le=12, help="hidden layers")
    dropout: float = F(0.0, ge=0.0, lt=1.0)
    core: Literal["toeplitz_residual", "spectrum"] = F(
        "toeplitz_residual", help="R_pred's Hermitian Toeplitz core: the input's Toeplitz average plus learnt lag corrections, "
                       "or a non-negative spatial spectrum on a grid plus noise power (PSD by construction)")
    grid: int = F(256, ge=8, help="spectrum core: grid points in sin(theta) over [-1, 1)")
    samp_cancel: bool = F(True, help="R_pred = PSD projection of (core - c·R_samp), c a learnt scalar: lets R_blend "
                                     "cancel the blend's non-Toeplitz sample noise (c -> beta/(1-beta))")
    eig_features: bool = F(True, help="feed the eigenvalues of the normalised R_samp to the MLP")
    full_features: bool = F(True, help="feed the full normalised R_samp (not only its Toeplitz lags) to the MLP")


@dataclass
class RiscovLoss:
    lam_cov: float = F(1.0, help="weight of NMSE(R_blend, R_true); must be > 0 (at 0 the main term carries no signal)")
    lam_cov_pred: float = F(0.05, ge=0.0, help="auxiliary weight of NMSE(R_pred, R_true)")
    diag_weight: float = F(0.5, ge=0.0, le=1.0, help="NMSE = w·NMSE_diag + (1-w)·NMSE_offdiag")
    eps: float = F(1e-12, gt=0.0, help="NMSE denominator epsilon")
    curriculum: bool = F(False, help="anneal lam_cov_pred from curriculum_pred_start over the β warmup")
    curriculum_pred_start: float = F(0.2, ge=0.0)
    beta_safety: bool = F(True, help="β >= 0.999 raises lam_cov_pred to >= 0.2·lam_cov (the network cannot hide behind R_samp); false only to "
                                     "reproduce the failure the reliance alarm must catch")


@dataclass
class RiscovData:
    n_elements: int = F(8, ge=2, le=64, help="ULA elements N (half-wavelength spacing)")
    min_sources: int = F(1, ge=1)
    max_sources: int = F(3, ge=1)
    snapshots: int = F(16, ge=1, help="snapshots L per covariance estimate")
    snr_db_min: float = F(-5.0)
    snr_db_max: float = F(20.0)
    angle_min_deg: float = F(-60.0, ge=-90.0, le=90.0)
    angle_max_deg: float = F(60.0, ge=-90.0, le=90.0)
    min_separation_deg: float = F(5.0, ge=0.0)
    n_train: int = F(20000, ge=1)
    n_val: int = F(2000, ge=1)
    n_test: int = F(2000, ge=1)
    seed: int = F(7, help="fixes every split")
    fresh_train: bool = F(False, help="draw n_train new training items every epoch from (seed, train.seed, epoch, "
                                      "rank) instead of reusing the cached train split; val/test stay cached")
    shards: int = F(4, ge=1, help="Ray tasks (and Parquet files) per split")
    root: str = F("", help="cache folder; empty = <repo>/data/riscov")


@dataclass
class RiscovTrain(TrainSection):
    beta_start: float = F(0.0, ge=0.0, le=1.0)
    beta_final: float = F(0.30, ge=0.0, le=1.0)
    beta_warmup_frac: float = F(0.2, ge=0.0, le=1.0, help="warmup = max(min_warmup, int(frac·epochs))")
    beta_min_warmup_epochs: int = F(2, ge=1)
    beta_jitter: float = F(0.0, ge=0.0, le=0.5, help="uniform ± jitter on β after warmup")


@dataclass
class RiscovConfig(Config):
    model: RiscovModel = section(RiscovModel)
    loss: RiscovLoss = section(RiscovLoss)
    data: RiscovData = section(RiscovData)
    train: RiscovTrain = section(RiscovTrain)
    optim: OptimSection = section(OptimSection)

    def check(self) -> None:
        if not self.loss.lam_cov > 0:
            raise ConfigError(f"loss.lam_cov: {self.loss.lam_cov!r} must be > 0 (with lam_cov = 0 the main "
                              f"NMSE(R_blend) term carries no training signal; docs/families/riscov.md)")
        d = self.data
        if d.min_sources > d.max_sources:
            raise ConfigError(f"data.min_sources ({d.min_sources}) must be <= data.max_sources ({d.max_sources})")
        if d.max_sources >= d.n_elements:
            raise ConfigError(f"data.max_sources ({d.max_sources}) must be < data.n_elements ({d.n_elements}) for MUSIC")
        if d.snr_db_min > d.snr_db_max:
            raise ConfigError("data.snr_db_min must be <= data.snr_db_max")
        span = d.angle_max_deg - d.angle_min_deg
        if span <= 0 or d.min_separation_deg * (d.max_sources - 1) > span:
            raise ConfigError("data.angle_min_deg/angle_max_deg/min_separation_deg leave no room for max_sources")


def debug() -> RiscovConfig:
    """Trains on 2 CPU cores in under two minutes: 72 epochs of 8192 fresh simulator draws (64 steps each)."""
    c = RiscovConfig()
    c.model.hidden, c.model.depth = 256, 3
    c.data.n_train, c.data.n_val, c.data.n_test, c.data.shards = 8192, 512, 512, 2
    c.data.fresh_train = True
    c.train.epochs, c.train.batch_size, c.train.val_batches = 72, 128, 2
    c.train.num_threads = 1  # two threads thrash on a shared 2-core machine (docs/stack.md)
    c.optim.lr = 2e-3
    return c


def full() -> RiscovConfig:
    """The research scale, for GPUs."""
    c = RiscovConfig()
    c.model.hidden, c.model.depth = 512, 4
    c.data.n_train, c.data.n_val, c.data.n_test, c.data.shards = 200_000, 10_000, 10_000, 16
    c.data.fresh_train = True  # 200k new items per epoch: 60M draws over the run, no overfitting
    c.train.epochs, c.train.batch_size, c.train.val_batches = 100, 256, 40
    c.optim.lr = 1e-3
    return c
