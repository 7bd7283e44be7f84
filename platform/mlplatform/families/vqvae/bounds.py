"""Floors and ceiling of the vqvae family (mlplatform.integrity.floors): where the reconstruction error
sits between "free" and "no quantisation at all".

- **Floors ``residual_kmeans`` and ``pca_quantised``** (``bitfloors``): per category, estimators that need
  no training and spend at most the model's bits (``prod(codebook_sizes)`` codes per category), fitted
  once per run on the training rows of the standardised matrix the model sees, seeded by ``train.seed``.
  A floor must be held to the model's budget: with unbounded bits a floor measures the quantiser's
  existence, not the model (docs/families/vqvae.md, "Floors and ceilings").
- **Reference ``pca``** (logged as ``val/reference_pca``, not a floor): per category, a PCA keeping as
  many components as the coarse level has latent dimensions (``latent_dims[c][0]``), one SVD of the
  training rows, with real-valued coefficients, i.e. unbounded bits.
- **Ceiling ``unquantised``**: the same encoders, projections and decoders with the quantisers bypassed
  (``model.quantize=false``, uniform ratios), trained once per data and training configuration by the
  platform's own loop (``run_local``, no MLflow) and cached under ``<data root>/ceiling-<fp>``. It is built
  by ``prepare_data`` (``jobs/train.py``, sweeps) before any trial, or at the first validation that needs it;
  every run with the same table, sizes, schedule and seed then scores the same frozen checkpoint on its
  own frozen validation batches. Quantisation can only lose information, so this model is the bound a
  codebook of any size approaches.
"""
from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.families.vqvae import data as D
from mlplatform.families.vqvae.bitfloors import PcaScalarQuantiser, ResidualKMeans, bit_budget
from mlplatform.families.vqvae.losses import per_sample_mse

BIT_MATCHED = ("residual_kmeans", "pca_quantised")

CEILING_VERSION = "vqvae-ceiling-1"
# keys that change nothing in the unquantised model (codebooks) or in how it is trained (monitoring)
_CODEBOOK_KEYS = ("codebook_sizes", "ema_decay", "kmeans_init", "kmeans_iters", "dead_code_threshold",
                  "auto_compression_strategy", "compression_ratios", "ratio_scale_min", "ratio_scale_max")


def _cfg_json(cfg: Any) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


