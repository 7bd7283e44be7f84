"""Floor and ceiling of the vqvae family (mlplatform.integrity.floors): where the reconstruction error
sits between "free" and "no quantisation at all".

- **Floor ``pca``**: per category, a PCA keeping as many components as the model's coarsest level has
  latent dimensions (``latent_dims[c][0]``), fitted by one SVD on the training rows. No training.
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

import torch

from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.families.vqvae import data as D
from mlplatform.families.vqvae.losses import per_sample_mse

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
    return {"pca": {"recon_error": per_sample_mse(pca_reconstruct(ctx.cfg, x.cpu()).to(x.device), x)}}


def ceilings(model: torch.nn.Module, batch: dict, terms: Any, ctx: Any, fam: Any) -> dict[str, dict[str, torch.Tensor]]:
    if not ctx.cfg.model.quantize:  # the ceiling's own training run
        return {}
    x = batch["x"]
    with torch.no_grad():
        recon = _ceiling_model(str(ensure_ceiling(ctx.cfg, fam, remote=False)))(x.cpu())["recon"].to(x.device)
    return {"unquantised": {"recon_error": per_sample_mse(recon, x)}}


def bound_errors(cfg: Any, x: torch.Tensor, fam: Any) -> dict[str, dict[str, Any]]:
    """Floor and ceiling on a whole matrix (``compare_compression``): recon error and per-category MSE."""
    from mlplatform.families.vqvae.losses import per_category_mse

    sizes, cats = D.layout(cfg).sizes, D.layout(cfg).categories
    out = {}
    with torch.no_grad():
        for name, recon in (("floor_pca", pca_reconstruct(cfg, x)),
                            ("ceiling_unquantised", _ceiling_model(str(ensure_ceiling(cfg, fam)))(x)["recon"])):
            cat = per_category_mse(recon, x, sizes).mean(0)
            out[name] = {"recon_error": float(per_sample_mse(recon, x).mean()),
                         "mse": {c: float(v) for c, v in zip(cats, cat)}}
    return out

