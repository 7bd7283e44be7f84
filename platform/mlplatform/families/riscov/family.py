"""The riscov Family bundle: schedule (β annealing), loss, validation metrics, guards."""
from __future__ import annotations

import math
import random

import torch

from mlplatform.families.riscov import config as C
from mlplatform.families.riscov import data as D
from mlplatform.families.riscov.floors import forward_backward, ledoit_wolf, oracle_nnls, toeplitz_average
from mlplatform.families.riscov.losses import blend, effective_weights, nmse, nmse_parts
from mlplatform.families.riscov.metrics import doa_sq_error, music_doa
from mlplatform.families.riscov.model import CovEstimator
from mlplatform.protocol import Family, MetricSpec, Probe, StepContext
from mlplatform.train.terms import LossTerms


def warmup_epochs(cfg: C.RiscovConfig) -> int:
    t = cfg.train
    return max(t.beta_min_warmup_epochs, int(t.beta_warmup_frac * t.epochs))


def beta_at(cfg: C.RiscovConfig, epoch: int) -> float:
    """β for a 0-based epoch: linear beta_start → beta_final over the warmup, then beta_final (± jitter)."""
    t = cfg.train
    w = warmup_epochs(cfg)
    beta = t.beta_start + (t.beta_final - t.beta_start) * min(1.0, epoch / w)
    if t.beta_jitter > 0 and epoch >= w:
        beta += random.Random(t.seed * 7919 + epoch).uniform(-t.beta_jitter, t.beta_jitter)
    return min(1.0, max(0.0, beta))


def _weights(cfg: C.RiscovConfig, beta: float, epoch: int, warmup: int) -> dict[str, float]:
    """A schedule entry: β and the loss weights at that β (all compute_loss reads; logged as train/<key>)."""
    lam_cov, lam_pred, safety = effective_weights(cfg.loss, beta, epoch, warmup)
    return {"beta": beta, "lam_cov": lam_cov, "lam_cov_pred_eff": lam_pred, "beta_safety": float(safety)}


def schedule(cfg: C.RiscovConfig, epoch: int) -> dict[str, float]:
    return _weights(cfg, beta_at(cfg, epoch), epoch, warmup_epochs(cfg))


def build_model(cfg: C.RiscovConfig) -> torch.nn.Module:
    return CovEstimator.from_config(cfg)


def compute_loss(model: torch.nn.Module, batch: dict, ctx: StepContext) -> LossTerms:
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    s = ctx.schedule  # β and the weights come from the loop's schedule, never recomputed here
    beta, lam_cov, lam_pred, safety = s["beta"], s["lam_cov"], s["lam_cov_pred_eff"], bool(s["beta_safety"])
    r_samp, r_true = batch["r_samp"], batch["r_true"]
    r_pred = model(r_samp)
    r_blend = blend(r_pred, r_samp, beta)
    if ctx.training and not r_blend.requires_grad:
        raise RuntimeError("R_blend must require gradients during TRAIN (hard guard: a detached blend trains nothing)")
    eps, w = cfg.loss.eps, cfg.loss.diag_weight
    nb_d, nb_o = nmse_parts(r_blend, r_true, eps)
    loss_blend = (w * nb_d + (1 - w) * nb_o).mean()
    loss_pred = nmse(r_pred, r_true, w, eps).mean()
    terms = LossTerms()
    terms.add("nmse_blend", loss_blend, lam_cov)
    terms.add("nmse_pred", loss_pred, lam_pred)
    terms.add("nmse_blend_diag", nb_d.mean(), 0.0)
    terms.add("nmse_blend_off", nb_o.mean(), 0.0)
    terms.outputs = {"r_pred": r_pred, "r_blend": r_blend}
    st = ctx.state
    if ctx.training and st.get("rank", 0) == 0 and st.get("verbose", True):
        if not st.get("loss_printed"):
            # the [LOSS] diagnostic lines (weights, terms, requires_grad), once per run
            print(f"[Beta Warmup] Annealing β from {cfg.train.beta_start:.2f} → {cfg.train.beta_final:.2f} "
                  f"over {warmup_epochs(cfg)} epochs", flush=True)
            print(f"[LOSS] lam_cov={lam_cov:.3g}, lam_cov_pred={lam_pred:.3g}", flush=True)
            print(f"[LOSS] loss_nmse={float(loss_blend.detach()):.6f}, loss_nmse_pred={float(loss_pred.detach()):.6f}", flush=True)
            print(f"[LOSS] R_blend.requires_grad={r_blend.requires_grad}", flush=True)
            fro = float((r_blend.detach() - r_true).abs().pow(2).sum((-2, -1)).sqrt().mean())
            print(f"[LOSS] ||R_hat - R_true||_F={fro:.3f}", flush=True)
            st["loss_printed"] = True
        if st.get("beta_epoch") != ctx.epoch:
            print(f"[Beta] epoch={ctx.epoch + 1}, beta={beta:.3f} (warmup: {warmup_epochs(cfg)})", flush=True)
            st["beta_epoch"] = ctx.epoch
        if safety and not st.get("safety_printed"):
            print(f"[SAFETY] beta={beta:.3f} >= 0.999: lam_cov_pred raised to {lam_pred:.3g} (0.2·lam_cov)", flush=True)
            st["safety_printed"] = True
    return terms


