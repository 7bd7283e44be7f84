#!/usr/bin/env python
"""GPU: the full presets on one CUDA device, steps/s with AMP off vs on (bf16), and GPU utilisation
sampled through NVML (``pip install -e '.[gpu]'`` installs nvidia-ml-py). Each run is short: a few
epochs capped at ``--steps`` steps and ``--val-batches`` validation batches, bare in this process.
Without CUDA it prints ``{"skipped": true, ...}`` and exits 0.

``--set family:key=value`` overrides a preset (data sizes only, so that a corpus made elsewhere fits a
transfer; model widths and batch sizes stay the full preset's). A GPU machine without espeak-ng,
fluidsynth or Ray builds no data: make it where those are (``--prepare-only``, no GPU needed), copy
``$MLPLATFORM_HOME/data`` across and run with ``--prepared``. ``--nccl`` adds a one-rank NCCL check
(process group, all-reduce, DDP wrapping): it shows NCCL starts on the device, not multi-GPU scaling.

  python benchmarks/gpu.py [--families riscov,tse,codec,creative,vqvae] [--epochs 3] [--steps 50]
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
        n = len(self.samples)
        # the first second is model build, data set-up and CUDA start: utilisation of the steady state
        steady = self.samples[5:] if n > 10 else self.samples
        return {"util_mean_pct": sum(s[0] for s in self.samples) / n,
                "util_steady_pct": sum(s[0] for s in steady) / len(steady),
                "mem_max_gib": max(s[1] for s in self.samples)}


def parse_sets(items: list[str]) -> dict[str, list[str]]:
    """``family:key=value`` -> {family: ["key=value", ...]}."""
    out: dict[str, list[str]] = {}
    for it in items:
        fam, sep, kv = it.partition(":")
        if not sep or "=" not in kv:
            raise SystemExit(f"--set {it!r}: expected family:key=value")
        out.setdefault(fam, []).append(kv)
    return out


def config(family: str, amp: str, epochs: int, steps: int, val_batches: int, extra: list[str]) -> Any:
    from mlplatform.registry import build_config

    # --set comes last so that a family can differ (creative's small carried corpus: more, 1-step epochs)
    return build_config(family, "full", [f"train.epochs={epochs}", f"train.steps_per_epoch={steps}",
                                         f"train.val_batches={val_batches}", f"train.amp={amp}",
                                         "train.early_stop_patience=0", *extra])


def one(family: str, amp: str, a: argparse.Namespace, extra: list[str], work: Any) -> dict[str, Any]:
    from mlplatform.registry import get_family

    fam = get_family(family)
    cfg = config(family, amp, a.epochs, a.steps, a.val_batches, extra)
    if fam.prepare_data is not None and not a.prepared:
        fam.prepare_data(cfg)
    opts = {"family": family, "cfg": cfg.to_dict(), "verbose": False, "use_gpu": True,
            "bench_out": str(work / f"{family}-{amp}.json"), "work_dir": str(work / f"{family}-{amp}")}
    t0 = time.perf_counter()
    with UtilSampler() as u:
        rows, summary = B.timed_local(opts)
    spe = summary["steps"] / summary["epochs"]
    return {**B.rates(rows, spe), **u.summary(), "steps_per_epoch": spe, "wall_s": time.perf_counter() - t0}


def nccl_check(family: str, extra: list[str]) -> dict[str, Any]:
    """One rank on one GPU: NCCL process group, an all-reduce, and the family's full model wrapped in
    DistributedDataParallel (the wrapper the loop uses when world > 1; its constructor broadcasts the
    parameters over NCCL)."""
    import os

    import torch
    import torch.distributed as dist

    from mlplatform.registry import get_family

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        x = torch.ones(1 << 20, device="cuda")
        dist.all_reduce(x)
        fam = get_family(family)
        cfg = config(family, "off", 1, 1, 1, extra)
        model = fam.build_model(cfg).cuda()
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0])
        n = sum(p.numel() for p in model.parameters())
        return {"backend": dist.get_backend(), "nccl_version": ".".join(map(str, torch.cuda.nccl.version())),
                "all_reduce_ok": bool(x[0].item() == 1.0), "ddp_wrapped_params": n,
                "ddp_devices": list(ddp.device_ids)}
    finally:
        dist.destroy_process_group()


def prepare_only(families: list[str], sets: dict[str, list[str]], a: argparse.Namespace) -> dict[str, Any]:
    """Build each family's full-preset data (with --set overrides) here; no GPU involved."""
    from mlplatform.registry import get_family

    done = {}
    for f in families:
        fam = get_family(f)
        t0 = time.perf_counter()
        if fam.prepare_data is not None:
            fam.prepare_data(config(f, "off", a.epochs, a.steps, a.val_batches, sets.get(f, [])))
        done[f] = round(time.perf_counter() - t0, 1)
    return B.emit("gpu_prepare", {"prepared_s": done})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="riscov,tse,codec,creative,vqvae")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=50, help="steps per epoch cap (default %(default)s)")
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--amp", default="off,bf16", help="AMP settings to time, comma-separated (off, bf16, fp16)")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                   help="preset override for one family (repeatable), e.g. codec:data.n_clips=32")
    p.add_argument("--prepare-only", action="store_true", help="build the data and stop (no GPU needed)")
    p.add_argument("--prepared", action="store_true", help="the data was built elsewhere: skip prepare_data")
    p.add_argument("--nccl", action="store_true", help="also run the one-rank NCCL/DDP check")
    a = p.parse_args(argv)
    families, sets = [f for f in a.families.split(",") if f], parse_sets(a.set)
    B.quiet_logs()
    if a.prepare_only:
        return prepare_only(families, sets, a)
    if not torch.cuda.is_available():
        return B.emit("gpu", {"skipped": True, "reason": "no CUDA device: run this on a GPU machine"})
    work = B.scratch("gpu")
    out: dict[str, Any] = {"skipped": False, "device": torch.cuda.get_device_name(0)}
    if a.nccl:  # first: cheap, and it must not be lost if a long family run hits the caller's time limit
        try:
            out["nccl"] = nccl_check(families[0], sets.get(families[0], []))
        except Exception as e:  # noqa: BLE001
            out["nccl"] = {"failed": f"{type(e).__name__}: {e}"[:400]}
        print(f"[gpu] nccl: {out['nccl']}", flush=True)
    res: dict[str, Any] = {}
    for f in families:
        res[f] = {"overrides": sets.get(f, [])}
        try:
            for amp in a.amp.split(","):
                res[f][f"amp_{amp}"] = one(f, amp, a, sets.get(f, []), work)
                print(f"[gpu] {f} amp={amp}: {res[f][f'amp_{amp}']}", flush=True)
                torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 - one family's failure is recorded; the others still run
            res[f]["failed"] = f"{type(e).__name__}: {e}"[:400]
            print(f"[gpu] {f} FAILED: {res[f]['failed']}", flush=True)
        if "amp_off" in res[f] and "amp_bf16" in res[f]:
            res[f]["amp_speedup"] = B.ratio(res[f]["amp_bf16"]["compute"], res[f]["amp_off"]["compute"])
    return B.emit("gpu", {**out, "families": res})


if __name__ == "__main__":
    main()
