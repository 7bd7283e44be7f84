#!/usr/bin/env python
"""Overfit test: train the family in-process and check its selection metric against the
family's threshold (riscov: val/nmse_blend < 0.5) before spending a sweep on it.

  python jobs/overfit.py --family riscov
"""
from __future__ import annotations

import argparse
import sys

from mlplatform.cli import UsageError, add_config_args, maybe_list_keys, one_line_errors, resolve_preset


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, preset_default="debug")
    args = p.parse_args(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.registry import build_config, get_family
    from mlplatform.train.executors import run_local
    from mlplatform.train.options import RunOptions

    fam = get_family(args.family)
    if fam.overfit is None:
        raise UsageError(f"family {fam.name} declares no overfit criterion")
    metric, op, threshold, fam_overrides = fam.overfit
    cfg = build_config(fam.name, resolve_preset(args.preset), list(fam_overrides) + args.overrides)
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    summary, rep = run_local(RunOptions(family=fam, cfg=cfg, verbose=False))
    for m in rep.history:
        v = m.get(metric)
        print(f"Epoch {m['epoch']:03d}/{cfg.train.epochs:03d}: train {m.get('train/loss', float('nan')):.3f}  "
              f"val {v if v is not None else float('nan'):.3f}  ({metric})")
    final = rep.history[-1].get(metric)
    passed = final is not None and (final < threshold if op == "<" else final > threshold)
    if passed:
        print(f"\n✅ EXCELLENT: {metric} = {final:.4g} {op} {threshold}\n🚀 READY FOR FULL HPO")
        return 0
    print(f"\n❌ FAIL: {metric} = {final} does not satisfy {op} {threshold}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