@functools.lru_cache(maxsize=8)
def _pca_bases(cfg_json: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from mlplatform.families.vqvae.config import VqvaeConfig

    cfg = VqvaeConfig.from_dict(json.loads(cfg_json))
    x, lay = D.load_matrix(cfg)
    tr, _ = D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    xt = torch.from_numpy(x[tr]).double()
    out = []
    for xc, dims in zip(xt.split(lay.sizes, dim=1), lay.latent_dims):
        mu = xc.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(xc - mu, full_matrices=False)
        out.append((mu.float(), vh[: min(dims[0], xc.shape[1])].T.float().contiguous()))
    return out


def pca_reconstruct(cfg: Any, x: torch.Tensor) -> torch.Tensor:
    """Shape: x [B, P] (standardised, grouped by category) -> [B, P], each category projected on its own
    top ``latent_dims[c][0]`` principal components of the training rows."""
    parts = []
    for xc, (mu, v) in zip(x.split(D.layout(cfg).sizes, dim=1), _pca_bases(_cfg_json(cfg))):
        parts.append(mu + (xc - mu) @ v @ v.T)
    return torch.cat(parts, 1)


@functools.lru_cache(maxsize=4)
def _bit_matched_coders(cfg_json: str) -> list[tuple[ResidualKMeans, PcaScalarQuantiser]]:
    """Per category, both bit-matched coders fitted on the training rows (seconds; once per process)."""
    from mlplatform.families.vqvae.config import VqvaeConfig

    cfg = VqvaeConfig.from_dict(json.loads(cfg_json))
    x, lay = D.load_matrix(cfg)
    tr, _ = D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    ks, seed = list(cfg.model.codebook_sizes), int(cfg.train.seed)
    cuts = np.cumsum(lay.sizes)[:-1]
    return [(ResidualKMeans.fit(xc, ks, seed), PcaScalarQuantiser.fit(xc, dims[0], bit_budget(ks), seed))
            for xc, dims in zip(np.split(x[tr].astype(np.float64), cuts, axis=1), lay.latent_dims)]


def bit_matched_reconstruct(cfg: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Shape: x [B, P] (standardised, grouped by category) -> {floor name: recon [B, P]}, each category
    coded with at most the model's ``prod(codebook_sizes)`` codes."""
    xs = np.split(x.detach().cpu().double().numpy(), np.cumsum(D.layout(cfg).sizes)[:-1], axis=1)
    coders = _bit_matched_coders(_cfg_json(cfg))
    out = {}
    for j, name in enumerate(BIT_MATCHED):
        rec = np.concatenate([pair[j].reconstruct(xc) for xc, pair in zip(xs, coders)], axis=1)
        out[name] = torch.from_numpy(rec).to(x.dtype)
    return out


def ceiling_config(cfg: Any) -> Any:
    return cfg.override(["model.quantize=false", "model.compression_ratios=uniform", "train.integrity=false",
                         "train.alarms=false"])


def _ceiling_key(cfg: Any) -> dict[str, Any]:
    """What the ceiling depends on: the table, sizes, schedule and seed, not the codebooks or the strategy."""
    d = ceiling_config(cfg).to_dict()
    for k in _CODEBOOK_KEYS:
        d["model"].pop(k, None)
    d["data"].pop("root", None)
    if d["data"].get("standardize", True):  # the default predates the option: its cached ceilings stay valid
        d["data"].pop("standardize", None)
    if not cfg.data.table:
        d["data"]["table"] = str(D.generated_dir(cfg).name)  # the generated table's own fingerprint
    else:
        from mlplatform.families.vqvae.features import table_fingerprint

        d["data"]["table"] = table_fingerprint(cfg.data.table)
    return d


def ceiling_dir(cfg: Any) -> Path:
    return D.data_root(cfg) / f"ceiling-{cache.fingerprint(_ceiling_key(cfg), CEILING_VERSION)}"


def _train_ceiling(fam: Any, cfg_dict: dict[str, Any], tmp: str) -> dict[str, Any]:
    from mlplatform.train.executors import run_local

    with torch.enable_grad():  # built lazily from a validation hook, which runs under no_grad
        summary, _ = run_local({"family": fam, "cfg": cfg_dict, "work_dir": str(Path(tmp) / "run"),
                                "verbose": False, "label": "vqvae ceiling", "use_gpu": torch.cuda.is_available()})
    shutil.copytree(Path(summary["work_dir"]) / "best", Path(tmp) / "best")
    shutil.rmtree(Path(tmp) / "run", ignore_errors=True)
    return {"best_recon_error": summary["best"], "best_epoch": summary["best_epoch"]}


def ensure_ceiling(cfg: Any, fam: Any, remote: bool = True) -> Path:
    """The cached unquantised model's checkpoint folder, trained first if missing with ``fam`` (the vqvae
    Family, passed in so this module does not import it back) as a Ray task when Ray is up and ``remote``."""
    folder = ceiling_dir(cfg)

    def build(tmp: Path) -> dict[str, Any]:
        ray = ray_if_up()  # None: build here (Ray not started or not installed)

        c = ceiling_config(cfg).to_dict()
        print(f"[vqvae] training the unquantised ceiling once -> {folder}", flush=True)
        if remote and ray is not None:
            res = ray.get(ray.remote(num_cpus=1)(_train_ceiling).remote(fam, c, str(tmp)))
        else:
            res = _train_ceiling(fam, c, str(tmp))
        return {"family": "vqvae", "kind": "ceiling", "checkpoint": "best", **res}

    cache.build_once(folder, build)
    return folder / "best"


@functools.lru_cache(maxsize=4)
def _ceiling_model(path: str) -> torch.nn.Module:
    from mlplatform.families.vqvae.build import load_model

    return load_model(path)[1]


def floors(model: torch.nn.Module, batch: dict, terms: Any, ctx: Any) -> dict[str, dict[str, torch.Tensor]]:
    x = batch["x"]
    return {name: {"recon_error": per_sample_mse(r.to(x.device), x)}
            for name, r in bit_matched_reconstruct(ctx.cfg, x).items()}


def reference_pca(x: torch.Tensor, cfg: Any) -> torch.Tensor:
    """Shape: x [B, P] -> [B], the unbounded-bit PCA's per-sample error (``val/reference_pca``)."""
    return per_sample_mse(pca_reconstruct(cfg, x.cpu()).to(x.device), x)


def ceilings(model: torch.nn.Module, batch: dict, terms: Any, ctx: Any, fam: Any) -> dict[str, dict[str, torch.Tensor]]:
    if not ctx.cfg.model.quantize:  # the ceiling's own training run
        return {}
    x = batch["x"]
    with torch.no_grad():
        recon = _ceiling_model(str(ensure_ceiling(ctx.cfg, fam, remote=False)))(x.cpu())["recon"].to(x.device)
    return {"unquantised": {"recon_error": per_sample_mse(recon, x)}}


def bound_errors(cfg: Any, x: torch.Tensor, fam: Any) -> dict[str, dict[str, Any]]:
    """Floors, reference and ceiling on a whole matrix (``compare_compression``): recon error and
    per-category MSE, keyed ``floor_<name>``, ``reference_pca`` and ``ceiling_unquantised``."""
    with torch.no_grad():
        recons = {f"floor_{k}": v for k, v in bit_matched_reconstruct(cfg, x).items()}
        recons["reference_pca"] = pca_reconstruct(cfg, x)
        recons["ceiling_unquantised"] = _ceiling_model(str(ensure_ceiling(cfg, fam)))(x)["recon"]
    return errors_of(cfg, x, recons)


def errors_of(cfg: Any, x: torch.Tensor, recons: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """{name: {"recon_error", "mse": {category: value}}} of each reconstruction of ``x``."""
    from mlplatform.families.vqvae.losses import per_category_mse

    sizes, cats = D.layout(cfg).sizes, D.layout(cfg).categories
    out = {}
    with torch.no_grad():
        for name, recon in recons.items():
            cat = per_category_mse(recon, x, sizes).mean(0)
            out[name] = {"recon_error": float(per_sample_mse(recon, x).mean()),
                         "mse": {c: float(v) for c, v in zip(cats, cat)}}
    return out

