#!/usr/bin/env python
"""Run every benchmark (``make bench``), each in its own process, and collect their JSON lines.

Each script's last stdout line is its JSON object; all of them go to ``benchmarks/results/latest.json``
(and a dated copy), its log to ``benchmarks/results/<name>.log``. A failed benchmark is recorded as
``{"failed": ...}`` and the others still run; the exit code is 1 if any failed.

  python benchmarks/run_all.py [--only step_overhead,pruning] [--skip gpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# cheapest first; the sizes keep the whole run near 35-40 minutes on a 2-core machine (docs/benchmarks.md);
# stream_rss, tracking_load (~3 min) and sweep_growth (312 tiny trials, ~7 min) are issue 17's items
ORDER = ["batched_pairs", "profile_step", "latent_cache", "stream_rss", "baselines", "step_overhead",
         "sweep_overhead", "tracking_load", "sweep_growth", "pruning", "gpu"]


def run_one(name: str, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    log = out_dir / f"{name}.log"
    with open(log, "w") as err:
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], stdout=subprocess.PIPE, stderr=err,
                              text=True, cwd=HERE.parent)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    with open(log, "a") as f:
        f.write(proc.stdout)
    if proc.returncode != 0 or not lines:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        return {"benchmark": name, "failed": f"exit {proc.returncode}: {tail[0][:300]}", "wall_s": wall}
    return {**json.loads(lines[-1]), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(ORDER))
    p.add_argument("--skip", default="")
    a = p.parse_args(argv)
    names = [n for n in (a.only.split(",") if a.only else ORDER) if n and n not in a.skip.split(",")]
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    results = {}
    for n in names:
        print(f"[bench] {n} ...", flush=True)
        results[n] = run_one(n, out_dir)
        r = results[n]
        print(f"[bench] {n}: {'FAILED ' + r['failed'] if 'failed' in r else 'ok'} ({r['wall_s']:.0f} s)", flush=True)
    latest = out_dir / "latest.json"
    if a.only and latest.exists():  # a partial run updates its entries of the last full run
        results = {**json.loads(latest.read_text()), **results}
    blob = json.dumps(results, indent=1)
    latest.write_text(blob)
    (out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(blob)
    print(f"[bench] results: {out_dir / 'latest.json'}  (total {sum(results[n]['wall_s'] for n in names):.0f} s)")
    import table  # this folder is on sys.path: the script's own

    table.main([str(out_dir / "latest.json")])
    return 1 if any("failed" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