GRID = torch.arange(-90.0, 90.01, 0.5)


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    w, eps = cfg.loss.diag_weight, cfg.loss.eps
    r_true, r_samp = batch["r_true"], batch["r_samp"]
    r_pred, r_blend = terms.outputs["r_pred"], terms.outputs["r_blend"]
    k, kmax = batch["n_sources"], cfg.data.max_sources
    grid = GRID.to(r_true.device)
    est_b = music_doa(r_blend, k, kmax, grid)
    est_s = music_doa(r_samp, k, kmax, grid)
    return {
        "nmse_blend": nmse(r_blend, r_true, w, eps),
        "nmse_pred": nmse(r_pred, r_true, w, eps),
        "nmse_samp": nmse(r_samp, r_true, w, eps),
        "doa_sq_blend": doa_sq_error(est_b, batch["angles_deg"]),
        "doa_sq_samp": doa_sq_error(est_s, batch["angles_deg"]),
    }


def trace_identity(r_samp: torch.Tensor) -> torch.Tensor:
    """The identity-scaled trace tr(R_samp)/N · I: a covariance that knows only the total power."""
    n = r_samp.shape[-1]
    tr = torch.diagonal(r_samp, dim1=-2, dim2=-1).sum(-1).real / n
    eye = torch.eye(n, dtype=r_samp.dtype, device=r_samp.device)
    return tr[:, None, None].to(r_samp.dtype) * eye


