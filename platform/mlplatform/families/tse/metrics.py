"""tse validation metrics, per sample (the loop averages them over every validation item).

TP metrics are returned for TP samples only and TA metrics for TA samples only, so each mean is over
its own scene type (a batch without one gives an empty tensor, which the loop skips). Each validation set
(``subset`` index into ``SET_SUFFIXES``) is scored apart: the seen speakers under the plain names, the held-out
corpus speakers with ``_unseen`` appended, the other synthesizer's voices with ``_unseen_synth``.
"""
from __future__ import annotations

import torch

from mlplatform.families.tse.losses import energy_db, rms, si_sdr

TP_KEYS = ("si_sdr_tp", "si_sdri_tp", "rms_ratio")
TA_KEYS = ("ta_energy_db", "ta_suppression_db")
SET_SUFFIXES = ("", "_unseen", "_unseen_synth")  # data.SETS: seen, unseen, unseen_synth


def ta_suppression_db(est: torch.Tensor, mixture: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """How much quieter the output is than its input where the target is absent:
    10·log10(mean(mixture²) / mean(est²)) in dB. Shape: [B, T] x2 -> [B]. Higher = more suppressed;
    exact silence gives about 10·log10(mean(mixture²)/eps) (~55 dB for a −25 dBFS mixture)."""
    return energy_db(mixture, eps) - energy_db(est, eps)


def _scene_metrics(est: torch.Tensor, tgt: torch.Tensor, mixture: torch.Tensor, tp: torch.Tensor,
                   eps: float) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    e, t, m = est[tp], tgt[tp], mixture[tp]
    if e.shape[0]:
        s_est = si_sdr(e, t, eps)
        out["si_sdr_tp"] = s_est
        out["si_sdri_tp"] = s_est - si_sdr(m, t, eps)
        out["rms_ratio"] = rms(e, eps) / rms(t, eps).clamp_min(eps)
    else:
        out.update({k: est.new_zeros(0) for k in TP_KEYS})
    ta, ta_mix = est[~tp], mixture[~tp]
    if ta.shape[0]:
        out["ta_energy_db"] = energy_db(ta, eps)
        out["ta_suppression_db"] = ta_suppression_db(ta, ta_mix, eps)
    else:
        out.update({k: est.new_zeros(0) for k in TA_KEYS})
    return out


def scene_metrics(est: torch.Tensor, tgt: torch.Tensor, mixture: torch.Tensor, tp: torch.Tensor,
                  eps: float = 1e-8, subset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Shape: est, tgt, mixture [B, T]; tp [B] bool; subset [B] int (index into ``SET_SUFFIXES``) or None ->
    {name: [n] per sample}.

    si_sdr_tp: SI-SDR of the estimate (dB); si_sdri_tp: its improvement over the mixture's SI-SDR;
    rms_ratio: rms(est)/rms(target) (1 = right level, < 1 = suppressed); ta_energy_db: output energy
    in dBFS where the target is absent (what the ``ta_energy`` loss term penalises); ta_suppression_db:
    :func:`ta_suppression_db` there. Without ``subset`` every item is a seen-speaker item; with it, every set
    gives its suffixed keys (always present, possibly empty) and the plain keys hold the seen items only.
    """
    tp = tp.bool().flatten()
    est, tgt, mixture = est.float(), tgt.float(), mixture.float()
    if subset is None:
        return _scene_metrics(est, tgt, mixture, tp, eps)
    sub = subset.flatten().long()
    out: dict[str, torch.Tensor] = {}
    for i, suffix in enumerate(SET_SUFFIXES):
        m = sub == i
        out.update({f"{k}{suffix}": v for k, v in _scene_metrics(est[m], tgt[m], mixture[m], tp[m], eps).items()})
    return out
