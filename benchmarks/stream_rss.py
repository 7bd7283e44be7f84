#!/usr/bin/env python
"""Streaming corpora: peak RSS of a tse training process on a corpus 10x the debug corpus vs the debug
corpus (goal <= 1.3x), and the time the step waits for data (goal <= 5 % of the step time).

The corpora. The debug preset's espeak-ng corpus is generated and indexed as usual; its cached audio
(8 kHz) is then written out as two LibriSpeech-layout FLAC trees (``<speaker>/<chapter>/<utt>.flac``):
1x = the debug corpus as it is, 10x = ten copies of every speaker, each copy a new speaker whose audio is
the original circularly shifted and scaled (copy k: shift k * 0.1 s, gain 0.93^k), so the reader streams
10x the bytes (generating 10x the speakers with espeak-ng would add minutes and vary nothing that matters
here). Both trees are indexed by the platform's own ``prepare_data`` into the Parquet audio cache.

Each training run is its own process (``--child``): the debug preset for ``EPOCHS x STEPS`` steps through
the real loop (``run_local``); its peak RSS is read by the parent from ``os.wait4``'s rusage of that child.
Besides the lazy reader (the platform's path) each corpus is also run with the eager loading this replaced
(the whole audio cache decoded into Python lists and held during training), to show what grew.
A fifth run streams the 10x corpus through an 8 MB cache (smaller than its audio) to show the bound is the
cache, not the corpus. Data wait = the loop's ``sys/data_wait_frac`` (time in ``next(batches)`` / epoch time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import benchlib as B

EPOCHS, STEPS, COPIES = 2, 20, 10
RSS_GOAL, WAIT_GOAL = 1.3, 0.05
TIGHT_CACHE_MB = 8.0


def overrides(root: Path, corpus: str) -> dict[str, object]:
    return {"data.root": str(root / f"cache-{corpus}"), "data.corpus": str(root / corpus),
            "data.noise": str(root / "noise"), "train.epochs": EPOCHS, "train.steps_per_epoch": STEPS,
            "train.val_batches": 2, "train.phase2_step": STEPS}


def child(args: dict) -> None:
    """One training process: optionally hold the eager pools, then train; print the loop's figures."""
    import numpy as np

    from mlplatform.data import cache
    from mlplatform.families.tse import data as D
    from mlplatform.registry import build_config
    from mlplatform.train.executors import run_local

    cfg = build_config("tse", "debug", args["overrides"])
    held = []
    if args["mode"] == "eager":  # the loader this replaced: every file decoded into Python lists, per worker
        table = cache.read_split(D.load_pools(cfg)[2]["path"], "audio")
        held = [np.frombuffer(p, dtype=np.int16).astype(np.float32) / 32767.0 for p in table.column("pcm").to_pylist()]
        del table
    t0 = time.perf_counter()
    res, rep = run_local({"family": "tse", "cfg": cfg.to_dict(), "work_dir": args["work_dir"], "verbose": False})
    h = rep.history
    waits = [e["sys/data_wait_frac"] for e in h]
    print(json.dumps({"held_eager_mb": sum(x.nbytes for x in held) / 2**20, "train_s": time.perf_counter() - t0,
                      "data_wait_frac": waits, "epoch_time_s": [e["sys/epoch_time_s"] for e in h],
                      "stop_reason": res["stop_reason"]}), flush=True)


