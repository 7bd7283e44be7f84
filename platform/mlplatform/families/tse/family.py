"""The tse Family bundle: phases, scene-aware loss, TP/TA validation metrics on three validation sets
(seen speakers, held-out speakers, another synthesizer's voices), selection by TP-only SI-SDR on the held-out
speakers, the over-suppression guard on ``val/rms_ratio``, and PESQ/STOI of the best checkpoint at the end."""
from __future__ import annotations

import torch

from mlplatform.families.tse import config as C
from mlplatform.families.tse import data as D
from mlplatform.families.tse.losses import scene_aware_loss
from mlplatform.families.tse.metrics import SET_SUFFIXES, scene_metrics
from mlplatform.families.tse.quality import final_eval
from mlplatform.families.tse.model import SpeakerExtractor
from mlplatform.families.tse.oracles import oracle_masks
from mlplatform.protocol import Family, GuardSpec, MetricSpec, Probe, StepContext
from mlplatform.train.terms import LossTerms


def build_model(cfg: C.TseConfig) -> SpeakerExtractor:
    m = cfg.model
    return SpeakerExtractor(cfg.data.sample_rate, m.enc_filters, m.enc_win_s, m.bottleneck, m.hidden, m.kernel,
                            m.blocks, m.repeats, m.spk_dim, m.spk_blocks)


def schedule(cfg: C.TseConfig, epoch: int) -> dict[str, float]:
    """Logged per epoch as train/phase and train/p_ta, taken at the epoch's last step."""
    phase, p_ta = D.phase_at(cfg, (epoch + 1) * cfg.train.steps_per_epoch - 1)
    return {"phase": float(phase), "p_ta": p_ta}


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
        ph, _ = D.phase_at(cfg, ctx.step)
        if st.get("phase") != ph:
            print(f"[PHASE] step {ctx.step}: phase {ph} ({'TP only' if ph == 1 else f'TP + TA, p_ta={cfg.data.p_ta}'})",
                  flush=True)
            st["phase"] = ph
    return terms


def _metrics(est: torch.Tensor, batch: dict, eps: float) -> dict[str, torch.Tensor]:
    return scene_metrics(est, batch["target"], batch["mixture"], batch["tp"], eps, batch.get("subset"))


