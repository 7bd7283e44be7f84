#!/usr/bin/env python
"""GPU: the full presets on one CUDA device, steps/s with AMP off vs on (bf16), and GPU utilisation
sampled through NVML (``pip install -e '.[gpu]'`` installs nvidia-ml-py). Each run is short: a few
epochs capped at ``--steps`` steps and ``--val-batches`` validation batches, bare in this process.
Without CUDA it prints ``{"skipped": true, ...}`` and exits 0.

  python benchmarks/gpu.py [--families riscov,tse,creative,vqvae] [--epochs 3] [--steps 50]
"""
from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import benchlib as B


class UtilSampler:
    """GPU utilisation (%) and memory (GiB) every 0.2 s in a thread, while a run is in progress."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            u = self.nv.nvmlDeviceGetUtilizationRates(self.handle)
            m = self.nv.nvmlDeviceGetMemoryInfo(self.handle)
            self.samples.append((float(u.gpu), m.used / 2**30))
            time.sleep(0.2)

    def __enter__(self) -> "UtilSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"util_mean_pct": float("nan"), "mem_max_gib": float("nan")}
        return {"util_mean_pct": sum(s[0] for s in self.samples) / len(self.samples),
                "mem_max_gib": max(s[1] for s in self.samples)}


def one(family: str, amp: str, epochs: int, steps: int, val_batches: int, work: Any) -> dict[str, Any]:
    from mlplatform.registry import build_config, get_family

    fam = get_family(family)
    cfg = build_config(family, "full", [f"train.epochs={epochs}", f"train.steps_per_epoch={steps}",
                                        f"train.val_batches={val_batches}", f"train.amp={amp}",
                                        "train.early_stop_patience=0"])
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    opts = {"family": family, "cfg": cfg.to_dict(), "verbose": False, "use_gpu": True,
            "bench_out": str(work / f"{family}-{amp}.json"), "work_dir": str(work / f"{family}-{amp}")}
    with UtilSampler() as u:
        rows, summary = B.timed_local(opts)
    spe = summary["steps"] / summary["epochs"]
    return {**B.rates(rows, spe), **u.summary(), "steps_per_epoch": spe}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="riscov,tse,creative,vqvae")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=50, help="steps per epoch cap (default %(default)s)")
    p.add_argument("--val-batches", type=int, default=4)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        return B.emit("gpu", {"skipped": True, "reason": "no CUDA device: run this on a GPU machine"})
    B.quiet_logs()
    work = B.scratch("gpu")
    res: dict[str, Any] = {}
    for f in a.families.split(","):
        off = one(f, "off", a.epochs, a.steps, a.val_batches, work)
        on = one(f, "bf16", a.epochs, a.steps, a.val_batches, work)
        res[f] = {"amp_off": off, "amp_bf16": on,
                  "amp_speedup": B.ratio(on["compute"], off["compute"])}
    return B.emit("gpu", {"skipped": False, "device": torch.cuda.get_device_name(0), "families": res})


if __name__ == "__main__":
    main()
