#!/usr/bin/env python
"""Prepare a family's dataset once (Ray tasks / Ray Data -> fingerprinted Parquet with a manifest).

  python jobs/prepare_data.py --family riscov
  python jobs/prepare_data.py --family tse --out data/tse [--corpus PATH]        # espeak-ng corpus or yours
  python jobs/prepare_data.py --family creative --out data/creative [--pairs PATH]
  python jobs/prepare_data.py --family vqvae --out data/vqvae
Jobs that need the data (train, hpo) run this step themselves when it is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.cli import UsageError, add_config_args, maybe_list_keys, one_line_errors, resolve_preset


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--out", default="", help="output/cache folder (sets data.root; default <repo>/data/<family>)")
    p.add_argument("--corpus", default="", help="tse: an existing <speaker>/<utt>.wav|flac corpus to ingest")
    p.add_argument("--pairs", default="", help="creative: a folder with input/*.wav and target/*.wav")
    args = p.parse_args(argv)
    if maybe_list_keys(args):
        return 0
    from mlplatform.registry import build_config, get_family

    fam = get_family(args.family)
    if fam.prepare_data is None:
        raise UsageError(f"family {fam.name} has no data-preparation step")
    ov = list(args.overrides)
    if args.out:
        ov.append(f"data.root={Path(args.out).resolve()}")
    for flag, key in (("corpus", "data.corpus"), ("pairs", "data.pairs")):
        val = getattr(args, flag)
        if val:
            if not Path(val).exists():
                raise UsageError(f"--{flag} {val}: no such folder")
            ov.append(f"{key}={Path(val).resolve()}")
    try:
        cfg = build_config(fam.name, resolve_preset(args.preset), ov)
    except Exception as e:
        if "unknown config key 'data.corpus'" in str(e) or "unknown config key 'data.pairs'" in str(e):
            raise UsageError(f"--corpus/--pairs do not apply to family {fam.name}") from None
        raise
    from mlplatform.raycluster import init_ray

    init_ray()
    info = fam.prepare_data(cfg)
    print(json.dumps({k: v for k, v in info.items() if k not in ("config",)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