def _per_set(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{n}{s}" for n in names for s in SET_SUFFIXES)


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    return _metrics(terms.outputs["est"], batch, ctx.cfg.loss.eps)


def baselines(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Silence (what a raw-dB energy term rewards) and the unprocessed mixture: selection
    metric per TP item on every validation set, and the run's own loss on that trivial output (compare with
    val/loss)."""
    cfg: C.TseConfig = ctx.cfg  # type: ignore[assignment]
    out = {}
    for name, est in (("silence", torch.zeros_like(batch["mixture"])), ("mixture", batch["mixture"])):
        m = _metrics(est, batch, cfg.loss.eps)
        loss = scene_aware_loss(est, batch["target"], batch["tp"], cfg.loss, cfg.data.sample_rate).total
        out[name] = {**{k: m[k] for k in _per_set(("si_sdr_tp",)) if k in m}, "loss": loss}
    return out


def ceilings(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Oracle masks that know the clean target (``oracles.py``): the ideal ratio mask ("irm", the ceiling
    captured gain is measured against) and the phase-sensitive mask clipped to [0, 1] ("psm"), scored like
    the model (each validation set apart). TA items are left out: their reference is silence, which an
    oracle reproduces exactly."""
    cfg: C.TseConfig = ctx.cfg  # type: ignore[assignment]
    est = oracle_masks(batch["mixture"], batch["target"], cfg.data.sample_rate, cfg.loss.eps)
    keep = _per_set(("si_sdr_tp", "si_sdri_tp"))
    out = {}
    for name, e in est.items():
        m = _metrics(e, batch, cfg.loss.eps)
        out[name] = {k: m[k] for k in keep if k in m}
    return out


def other_speaker(spk: torch.Tensor) -> torch.Tensor:
    """For each item, the index of the nearest later item (cyclically) enrolled by a different speaker
    (itself if the whole batch is one speaker)."""
    n = spk.shape[0]
    idx = torch.arange(n, device=spk.device)
    for b in range(n):
        for k in range(1, n):
            if spk[(b + k) % n] != spk[b]:
                idx[b] = (b + k) % n
                break
    return idx


def probe_enroll_swap(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """The enrollment replaced by another speaker's: does the speaker condition matter?"""
    enroll = batch["enroll"][other_speaker(batch["spk"])] if "spk" in batch else batch["enroll"].roll(1, 0)
    est = model(batch["mixture"], enroll)
    m = _metrics(est, batch, ctx.cfg.loss.eps)
    return {k: m[k] for k in _per_set(("si_sdr_tp",)) if k in m}


_SETS = {"": " of training speakers (held-out utterances)",
         "_unseen": " enrolled by corpus speakers held out of training (data.val_speakers): the selection set",
         "_unseen_synth": " of another synthesizer's voices (data.synth_voices), never trained or selected on"}
_SUPPRESS = ("silence maximises it (and the loss stops asking below loss.target_db): report it, never select "
             "on it")


def _set_metrics(suffix: str, where: str) -> dict[str, MetricSpec]:
    return {
        f"val/si_sdr_tp{suffix}": MetricSpec("max", "SI-SDR (dB) of the estimate on target-present scenes" + where,
                                             scale="db"),
        f"val/si_sdri_tp{suffix}": MetricSpec("max", "SI-SDR improvement (dB) over the mixture on target-present "
                                              "scenes" + where, scale="db"),
        f"val/rms_ratio{suffix}": MetricSpec("max", "output RMS / target RMS on target-present scenes" + where
                                             + "; 1 is right (the guard keeps the seen set's in [guard_rms_lo, "
                                             "guard_rms_hi])", exploitable="two-sided: too loud is as wrong as too "
                                             "quiet; a guard, not a score"),
        f"val/ta_energy_db{suffix}": MetricSpec("min", "output energy (dBFS) where the target is absent" + where,
                                                exploitable="silence minimises it: selecting on it picks the most "
                                                            "suppressed model"),
        f"val/ta_suppression_db{suffix}": MetricSpec("max", "10·log10(mixture energy / output energy) where the "
                                                     "target is absent (dB; the loop logs the mean, "
                                                     "docs/families/tse.md the median)" + where,
                                                     exploitable=_SUPPRESS, scale="db"),
    }


METRICS = {k: v for suffix, where in _SETS.items() for k, v in _set_metrics(suffix, where).items()}
METRICS["val/loss"] = MetricSpec("min", "weighted scene-aware loss", exploitable=(
    "it contains the TA energy term, which rewards suppression, and weights a sweep varies: the 'best' "
    "checkpoint by val loss was the most suppressed one (docs/families/tse.md)"))


def guards(cfg: C.TseConfig) -> list[GuardSpec]:
    t = cfg.train
    return [GuardSpec("rms_ratio", "val/rms_ratio", t.guard_rms_lo, t.guard_rms_hi,
                      reason="over-suppression: the output level left the target's level")]


FAMILY = Family(
    inputs=("mixture", "enroll"),
    name="tse",
    config_cls=C.TseConfig,
    presets={"debug": C.debug, "cpu": C.cpu, "full": C.full},
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    # the held-out corpus speakers, never a loss with an exploitable term (docs/families/tse.md)
    selection_metric="val/si_sdr_tp_unseen",
    mode="max",
    schedule=schedule,
    prepare_data=D.prepare_data,
    guards=guards,
    overfit=("val/si_sdri_tp", ">", 0.0, ()),
    metrics=METRICS,
    baselines=baselines,  # silence and the mixture: every baseline is a floor too
    # silence wins the 2nd, loses the 1st
    objectives=("val/si_sdri_tp_unseen:max", "val/ta_suppression_db_unseen:max"),
    ceilings=ceilings,
    gain_ceiling="irm",
    gain_sets={"seen": "si_sdr_tp", "unseen": "si_sdr_tp_unseen", "unseen_synth": "si_sdr_tp_unseen_synth"},
    final_eval=final_eval,
    probes=(Probe("enroll_swap", probe_enroll_swap, versus="model",
                  meaning="with another speaker's enrollment the extraction is as good: the speaker condition is "
                          "ignored"),),
    description="target-speaker extraction (mixture + enrollment -> target speech), TP/TA scenes",
)
