"""The field's own speech metrics, from the libraries the field uses, at the end of a run: PESQ (ITU-T P.862,
``pesq``; wide band at 16 kHz, narrow band at 8 kHz) and STOI / extended STOI (``pystoi``) of the extracted
speech against the clean target, on the target-present items of the held-out sets, with the mixture's own
scores beside them (the improvement is the figure), and the paired 95 % interval of SI-SDRi per set.

They run once, on the best checkpoint (``Family.final_eval``), not at every validation: PESQ costs ~50 ms
and STOI ~4 ms per 1-s item on one core here, ~21 s for the cpu preset's 155 held-out TP items with the
mixture's scores too (docs/families/tse.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlplatform.families.tse.metrics import SET_SUFFIXES, scene_metrics

SCORED_SETS = ("_unseen", "_unseen_synth")  # the held-out sets; the seen set has the loop's SI-SDR only


def pesq_score(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """PESQ MOS-LQO of ``deg`` against ``ref`` (wide band at 16 kHz, narrow band at 8 kHz); NaN where P.862
    finds no utterance (a silent or too short signal). Shape: [T] x2 -> scalar."""
    from pesq import PesqError, pesq

    mode = "wb" if sample_rate == 16000 else "nb"
    if sample_rate not in (8000, 16000):
        raise ValueError(f"PESQ is defined at 8 or 16 kHz, not {sample_rate} Hz")
    try:
        return float(pesq(sample_rate, ref.astype(np.float64), deg.astype(np.float64), mode))
    except (PesqError, ValueError):  # pesq 0.0.4 raises ValueError (not PesqError) for an all-zero signal
        return float("nan")


def stoi_score(ref: np.ndarray, deg: np.ndarray, sample_rate: int, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``) of ``deg`` against ``ref``, in [0, 1] (pystoi resamples to 10 kHz).
    Shape: [T] x2 -> scalar."""
    from pystoi import stoi

    return float(stoi(ref.astype(np.float64), deg.astype(np.float64), sample_rate, extended=extended))


def speech_scores(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> dict[str, float]:
    return {"pesq": pesq_score(ref, deg, sample_rate), "stoi": stoi_score(ref, deg, sample_rate),
            "estoi": stoi_score(ref, deg, sample_rate, extended=True)}


def _mean(xs: list[float]) -> float:
    finite = [x for x in xs if np.isfinite(x)]
    return float(np.mean(finite)) if finite else float("nan")


def final_eval(model: torch.nn.Module, cfg: Any, data: Any) -> dict[str, float]:
    """On the frozen validation items: per held-out set, the model's and the mixture's PESQ/STOI/ESTOI
    (means over TP items; ``<metric>_mixture<set>`` is the mixture's), SI-SDRi's mean with its paired 95 %
    bootstrap interval (``si_sdri_tp<set>_ci_lo/_hi``) and the item counts."""
    from mlplatform.tune.noise import bootstrap_mean

    sr = cfg.data.sample_rate
    dev = next(model.parameters()).device
    per: dict[str, dict[str, list[float]]] = {s: {} for s in SCORED_SETS}
    for i, batch in enumerate(data.val_batches()):
        if i >= cfg.train.val_batches:
            break
        with torch.no_grad():
            est = model(batch["mixture"].to(dev), batch["enroll"].to(dev)).float().cpu()
        sub = batch["subset"] if "subset" in batch else torch.zeros(len(est), dtype=torch.int8)
        mets = scene_metrics(est, batch["target"], batch["mixture"], batch["tp"], cfg.loss.eps, sub)
        for s in SCORED_SETS:
            per[s].setdefault("si_sdri", []).extend(mets.get(f"si_sdri_tp{s}", torch.zeros(0)).tolist())
            idx = ((sub.long() == SET_SUFFIXES.index(s)) & batch["tp"].bool()).nonzero().flatten().tolist()
            for b in idx:
                ref = batch["target"][b].numpy()
                for who, x in (("model", est[b].numpy()), ("mixture", batch["mixture"][b].numpy())):
                    for k, v in speech_scores(ref, x, sr).items():
                        per[s].setdefault(f"{k}_{who}", []).append(v)
    out: dict[str, float] = {}
    for s, vals in per.items():
        if not vals.get("si_sdri"):
            continue
        ci = bootstrap_mean(vals["si_sdri"])
        out.update({f"si_sdri_tp{s}": ci.mean, f"si_sdri_tp{s}_ci_lo": ci.lo, f"si_sdri_tp{s}_ci_hi": ci.hi,
                    f"items_tp{s}": float(len(vals["si_sdri"]))})
        for k in ("pesq", "stoi", "estoi"):
            out[f"{k}{s}"] = _mean(vals.get(f"{k}_model", []))
            out[f"{k}_mixture{s}"] = _mean(vals.get(f"{k}_mixture", []))
    return out
