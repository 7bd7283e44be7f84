"""The vqvae Family bundle: model from the run-time layout, loss, validation metrics, codebook guard."""
from __future__ import annotations

import torch

from mlplatform.families.vqvae import config as C
from mlplatform.families.vqvae import bounds as B
from mlplatform.families.vqvae import data as D
from mlplatform.families.vqvae.losses import commitment, per_category_mse, per_sample_mse
from mlplatform.families.vqvae.metrics import finalize, usage_onehots
from mlplatform.families.vqvae.build import build_model
from mlplatform.protocol import Family, GuardSpec, MetricSpec, Probe, StepContext, unwrap
from mlplatform.train.terms import NONNEG, LossTerms


def compute_loss(model: torch.nn.Module, batch: dict, ctx: StepContext) -> LossTerms:
    cfg: C.VqvaeConfig = ctx.cfg  # type: ignore[assignment]
    x = batch["x"]
    out = model(x)
    terms = LossTerms()
    terms.add("recon", per_sample_mse(out["recon"], x).mean(), cfg.loss.recon_weight, NONNEG)
    terms.add("commitment", commitment(out["commitment"]), cfg.loss.commitment_weight, NONNEG)
    terms.outputs = out
    st = ctx.state
    if ctx.training and st.get("rank", 0) == 0 and not st.get("layout_printed"):
        lay = D.layout(cfg)
        inner = unwrap(model)
        print(f"[vqvae] strategy={lay.strategy} categories={len(lay.categories)} features={inner.n_features} "
              f"params={sum(p.numel() for p in inner.parameters())}", flush=True)
        for c, n, r, d in zip(lay.categories, lay.sizes, lay.ratios, lay.latent_dims):
            print(f"[vqvae]   {c}: {n} features, ratios {list(r)} -> latent {list(d)}", flush=True)
        st["layout_printed"] = True
    return terms


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    inner = unwrap(model)
    x, out = batch["x"], terms.outputs
    err = per_sample_mse(out["recon"], x)
    cat = per_category_mse(out["recon"], x, inner.sizes)
    size = float(sum(p.numel() for p in inner.parameters()))  # the Pareto pair's 2nd objective (val/params)
    res = {"recon_error": err, "quality": 1.0 - err, "params": torch.full_like(err, size)}
    res.update({f"mse/{c}": cat[:, i] for i, c in enumerate(inner.categories)})
    res.update(usage_onehots(out["indices"], inner.categories, inner.codebook_sizes))
    if ctx.cfg.train.integrity and ctx.cfg.model.quantize:
        # a reference, not a floor: its coefficients are real-valued, i.e. it spends unbounded bits
        res["reference_pca"] = B.reference_pca(x, ctx.cfg)
    return res


def baselines(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """The per-feature mean (of this validation batch: a constant predictor can do no better on it)."""
    x = batch["x"]
    return {"feature_mean": {"recon_error": per_sample_mse(x.mean(0, keepdim=True).expand_as(x), x)}}


def level_probe(level: int):
    def run(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Level ``level``'s codes zeroed: how much worse is the reconstruction?"""
        x = batch["x"]
        return {"recon_error": per_sample_mse(unwrap(model)(x, drop_level=level)["recon"], x)}
    return run


def prepare_data(cfg: C.VqvaeConfig) -> dict:
    """The table and every strategy's analysis (``data.prepare_data``), then the unquantised ceiling once."""
    info = D.prepare_data(cfg)
    if cfg.train.integrity and cfg.model.quantize:
        info["ceiling"] = str(B.ensure_ceiling(cfg, FAMILY))
    return info


def ceilings(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """The unquantised ceiling (``bounds.ceilings``), trained with this Family if not cached yet."""
    return B.ceilings(model, batch, terms, ctx, FAMILY)


METRICS = {
    "val/recon_error": MetricSpec("min", "reconstruction MSE on standardised features (all levels)", scale="log"),
    "val/quality": MetricSpec("max", "1 - recon_error"),
    "val/params": MetricSpec("min", "trainable and codebook parameters of the model (its size)"),
    "val/reference_pca": MetricSpec("min", "recon error of a per-category PCA at the coarse latent size with "
                                           "real-valued coefficients (unbounded bits): a reference, not a floor",
                                    scale="log"),
    "val/codebook_utilization": MetricSpec("max", "share of codes used on the validation items"),
    "val/loss": MetricSpec("min", "recon + commitment, weighted", exploitable=(
        "the commitment term shrinks when codes collapse and its weight is swept")),
}


def guards(cfg: C.VqvaeConfig) -> list[GuardSpec]:
    if not cfg.model.quantize:  # the ceiling has no codebooks
        return []
    return [GuardSpec("codebook_utilization", "val/codebook_utilization", lo=cfg.train.min_codebook_utilization,
                      reason="codebook collapse: most codes are dead on held-out items (the research baseline "
                             "used 20% of its codes; docs/families/vqvae.md)")]


FAMILY = Family(
    inputs=("x",),
    name="vqvae",
    config_cls=C.VqvaeConfig,
    presets={"debug": C.debug, "note": C.note, "full": C.full},
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    selection_metric="val/recon_error",
    mode="min",
    prepare_data=prepare_data,
    guards=guards,
    finalize_metrics=finalize,
    metrics=METRICS,
    objectives=("val/recon_error:min", "val/params:min"),  # reconstruction vs model size
    baselines=baselines,
    floors=B.floors,
    ceilings=ceilings,
    gain_ceiling="unquantised",
    probes=tuple(Probe(f"level{i}", level_probe(i), versus="model",
                       meaning=f"zeroing level {i}'s codes does not hurt the reconstruction: that level is dead")
                 for i in range(3)),
    overfit=("val/recon_error", "<", 0.5, ("train.epochs=20",)),
    description="hierarchical VQ-VAE over feature categories with per-category 'auto' compression ratios",
)
