"""Floors, ceilings and the model on one frozen validation set, per item: means *and* medians.

The training loop logs means over the frozen set; the goals in docs/families/tse.md are stated on it too,
but target-absent suppression is judged by its median (a few loud TA items would pull the mean). Run::

    python -m mlplatform.families.tse.scoreboard --preset debug [--checkpoint DIR] [--set key=value ...]

It builds the family's datasets, freezes (or reuses) the validation set exactly as the loop does, and scores
silence, the mixture, the oracle masks and (given a checkpoint) the model on the same items.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from mlplatform.families.tse import family as F
from mlplatform.families.tse.metrics import SET_SUFFIXES, scene_metrics
from mlplatform.families.tse.oracles import oracle_masks
from mlplatform.protocol import DataContext, StepContext


def score(cfg: Any, model: torch.nn.Module | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{estimator: {metric: {"mean", "median", "n"}}} on the frozen validation set of ``cfg``."""
    from mlplatform.integrity.frozen import freeze_validation

    data, record = freeze_validation(F.FAMILY, cfg, F.FAMILY.build_datasets(cfg, DataContext()))
    vals: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
    eps = cfg.loss.eps
    if model is not None:
        model.eval()
    with torch.no_grad():
        for batch in data.val_batches():
            ests = {"silence": torch.zeros_like(batch["mixture"]), "mixture": batch["mixture"]}
            ests.update({f"oracle_{k}": v for k, v in
                         oracle_masks(batch["mixture"], batch["target"], cfg.data.sample_rate, eps).items()})
            if model is not None:
                ests["model"] = model(batch["mixture"], batch["enroll"])
            for name, est in ests.items():
                for k, v in scene_metrics(est, batch["target"], batch["mixture"], batch["tp"], eps,
                                          batch.get("subset")).items():
                    vals[name][k].append(v)
    out: dict[str, dict[str, dict[str, float]]] = {"_val_set": {"items": {"n": record.get("items", 0)}}}
    for name, mets in vals.items():
        out[name] = {}
        for k, parts in mets.items():
            t = torch.cat(parts).double()
            if t.numel():
                out[name][k] = {"mean": float(t.mean()), "median": float(t.median()), "n": int(t.numel())}
    return out


def load(cfg: Any, checkpoint: str) -> torch.nn.Module:
    from mlplatform.train.checkpoint import load_checkpoint

    model = F.build_model(cfg)
    model.load_state_dict(load_checkpoint(Path(checkpoint), "tse")["model"])
    return model


def main(argv: list[str] | None = None) -> None:
    from mlplatform.registry import build_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="debug")
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", default="", help="also write the table here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    over = dict(kv.split("=", 1) for kv in a.set)
    cfg = build_config("tse", a.preset, over)
    t0 = time.perf_counter()
    res = score(cfg, load(cfg, a.checkpoint) if a.checkpoint else None)
    print(f"val items: {res['_val_set']['items']['n']}  ({time.perf_counter() - t0:.1f}s)")
    keys = ("si_sdri_tp", "rms_ratio", "ta_suppression_db")
    for suffix, name in zip(SET_SUFFIXES, ("seen", "unseen", "unseen_synth")):
        print(f"-- {name}")
        print(f"{'estimator':14s}" + "".join(f"{k + suffix:>34s}" for k in keys))
        for est, mets in res.items():
            if est.startswith("_"):
                continue
            row = "".join(f"{mets[k]['mean']:>20.2f} / {mets[k]['median']:<7.2f}({mets[k]['n']:>3d})" if k in mets
                          else f"{'-':>34s}" for k in (k + suffix for k in keys))
            print(f"{est:14s}{row}")
    print("(mean / median (n))")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
