#!/usr/bin/env python
"""Screen variants of the codec ``cpu`` preset side by side on one machine (not part of ``make bench``).

Each variant is the preset's full 1,800 steps with a few overrides, trained bare in its own process
(``--device`` picks CUDA when present, one torch thread each), so a GPU box runs a dozen at once in about
two minutes. Training is the same computation on a CPU, so the ranking carries over to the 2-core machine,
where the chosen preset is then confirmed with ``jobs/train.py`` (docs/families/codec.md, "Screened on a GPU").
Writes ``OUT/screen-<variant>.json`` per variant and ``OUT/screen.json``.

  python benchmarks/codec_screen.py OUT [--variants base,crop1s_b4,...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "base": [],
    "base_seed1": ["train.seed=1"],
    "base_seed2": ["train.seed=2"],
    "betas_05_09": ["optim.beta1=0.5", "optim.beta2=0.9"],
    "b2_0.99": ["optim.beta2=0.99"],
    "lr2e-3": ["optim.lr=2e-3"],
    "lr5e-3": ["optim.lr=5e-3"],
    "betas_lr4e-3": ["optim.beta1=0.5", "optim.beta2=0.9", "optim.lr=4e-3"],
    "betas_lr5e-3": ["optim.beta1=0.5", "optim.beta2=0.9", "optim.lr=5e-3"],
    "minlr0.01": ["optim.min_lr_ratio=0.01"],
    "epoch_sched": ["optim.schedule_unit=epoch", "optim.warmup=0"],
    "stft1": ["loss.stft_weight=1.0"],
    "siw2": ["loss.si_snr_weight=2.0"],
    "crop0.75s_b6": ["data.segment_s=0.75", "train.batch_size=6"],
    "crop1s_b4": ["data.segment_s=1.0", "train.batch_size=4"],
    "crop1s_b4_seed1": ["data.segment_s=1.0", "train.batch_size=4", "train.seed=1"],
    "crop1s_b4_seed2": ["data.segment_s=1.0", "train.batch_size=4", "train.seed=2"],
    "crop1s_b4_lr2e-3": ["data.segment_s=1.0", "train.batch_size=4", "optim.lr=2e-3"],
    "crop1s_b4_b2_0.99": ["data.segment_s=1.0", "train.batch_size=4", "optim.beta2=0.99"],
    "crop1s_b8_half": ["data.segment_s=1.0", "train.batch_size=8", "train.steps_per_epoch=30"],
    "crop2s_b2": ["data.segment_s=2.0", "train.batch_size=2"],
}


def child(name: str, out: str) -> None:
    """One variant, bare in this process. The overrides are relative to the preset as it was screened
    (0.5 s crops x 8), so they are applied on top of those two settings."""
    import torch

    from mlplatform.registry import build_config
    from mlplatform.train.executors import run_local

    torch.set_num_threads(1)
    cfg = build_config("codec", "cpu", ["data.segment_s=0.5", "train.batch_size=8", *VARIANTS[name],
                                        "train.early_stop_patience=0", "train.num_threads=1"])
    t0 = time.time()
    summary, rep = run_local({"family": "codec", "cfg": cfg.to_dict(), "use_gpu": True, "verbose": False,
                              "work_dir": str(Path(out).parent / f"run-{name}")})
    hist = [{k: v for k, v in h.items() if k in ("val/si_snr", "val/mel_distance")} for h in rep.history]
    Path(out).write_text(json.dumps({"name": name, "extra": VARIANTS[name], "best": summary["best"],
                                     "best_epoch": summary["best_epoch"], "steps": summary["steps"],
                                     "wall_s": time.time() - t0, "history": hist}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for the JSON results")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.child:
        child(a.child, str(out / f"screen-{a.child}.json"))
        return 0
    names = [n for n in a.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    procs = {n: subprocess.Popen([sys.executable, __file__, str(out), "--child", n],
                                 stdout=open(out / f"screen-{n}.log", "w"), stderr=subprocess.STDOUT) for n in names}
    t0, res = time.time(), {}
    while procs:
        time.sleep(5)
        for n, proc in list(procs.items()):
            if proc.poll() is None:
                continue
            del procs[n]
            f = out / f"screen-{n}.json"
            res[n] = json.loads(f.read_text()) if f.exists() else {"failed": proc.returncode}
            print(f"[{time.time() - t0:.0f}s] {n}: best {res[n].get('best', 'FAILED')}", flush=True)
    (out / "screen.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
