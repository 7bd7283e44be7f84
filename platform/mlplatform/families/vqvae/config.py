"""vqvae config: hierarchical VQ-VAE over feature categories with "auto" compression ratios."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from mlplatform.families.vqvae.analysis.strategies import ALL_STRATEGIES
from mlplatform.config import Config, ConfigError, F, OptimSection, TrainSection, section

Strategy = Literal["balanced", "variance", "dimensionality", "information", "uniform"]


@dataclass
class VqvaeModel:
    compression_ratios: Any = F("auto", help="auto | uniform | {category: [r0, r1, r2]} (latent = ratio·n_features)")
    # uniform until a strategy beats it beyond seed noise on the worst category (docs/families/vqvae.md,
    # "The comparison"): the adaptive strategies stay options and the sweep's choice
    auto_compression_strategy: Strategy = F("uniform", help="strategy used when compression_ratios=auto; "
                                                           "uniform = the same ratios for every category")
    group_embedding_dim: int = F(256, ge=2, help="per-category embedding the 3 levels quantise (residually)")
    group_hidden_dim: int = F(128, ge=2, help="hidden width of each per-category encoder/decoder")
    codebook_sizes: list = F(default_factory=lambda: [32, 32, 32], help="codes per level L0/L1/L2")
    quantize: bool = F(True, help="False = the same coders with the quantisers bypassed (the ceiling)")
    ema_decay: float = F(0.9, gt=0.0, lt=1.0, help="EMA decay of the codebooks")
    kmeans_init: bool = F(True, help="initialise codebooks by k-means on the first batch")
    kmeans_iters: int = F(10, ge=1)
    dead_code_threshold: float = F(2.0, ge=0.0, help="revive codes whose EMA usage falls below this; 0 = off")
    base_ratios: list = F(default_factory=lambda: [0.3, 0.85, 1.9], help="uniform ratios; strategies scale them")
    ratio_scale_min: float = F(0.5, gt=0.0, help="ratio multiplier of a category with score 0")
    ratio_scale_max: float = F(1.5, gt=0.0, help="ratio multiplier of a category with score 1")


@dataclass
class VqvaeLoss:
    recon_weight: float = F(1.0, gt=0.0, help="weight of the reconstruction MSE (standardised features)")
    commitment_weight: float = F(0.25, ge=0.0, help="weight of the summed per-level commitment losses")


@dataclass
class VqvaeData:
    table: str = F("", help="Parquet feature table (file or folder); empty = generate one with known structure")
    root: str = F("", help="cache folder; empty = <repo>/data/vqvae")
    generator: Literal["six", "note"] = F("six", help="generated table: six groups, or the research model's 12 "
                                                          "categories of 5..33 features (features.NOTE_GROUPS)")
    n_rows: int = F(100_000, ge=2, help="rows of the generated table")
    seed: int = F(7, help="generator seed and train/val split seed")
    val_frac: float = F(0.1, gt=0.0, lt=1.0)
    n_categories: int = F(0, ge=0, help="0 = discover the count from the data (silhouette)")
    max_nan_frac: float = F(0.5, ge=0.0, le=1.0, help="drop columns with a larger NaN fraction")
    standardize: bool = F(True, help="train on zero-mean, unit-variance features; false keeps the raw scales (the "
                                     "research baseline's setting: the largest-scale category then rules the MSE)")
    analysis_rows: int = F(20_000, ge=2, help="rows sampled for clustering and characteristics")
    pca_variance: float = F(0.95, gt=0.0, le=1.0, help="variance share defining dimensionality")
    entropy_bins: int = F(32, ge=2)


@dataclass
class VqvaeTrain(TrainSection):
    min_codebook_utilization: float = F(0.5, ge=0.0, le=1.0,
                                        help="guard: val/codebook_utilization (held-out share of codes used) "
                                             "below this is a collapse")


@dataclass
class VqvaeConfig(Config):
    model: VqvaeModel = section(VqvaeModel)
    loss: VqvaeLoss = section(VqvaeLoss)
    data: VqvaeData = section(VqvaeData)
    train: VqvaeTrain = section(VqvaeTrain)
    optim: OptimSection = section(OptimSection)

    def check(self) -> None:
        m = self.model
        cr = m.compression_ratios
        if isinstance(cr, str) and cr.strip().startswith("{"):
            try:
                cr = yaml.safe_load(cr)
            except yaml.YAMLError:
                raise ConfigError(f"model.compression_ratios: cannot parse {m.compression_ratios!r} as a mapping") from None
        if isinstance(cr, str):
            if cr not in ("auto", "uniform"):
                raise ConfigError(f"model.compression_ratios: {cr!r} is not allowed; use auto, uniform or "
                                  f"{{category: [r0, r1, r2]}}")
        elif isinstance(cr, dict):
            for k, v in cr.items():
                if (not isinstance(v, (list, tuple)) or len(v) != 3
                        or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in v)):
                    raise ConfigError(f"model.compression_ratios.{k}: {v!r} must be three positive ratios [r0, r1, r2]")
            cr = {str(k): [float(r) for r in v] for k, v in cr.items()}
        else:
            raise ConfigError(f"model.compression_ratios: {cr!r} must be auto, uniform or {{category: [r0, r1, r2]}}")
        m.compression_ratios = cr
        if m.auto_compression_strategy not in ALL_STRATEGIES:
            raise ConfigError(f"model.auto_compression_strategy: choose one of {', '.join(ALL_STRATEGIES)}")
        for key, val, n in (("model.codebook_sizes", m.codebook_sizes, 3), ("model.base_ratios", m.base_ratios, 3)):
            if len(val) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in val):
                raise ConfigError(f"{key}: {val!r} must be {n} positive numbers (levels L0/L1/L2)")
        if not all(float(v).is_integer() and v >= 2 for v in m.codebook_sizes):
            raise ConfigError(f"model.codebook_sizes: {m.codebook_sizes!r} must be integers >= 2")
        m.codebook_sizes = [int(v) for v in m.codebook_sizes]
        m.base_ratios = [float(v) for v in m.base_ratios]
        if m.ratio_scale_min > m.ratio_scale_max:
            raise ConfigError("model.ratio_scale_min must be <= model.ratio_scale_max")


def debug() -> VqvaeConfig:
    """10k rows, a tiny model: a training run in seconds on 2 CPU cores."""
    c = VqvaeConfig()
    c.data.n_rows, c.data.analysis_rows = 10_000, 10_000
    c.model.group_embedding_dim, c.model.group_hidden_dim = 32, 32
    c.model.codebook_sizes = [16, 16, 16]
    c.train.epochs, c.train.batch_size, c.train.val_batches = 6, 256, 4
    c.train.num_threads = 1  # tiny matmuls: extra threads only contend on a shared 2-core machine
    c.optim.lr = 3e-3
    return c


def note() -> VqvaeConfig:
    """The research model's scale: 12 categories of 5..33 features, 10,000 training rows, 1,024 codes per
    codebook, embedding 256 / hidden 128, 100 epochs; 5,000 held-out rows (codebook usage needs them:
    with 1,024 codes a few hundred items leave most codes unseen whatever the model does)."""
    c = VqvaeConfig()
    c.data.generator, c.data.n_rows, c.data.val_frac = "note", 15_000, 1 / 3
    c.data.n_categories, c.data.analysis_rows = 12, 15_000
    c.model.codebook_sizes = [32, 32, 32]  # x 3 levels x 12 categories = 1,152 codes, the research model's ~1,000
    c.train.epochs, c.train.batch_size, c.train.val_batches, c.train.val_every = 100, 512, 10, 10
    c.train.num_threads = 1  # two trainings share the 2 cores (compare_compression)
    c.optim.lr = 1e-3
    return c


def full() -> VqvaeConfig:
    """The published configuration: group_embedding_dim 256, group_hidden_dim 128, 100 epochs, 100k rows."""
    c = VqvaeConfig()
    c.train.epochs, c.train.batch_size, c.train.val_batches = 100, 512, 20
    c.optim.lr = 1e-3
    return c
