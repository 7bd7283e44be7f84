#!/usr/bin/env python
"""Batched pairs, creative: forward + backward of the model with its P window pairs folded into the batch
(what ``AdaptiveWindowCreativeAgent.forward`` does) vs a Python loop over the pairs with the same
modules and parameters. Both give the same outputs (checked); the figure is loop time / batched time.
Sizes: the debug preset and the full preset's shapes (24 s clips, 16 s windows, hidden 256), 1 thread.

  python benchmarks/batched_pairs.py [--repeats 5] [--sizes debug,full]
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

import benchlib as B


def looped(model: Any, x_in: torch.Tensor, x_tgt: torch.Tensor) -> torch.Tensor:
    """The same computation, one pair at a time: [B, P, C, W]."""
    w = model.window_frames
    prm = model.selector(x_in, x_tgt, w)
    outs = []
    for i in range(model.num_pairs):
        a = prm["tonality_strength"][:, i]
        wi = model.tonality_input(model.compressor(x_in, prm["start_input"][:, i], prm["ratio_input"][:, i], w), a)
        wt = model.tonality_target(model.compressor(x_tgt, prm["start_target"][:, i], prm["ratio_target"][:, i], w), a)
        outs.append(model.agent(wi, wt))
    return torch.stack(outs, 1)


def one_size(preset: str, repeats: int) -> dict[str, Any]:
    from mlplatform.families.creative.model import AdaptiveWindowCreativeAgent
    from mlplatform.registry import build_config

    cfg = build_config("creative", preset)
    m, d = cfg.model, cfg.data
    fps, dim = 75, 128  # EnCodec 24 kHz: 75 latent frames/s, 128 channels (families/creative/codec.py measures the same)
    torch.manual_seed(0)
    model = AdaptiveWindowCreativeAgent(dim, int(round(d.window_s * fps)), m.num_pairs, m.pool_frames,
                                        m.selector_hidden, m.ratio_min, m.ratio_max, m.start_margin,
                                        m.tonality_kernel, m.agent_hidden, m.agent_kernel)
    # a trained-looking state: the LayerNorm gains start at zero (identity), which would hide their cost
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm) and mod.weight is not None:
            torch.nn.init.normal_(mod.weight)
    b, t = cfg.train.batch_size, int(round(d.clip_s * fps))
    x_in, x_tgt = torch.randn(b, dim, t), torch.randn(b, dim, t)
    with torch.no_grad():
        diff = float((model(x_in, x_tgt)["output"] - looped(model, x_in, x_tgt)).abs().max())

    def batched_step() -> None:
        model.zero_grad(set_to_none=True)
        model(x_in, x_tgt)["output"].pow(2).mean().backward()

    def loop_step() -> None:
        model.zero_grad(set_to_none=True)
        looped(model, x_in, x_tgt).pow(2).mean().backward()

    batched_step(), loop_step()  # warm-up
    tb, tl = [], []
    for _ in range(repeats):  # interleaved, so drift from other processes hits both alike
        tb.append(B.best_of(batched_step, 1))
        tl.append(B.best_of(loop_step, 1))
    return {"batch": b, "pairs": m.num_pairs, "clip_frames": t, "window_frames": model.window_frames,
            "agent_hidden": m.agent_hidden, "max_abs_diff": diff, "batched_s": min(tb), "loop_s": min(tl),
            "speedup_batched": B.ratio(min(tl), min(tb))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", default="debug,full")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    res = {s: one_size(s, a.repeats) for s in a.sizes.split(",")}
    return B.emit("batched_pairs", {"threads": 1, "sizes": res})


if __name__ == "__main__":
    main()
