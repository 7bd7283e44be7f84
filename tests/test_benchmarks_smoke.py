"""Benchmarks: the cheapest one runs with tiny sizes and prints its JSON; nothing here asserts a time."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_path():
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_batched_pairs_prints_one_json_line_and_both_forms_agree(bench_path, capsys):
    import batched_pairs

    out = batched_pairs.main(["--sizes", "debug", "--repeats", "1"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line)["benchmark"] == "batched_pairs"
    r = out["sizes"]["debug"]
    assert {"batched_s", "loop_s", "speedup_batched", "pairs", "window_frames"} <= set(r)
    assert r["pairs"] == 3 and r["batched_s"] > 0 and r["loop_s"] > 0
    assert r["max_abs_diff"] < 1e-4  # the loop baseline computes the same outputs as the batched model
    assert {"cpu", "cores", "torch", "ray"} <= set(out["machine"])
    import table

    assert [row[0] for row in table.rows({"batched_pairs": out})] == ["5 batched pairs"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the GPU benchmark really runs")
def test_gpu_benchmark_skips_cleanly_without_cuda(bench_path):
    import gpu

    assert gpu.main([])["skipped"] is True


def test_every_benchmark_in_run_all_exists():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert all((BENCH / f"{n}.py").is_file() for n in run_all.ORDER)
    assert run_all.main(["--only", "no_such_bench"]) == 2

