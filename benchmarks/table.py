#!/usr/bin/env python
"""Markdown table of the headline ratios in a results file (default benchmarks/results/latest.json),
the table docs/benchmarks.md quotes.

  python benchmarks/table.py [RESULTS_JSON]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

Row = tuple[str, str, str, str, str]


def _f(x: Any, nd: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def rows(r: dict[str, Any]) -> Iterator[Row]:
    s = r.get("step_overhead")
    if s and "families" in s:
        for fam, v in s["families"].items():
            for ex in ("tune", "torchtrainer"):
                x = v[ex]
                yield ("1 step overhead", f"{fam}: {ex} / bare steps/s (loop; compute)",
                       f"{_f(x['ratio_loop'])}; {_f(x['ratio_compute'])}", ">= 0.95", _yes(x["ratio_loop"] >= 0.95))
    s = r.get("sweep_overhead")
    if s and "function" in s:
        fn, tt = s["function"], s.get("torchtrainer")
        yield ("2 sweep overhead", f"function trials, s/trial (literal; per slot), n={fn['n_trials']}",
               f"{_f(fn['overhead_literal_s_per_trial'], 1)}; {_f(fn['overhead_per_slot_s_per_trial'], 1)}", "<= 2 s",
               _yes(fn["overhead_literal_s_per_trial"] <= 2.0))
        ab = s.get("ablation_function_reuse_actors")
        if ab:
            yield ("2 sweep overhead", "ablation: function trials with reuse_actors=True (literal; per slot)",
                   f"{_f(ab['overhead_literal_s_per_trial'], 1)}; {_f(ab['overhead_per_slot_s_per_trial'], 1)}",
                   "<= 2 s", _yes(ab["overhead_literal_s_per_trial"] <= 2.0))
        if tt:
            yield ("2 sweep overhead", f"TorchTrainer per trial, s/trial (per slot), n={tt['n_trials']}; x function",
                   f"{_f(tt['overhead_per_slot_s_per_trial'], 1)}; {_f(s['ratio_torchtrainer_to_function_per_slot'], 1)}x",
                   "-", "-")
    s = r.get("pruning")
    if s and "seeds" in s:
        yield ("3 pruning", f"TPE+ASHA / random-FIFO: best nmse; epochs ({len(s['seeds'])} seeds)",
               f"{_f(s['mean_best_ratio'], 3)}; {_f(s['epochs_ratio'])}", "<= 1; <= 0.5", _yes(s["goal_met"]))
    s = r.get("pruning_told")
    if s and "seeds" in s:
        yield ("3b pruning told", f"pruned-as-PRUNED / Ray's stock telling: best at equal epochs ({len(s['seeds'])} seeds)",
               f"{_f(s['mean_ratio_at_budget'], 4)} ± {_f(s['sd_ratio_at_budget'], 4)}", "-", "-")
    s = r.get("latent_cache")
    if s and "training" in s:
        t, p = s["training"], s["parquet"]
        if "cache_vs_no_data" in t:
            yield ("4 latent cache", "training samples/s, cache / no data work at all", _f(t["cache_vs_no_data"], 3),
                   ">= 0.95", _yes(t["cache_vs_no_data"] >= 0.95))
        yield ("4 latent cache", "training samples/s, cache / on-the-fly encoding (bounded by 1 + encode/step)",
               _f(t["speedup_training"], 1), "-", "-")
        yield ("4 latent cache", "data only: latents/s, cache / encoding", _f(t["data_only"]["speedup"], 0), "-", "-")
        yield ("4 latent cache", f"Ray Data / pyarrow Parquet read ({p['file_mb']:.0f} MB)",
               _f(p["ratio_ray_to_pyarrow"], 3), ">= 0.7", _yes(p["ratio_ray_to_pyarrow"] >= 0.7))
    s = r.get("stream_rss")
    if s and "runs" in s:
        g = s["rss_growth_mb"]
        yield ("10 streaming", "tse peak RSS, 10x / 1x corpus: lazy reader (eager loading it replaced)",
               f"{_f(s['rss_ratio_lazy'])} ({_f(s['rss_ratio_eager'])}); +{g['lazy']:.0f} MB (+{g['eager']:.0f} MB)",
               "<= 1.3", _yes(s["rss_ratio_lazy"] <= 1.3))
        if "rss_ratio_lazy_tight" in s:
            yield ("10 streaming", "tse peak RSS, 10x corpus through an 8 MB cache / 1x", _f(s["rss_ratio_lazy_tight"]),
                   "<= 1.3", _yes(s["rss_ratio_lazy_tight"] <= 1.3))
        yield ("10 streaming", "tse data wait / step time (worst epoch of the lazy runs)", _f(s["data_wait_frac_max"], 3),
               "<= 0.05", _yes(s["data_wait_frac_max"] <= 0.05))
    s = r.get("batched_pairs")
    if s and "sizes" in s:
        for size, v in s["sizes"].items():
            yield ("5 batched pairs", f"{size}: loop over pairs / batched (fwd+bwd time)", _f(v["speedup_batched"]),
                   "-", "-")
    s = r.get("baselines")
    if s and "riscov" in s:
        for v in s["riscov"]:
            q, n = v["ratio_to_sample_cov"], v["nmse"]
            if "toeplitz" not in n:  # a results file from before the floors were scored
                yield ("6 baselines", f"riscov L={v['snapshots']}: NMSE / sample cov (LW; model R_pred; R_blend)",
                       f"{_f(q['ledoit_wolf'])}; {_f(q['model_pred'])}; {_f(q['model_blend'])}", "-", "-")
                continue
            g = v["captured_gain_db"]["model_blend"]
            yield ("6 baselines", f"riscov L={v['snapshots']}: NMSE R_blend vs Toeplitz floor / DOA oracle "
                   "(captured gain)", f"{_f(n['model_blend'])} vs {_f(n['toeplitz'])} / {_f(n['oracle_doa'])} "
                   f"({_f(g)})", "< Toeplitz; gain >= 0.95",
                   _yes(n["model_blend"] < n["toeplitz"]) + ("" if g is not None and g >= 0.95 else "; gain no"))
        if s.get("tse"):
            t = s["tse"]
            yield ("6 baselines", "tse SI-SDR model vs mixture (dB) -> SI-SDRi",
                   f"{_f(t['si_sdr_model_db'], 1)} vs {_f(t['si_sdr_mixture_db'], 1)} -> {_f(t['si_sdri_db'], 1)}",
                   "> 0", _yes(t["si_sdri_db"] > 0))
    s = r.get("profile_step")
    if s and "speedup" in s:
        yield ("profile", f"{s['family']} step before / after the gLN fix", _f(s["speedup"]), "-", "-")
    s = r.get("gpu")
    if s:
        if s.get("skipped"):
            yield ("7 GPU", "full presets on a GPU", "not run here (no CUDA); one H200 run in section 7", "-", "-")
        for fam, v in (s.get("families") or {}).items():
            off, on = v.get("amp_off") or {}, v.get("amp_bf16") or {}
            if "failed" in v or not off:
                yield ("7 GPU", f"{fam} full preset", f"FAILED {v.get('failed', '')[:80]}", "-", "-")
                continue
            util = off.get("util_steady_pct", off.get("util_mean_pct", float("nan")))
            yield ("7 GPU", f"{fam} full preset: steps/s off; bf16/off; GPU util (off)",
                   f"{_f(off['compute'], 1)}; {_f(v.get('amp_speedup', float('nan')))}; {_f(util, 0)} %",
                   ">= 80 %", _yes(util >= 80))
    yield from cluster_rows(r)
    for name, v in r.items():
        if "failed" in v:
            yield (name, "FAILED", v["failed"], "-", "-")


def cluster_rows(r: dict[str, Any]) -> Iterator[Row]:
    """Issue 17's items: the tracking store under 16 writers, and sweep cost as the trial count grows."""
    s = r.get("tracking_load")
    if s and "postgresql" in s:
        pg, sq = s["postgresql"], s["sqlite"]
        yield ("8 tracking load", f"{pg['writers']} writers x {pg['epochs']} epochs x {pg['metrics']} metrics: "
               "points/s PostgreSQL; sqlite; ratio", f"{_f(pg['points_per_s'], 0)}; {_f(sq['points_per_s'], 0)}; "
               f"{_f(s['ratio_postgresql_to_sqlite'])}", "-", "-")
        yield ("8 tracking load", "points lost / duplicated / wrong (both stores)",
               " / ".join(str(pg[k] + sq[k]) for k in ("lost", "duplicated", "wrong")), "0", _yes(s["exactly_once"]))
    s = r.get("sweep_growth")
    if s and "sizes" in s:
        ns = list(s["sizes"])
        per = "; ".join(_f(s["sizes"][n]["overhead_per_slot_s_per_trial"], 1) for n in ns)
        rss = "; ".join(_f(s["sizes"][n]["driver_rss_mb"], 0) for n in ns)
        yield ("9 growth", f"per-trial overhead (s, per slot) at n={'/'.join(ns)}; {ns[-1]} / {ns[0]}",
               f"{per}; {_f(s['overhead_growth'])}x", "<= 1.2x", _yes(s["goal_met"]))
        yield ("9 growth", f"driver RSS (MB) at n={'/'.join(ns)}", rss, "-", "-")
        yield ("9 growth", f"sweep report at {s['report_trials']} trials (s)", _f(s["report_s_at_largest"], 1), "-", "-")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    r = json.loads(path.read_text())
    print("| item | figure | measured | goal | met |\n|---|---|---|---|---|")
    for row in rows(r):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
