"""tse validation metrics, per sample (the loop averages them over every validation item).

TP metrics are returned for TP samples only and TA metrics for TA samples only, so each mean is over
its own scene type (a batch without one gives an empty tensor, which the loop skips).
"""
from __future__ import annotations

import torch

from mlplatform.families.tse.losses import energy_db, rms, si_sdr


def scene_metrics(est: torch.Tensor, tgt: torch.Tensor, mixture: torch.Tensor, tp: torch.Tensor,
                  eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Shape: est, tgt, mixture [B, T]; tp [B] bool -> {name: [n_tp] or [n_ta]}.

    si_sdr_tp: SI-SDR of the estimate (dB); si_sdri_tp: its improvement over the mixture's SI-SDR;
    rms_ratio: rms(est)/rms(target) (1 = right level, < 1 = suppressed); ta_energy_db: output energy
    in dBFS where the target is absent (what the ``ta_energy`` loss term penalises).
    """
    tp = tp.bool().flatten()
    est, tgt, mixture = est.float(), tgt.float(), mixture.float()
    out: dict[str, torch.Tensor] = {}
    e, t, m = est[tp], tgt[tp], mixture[tp]
    if e.shape[0]:
        s_est = si_sdr(e, t, eps)
        out["si_sdr_tp"] = s_est
        out["si_sdri_tp"] = s_est - si_sdr(m, t, eps)
        out["rms_ratio"] = rms(e, eps) / rms(t, eps).clamp_min(eps)
    else:
        out.update(si_sdr_tp=est.new_zeros(0), si_sdri_tp=est.new_zeros(0), rms_ratio=est.new_zeros(0))
    ta = est[~tp]
    out["ta_energy_db"] = energy_db(ta, eps) if ta.shape[0] else est.new_zeros(0)
    return out
