"""The tse Family bundle (seed 004): phases, scene-aware loss, TP/TA validation metrics, selection by
TP-only SI-SDR, and the over-suppression guard on ``val/rms_ratio``."""
from __future__ import annotations

import torch

from mlplatform.families.tse import config as C
from mlplatform.families.tse import data as D
from mlplatform.families.tse.losses import scene_aware_loss
from mlplatform.families.tse.metrics import scene_metrics
from mlplatform.families.tse.model import build
from mlplatform.registry import Family, GuardSpec, StepContext
from mlplatform.train.terms import LossTerms


def build_model(cfg: C.TseConfig) -> torch.nn.Module:
    return build(cfg)


def phase_at(cfg: C.TseConfig, step: int) -> int:
    """1 = TP only (before ``train.phase2_step``), 2 = TP + TA scenes."""
    return 2 if step >= cfg.train.phase2_step else 1


def schedule(cfg: C.TseConfig, epoch: int) -> dict[str, float]:
    """Logged per epoch as train/phase and train/p_ta, taken at the epoch's last step."""
    last = (epoch + 1) * cfg.train.steps_per_epoch - 1
    return {"phase": float(phase_at(cfg, last)), "p_ta": D.p_ta_at(cfg, last)}


def compute_loss(model: torch.nn.Module, batch: dict, ctx: StepContext) -> LossTerms:
    """One forward; weights only from the run's config, identical in training and validation.

    The phase lives in the data (phase 1 batches hold no TA scene, so the TA term is an exact 0 there),
    hence training and validation share one weighting at every step.
    """
    cfg: C.TseConfig = ctx.cfg  # type: ignore[assignment]
    est = model(batch["mixture"], batch["enroll"])
    terms = scene_aware_loss(est, batch["target"], batch["tp"], cfg.loss, cfg.data.sample_rate)
    terms.outputs = {"est": est}
    st = ctx.state
    if ctx.training and st.get("rank", 0) == 0:
        if not st.get("loss_printed"):
            w = terms.weights()
            print("[LOSS] " + ", ".join(f"{k}={v:.3g}" for k, v in w.items())
                  + f" (target_db={cfg.loss.target_db}, phase 2 from step {cfg.train.phase2_step})", flush=True)
            st["loss_printed"] = True
        ph = phase_at(cfg, ctx.step)
        if st.get("phase") != ph:
            print(f"[PHASE] step {ctx.step}: phase {ph} ({'TP only' if ph == 1 else f'TP + TA, p_ta={cfg.data.p_ta}'})",
                  flush=True)
            st["phase"] = ph
    return terms


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    return scene_metrics(terms.outputs["est"], batch["target"], batch["mixture"], batch["tp"], ctx.cfg.loss.eps)


def guards(cfg: C.TseConfig) -> list[GuardSpec]:
    t = cfg.train
    return [GuardSpec("rms_ratio", "val/rms_ratio", t.guard_rms_lo, t.guard_rms_hi,
                      reason="over-suppression (seed 004): the output level left the target's level")]


FAMILY = Family(
    name="tse",
    config_cls=C.TseConfig,
    presets={"debug": C.debug, "full": C.full},
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    selection_metric="val/si_sdr_tp",  # never a loss with an exploitable term (seed 004, Change 2)
    mode="max",
    schedule=schedule,
    prepare_data=D.prepare_data,
    guards=guards,
    overfit=("val/si_sdri_tp", ">", 0.0, ()),
    description="target-speaker extraction (mixture + enrollment -> target speech), TP/TA scenes",
)