def run_child(args: dict) -> dict:
    """Run ``child(args)`` in a fresh process; its JSON plus its peak RSS (MB) from wait4's rusage."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(args)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"training child {args['mode']} exited {proc.returncode}: {out[-500:]}")
    return {**json.loads(lines[-1]), "peak_rss_mb": usage.ru_maxrss / 1024}  # Linux: ru_maxrss in KiB


def write_corpora(root: Path) -> dict[str, float]:
    """The 1x and 10x LibriSpeech-layout FLAC trees and a noise folder, from the debug cache's audio."""
    import numpy as np
    import soundfile as sf

    from mlplatform.data import cache
    from mlplatform.families.tse import data as D
    from mlplatform.registry import build_config

    cfg = build_config("tse", "debug")
    info = D.prepare_data(cfg)  # espeak-ng corpus of the debug preset, generated and indexed once
    table = cache.read_split(info["path"], "audio")
    sr = cfg.data.sample_rate
    sizes = {"x1": 0, "x10": 0}
    for path, spk, kind, pcm in zip(*(table.column(c).to_pylist() for c in ("path", "speaker", "kind", "pcm"))):
        x = np.frombuffer(pcm, dtype=np.int16)
        name = Path(path).stem
        if kind == "noise":
            (root / "noise").mkdir(parents=True, exist_ok=True)
            sf.write(root / "noise" / f"{name}.wav", x, sr, subtype="PCM_16")
            continue
        for k in range(COPIES):
            y = (np.roll(x, int(0.1 * k * sr)) * 0.93 ** k).astype(np.int16)
            for corpus in (("x1", "x10") if k == 0 else ("x10",)):
                d = root / corpus / f"{spk}-c{k}" / "1"
                d.mkdir(parents=True, exist_ok=True)
                sf.write(d / f"{name}.flac", y, sr, subtype="PCM_16")
                sizes[corpus] += y.nbytes
    for corpus in ("x1", "x10"):  # index both trees with the platform's own indexer (in-process here)
        D.prepare_data(build_config("tse", "debug", overrides(root, corpus)), log=lambda *_: None)
    return {k: v / 2**20 for k, v in sizes.items()}


def main() -> int:
    B.quiet_logs()
    root = B.scratch("stream")
    os.environ["MLPLATFORM_HOME"] = str(root / "home")  # corpora, caches, frozen sets: never the user's
    t0 = time.perf_counter()
    audio_mb = write_corpora(root)
    build_s = time.perf_counter() - t0
    runs = {}
    # the last run: the 10x corpus through a cache smaller than it (8 MB vs ~29 MB of audio), so most draws
    # read from disk: what stays bounded is the cache, whatever the corpus
    plan = [("lazy", "x1", {}), ("lazy", "x10", {}), ("eager", "x1", {}), ("eager", "x10", {}),
            ("lazy", "x10", {"data.cache_mb": TIGHT_CACHE_MB})]
    for mode, corpus, extra in plan:
        name = f"{mode}_{corpus}" + ("_tight" if extra else "")
        r = run_child({"mode": mode, "overrides": {**overrides(root, corpus), **extra}, "work_dir": str(root / name)})
        runs[name] = r
        print(f"[stream] {name}: peak RSS {r['peak_rss_mb']:.0f} MB, data wait "
              f"{max(r['data_wait_frac']):.3f} of the step time", file=sys.stderr, flush=True)
    lazy_ratio = B.ratio(runs["lazy_x10"]["peak_rss_mb"], runs["lazy_x1"]["peak_rss_mb"])
    wait = max(max(runs[k]["data_wait_frac"]) for k in ("lazy_x1", "lazy_x10", "lazy_x10_tight"))
    B.emit("stream_rss", {
        "epochs": EPOCHS, "steps_per_epoch": STEPS, "audio_mb": audio_mb, "corpus_build_s": build_s,
        "runs": runs, "rss_ratio_lazy": lazy_ratio,
        "rss_ratio_eager": B.ratio(runs["eager_x10"]["peak_rss_mb"], runs["eager_x1"]["peak_rss_mb"]),
        "rss_growth_mb": {m: runs[f"{m}_x10"]["peak_rss_mb"] - runs[f"{m}_x1"]["peak_rss_mb"] for m in ("lazy", "eager")},
        "rss_ratio_lazy_tight": B.ratio(runs["lazy_x10_tight"]["peak_rss_mb"], runs["lazy_x1"]["peak_rss_mb"]),
        "data_wait_frac_max": wait, "goal_met": lazy_ratio <= RSS_GOAL and wait <= WAIT_GOAL})
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