def baselines(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Trivial covariances the blend could drift to, scored on the selection metric."""
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    w, eps, r_true = cfg.loss.diag_weight, cfg.loss.eps, batch["r_true"]
    return {"samp": {"nmse_blend": nmse(batch["r_samp"], r_true, w, eps)},
            "trace": {"nmse_blend": nmse(trace_identity(batch["r_samp"]), r_true, w, eps)}}


def floors(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Classical estimators that need no training, scored like R_blend (with the sample covariance and the
    scaled identity of ``baselines``, which count as floors too). Ledoit-Wolf uses its Gaussian plug-in
    shrinkage (the batch holds R_samp, not the snapshots). Toeplitz averaging is the strong one: the
    array's true covariance is Hermitian Toeplitz by construction."""
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    w, eps, r_true, r_samp = cfg.loss.diag_weight, cfg.loss.eps, batch["r_true"], batch["r_samp"]
    return {"ledoit_wolf": {"nmse_blend": nmse(ledoit_wolf(r_samp, cfg.data.snapshots), r_true, w, eps)},
            "forward_backward": {"nmse_blend": nmse(forward_backward(r_samp), r_true, w, eps)},
            "toeplitz": {"nmse_blend": nmse(toeplitz_average(r_samp), r_true, w, eps)}}


def ceilings(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """The DOA oracle: the true angles (``angles_deg``, NaN padded) known, a non-negative least-squares fit
    of the source powers and the noise power to R_samp."""
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    fit = oracle_nnls(batch["r_samp"], batch["angles_deg"])
    return {"oracle_doa": {"nmse_blend": nmse(fit, batch["r_true"], cfg.loss.diag_weight, cfg.loss.eps)}}


def probe_beta0(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """β forced to 0: R_blend = R_pred, the network alone (no new forward: R_pred is β-independent)."""
    cfg: C.RiscovConfig = ctx.cfg  # type: ignore[assignment]
    return {"nmse_blend": nmse(terms.outputs["r_pred"], batch["r_true"], cfg.loss.diag_weight, cfg.loss.eps)}


METRICS = {
    "val/nmse_blend": MetricSpec("min", "NMSE of R_blend = (1-β)R_pred + βR_samp vs R_true (what inference uses)",
                                  scale="log"),
    "val/nmse_pred": MetricSpec("min", "NMSE of the network's R_pred alone", scale="log"),
    "val/nmse_samp": MetricSpec("min", "NMSE of the sample covariance (the classical estimate)"),
    "val/doa_rmse_deg": MetricSpec("min", "MUSIC DOA RMSE in degrees on R_blend"),
    "val/doa_rmse_deg_samp": MetricSpec("min", "MUSIC DOA RMSE in degrees on R_samp"),
    "val/loss": MetricSpec("min", "weighted training loss", exploitable=(
        "it is lam_cov·NMSE(R_blend) + lam_cov_pred·NMSE(R_pred) with weights the sweep varies and β-scheduled "
        "blending: lowering a weight or hiding behind R_samp lowers it without a better estimate")),
}


def finalize_metrics(m: dict[str, float]) -> dict[str, float]:
    out = dict(m)
    if "doa_sq_blend" in out:
        out["doa_rmse_deg"] = math.sqrt(out.pop("doa_sq_blend"))
    if "doa_sq_samp" in out:
        out["doa_rmse_deg_samp"] = math.sqrt(out.pop("doa_sq_samp"))
    return out


def litmus_schedule(cfg: C.RiscovConfig, i: int, n: int) -> dict[str, float]:
    """The gradient litmus (jobs/litmus.py): β warms up 0.0 → beta_final over the n steps."""
    return _weights(cfg, cfg.train.beta_final * i / max(1, n - 1), 0, 1)


FAMILY = Family(
    inputs=("r_samp",),
    name="riscov",
    config_cls=C.RiscovConfig,
    presets={"debug": C.debug, "full": C.full},
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    selection_metric="val/nmse_blend",
    mode="min",
    schedule=schedule,
    prepare_data=D.prepare_data,
    finalize_metrics=finalize_metrics,
    litmus_schedule=litmus_schedule,
    # the default core starts at Toeplitz averaging (a floor): one batch cannot lose 20% of its loss in 5 steps,
    # so the litmus checks the loss wiring on the spectrum core, which starts from R_pred ∝ I
    litmus_overrides=("model.core=spectrum",),
    # an overfit test fits a fixed training set, not fresh draws
    overfit=("val/nmse_blend", "<", 0.5, ("train.epochs=30", "data.fresh_train=false")),
    metrics=METRICS,
    baselines=baselines,
    floors=floors,
    ceilings=ceilings,
    gain_ceiling="oracle_doa",
    objectives=("val/nmse_blend:min", "val/doa_rmse_deg:min"),  # estimate vs what it is for (DOA)
    probes=(Probe("beta0", probe_beta0, versus="baseline:samp",
                  meaning="with β forced to 0, R_pred alone is no better than the sample covariance: the network "
                          "hides behind R_samp (docs/families/riscov.md)"),),
    description="covariance estimator for an RIS/array receiver, R_blend = (1-β)·R_pred + β·R_samp",
)
