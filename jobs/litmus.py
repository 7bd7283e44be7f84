#!/usr/bin/env python
"""One-batch gradient litmus: freeze one batch, take 5 steps (with the family's litmus schedule, e.g. β
warming up 0 → beta_final for riscov; every schedule value is printed), pass only if the loss falls by
≥ 20% and every gradient norm is finite and non-zero (why: docs/families/<family>.md).

  python jobs/litmus.py --family riscov            # exit 0 on PASS, 1 on FAIL, 2 on bad input
"""
from __future__ import annotations

import argparse
import sys

from mlplatform.cli import add_config_args, maybe_list_keys, one_line_errors, resolve_preset


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, preset_default="debug")
    p.add_argument("--steps", type=int, default=5, help="optimizer steps on the frozen batch (default %(default)s)")
    p.add_argument("--min-drop", type=float, default=0.2, help="required relative loss drop (default %(default)s)")
    args = p.parse_args(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.registry import build_config, get_family
    from mlplatform.train.diagnostics import gradient_litmus

    fam = get_family(args.family)
    cfg = build_config(fam.name, resolve_preset(args.preset), list(fam.litmus_overrides) + args.overrides)
    if fam.litmus_overrides:
        print(f"[litmus] {fam.name} runs the litmus with {' '.join(fam.litmus_overrides)} (docs/families/{fam.name}.md)")
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    ok, rows, why = gradient_litmus(fam, cfg, steps=args.steps, min_drop=args.min_drop)
    for r in rows:
        sched = "".join(f"{k}={v:.3f}, " for k, v in r["schedule"].items())
        print(f"Step {r['step']}/{args.steps}: {sched}loss={r['loss']:.6f}, avg_grad_norm={r['avg_grad_norm']:.4f}")
    if ok:
        print(f"\n✅ PASS: {why}\n   → Gradients are flowing\n   → Model is learning\n   → Ready for overfit test")
        return 0
    print(f"\n❌ FAIL: {why}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
