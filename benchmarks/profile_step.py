#!/usr/bin/env python
"""Profile of the slowest family step (tse debug, ~0.3 s on one thread) with torch.profiler,
and the before/after ratio of the fix it led to: ``GLN`` (global layer norm) was a mean/pow/div chain
and is now ``group_norm`` with one group (families/tse/model.py). The "before" is that chain, patched
back in for the comparison; both are timed in this process, interleaved, 1 thread.

  python benchmarks/profile_step.py [--steps 6] [--top 8]
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

import benchlib as B


def gln_before(self: Any, x: torch.Tensor) -> torch.Tensor:
    """The pre-fix GLN forward, kept only as this benchmark's baseline."""
    mean = x.mean((1, 2), keepdim=True)
    var = (x - mean).pow(2).mean((1, 2), keepdim=True)
    return self.gamma * (x - mean) / (var + self.eps).sqrt() + self.beta


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from mlplatform.families.tse import model as M
    from mlplatform.protocol import DataContext, StepContext
    from mlplatform.registry import build_config, get_family

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--top", type=int, default=8)
    a = p.parse_args(argv)
    B.quiet_logs()
    torch.set_num_threads(1)
    fam = get_family("tse")
    cfg = build_config("tse", "debug")
    fam.prepare_data(cfg)
    torch.manual_seed(0)
    model = fam.build_model(cfg)
    it = fam.build_datasets(cfg, DataContext()).train_batches(0)
    batches = [next(it) for _ in range(a.steps)]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    state = {"rank": 1, "verbose": False}

    def step(b: dict) -> None:
        terms = fam.compute_loss(model, b, StepContext(cfg, 0, 0, True, fam.schedule(cfg, 0), torch.device("cpu"), state))
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()

    def steps() -> None:
        for b in batches:
            step(b)

    after_forward = M.GLN.forward
    with torch.no_grad():
        x = torch.randn(4, 96, 500)
        g = M.GLN(96)
        diff = float((after_forward(g, x) - gln_before(g, x)).abs().max())
    steps()  # warm-up
    t_after, t_before = [], []
    for _ in range(a.rounds):
        t_after.append(B.best_of(steps, 1))
        M.GLN.forward = gln_before
        try:
            t_before.append(B.best_of(steps, 1))
        finally:
            M.GLN.forward = after_forward
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ev) or 1.0
    top = [{"op": e.key, "self_pct": 100.0 * e.self_cpu_time_total / total, "calls": e.count} for e in ev[:a.top]]
    conv = sum(e.self_cpu_time_total for e in ev if "conv" in e.key) / total
    s_after, s_before = min(t_after) / a.steps, min(t_before) / a.steps
    return B.emit("profile_step", {
        "family": "tse", "preset": "debug", "threads": 1, "batch": cfg.train.batch_size,
        "step_s_before": s_before, "step_s_after": s_after, "speedup": B.ratio(s_before, s_after),
        "gln_max_abs_diff": diff, "top_ops_after": top, "convolution_share_after": conv})


if __name__ == "__main__":
    main()
