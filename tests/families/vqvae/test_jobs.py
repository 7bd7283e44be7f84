"""The vqvae jobs end to end with real Ray and a real MLflow store: analyze_compression, diagnose,
compare_compression (bad input exits 2 with one line)."""
from __future__ import annotations

import json
from pathlib import Path

import analyze_compression
import compare_compression
import diagnose
from mlplatform.registry import build_config
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.train.executors import run_local

SMALL = ["data.n_rows=3000", "data.analysis_rows=3000", "train.epochs=1", "train.val_batches=2"]


def _runs(uri: str, kind: str):
    cl = mu.client(uri)
    exp = cl.get_experiment_by_name("vqvae")
    return cl, cl.search_runs([exp.experiment_id], filter_string=f"tags.kind = '{kind}'")


def test_analyze_compression_logs_artifacts_and_hits_cache(small_table, tmp_path, mlflow_uri, monkeypatch, capsys,
                                                         ray_session):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    path, _ = small_table
    argv = ["--data", str(path), "--strategy", "balanced", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")]
    assert analyze_compression.main(argv) == 0
    assert "balanced: computed" in capsys.readouterr().out
    assert analyze_compression.main(argv) == 0
    assert "balanced: cache hit" in capsys.readouterr().out
    cl, runs = _runs(mlflow_uri, "compression_analysis")
    assert len(runs) == 2
    arts = {a.path for a in cl.list_artifacts(runs[0].info.run_id, "compression_analysis")}
    assert {"compression_analysis/analysis_balanced.json", "compression_analysis/analysis_balanced.md",
            "compression_analysis/analysis_balanced.png"} <= arts


def test_analyze_compression_bad_input_one_line_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    assert analyze_compression.main(["--data", str(empty), "--no-mlflow", "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "empty.parquet" in err and "\n" not in err
    assert analyze_compression.main(["--data", str(empty), "--strategy", "magic", "--no-mlflow"]) == 2


def test_diagnose_and_compare(home, tmp_path, mlflow_uri, monkeypatch, capsys, ray_session):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    cfg = build_config("vqvae", "debug", SMALL)
    summary, _ = run_local({"family": "vqvae", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "w"), "verbose": False})
    ckpt = Path(summary["work_dir"]) / "best"
    assert diagnose.main(["--family", "vqvae", "--checkpoint", str(ckpt), "--out", str(tmp_path / "d")]) == 0
    md = (tmp_path / "d" / "diagnostics.md").read_text()
    assert "Per-Category Reconstruction Errors" in md and "Codebook Health" in md and "(best)" in md
    assert (tmp_path / "d" / "diagnostics.png").stat().st_size > 0
    cl, runs = _runs(mlflow_uri, "diagnose")
    assert {a.path for a in cl.list_artifacts(runs[0].info.run_id, "diagnostics")} >= {
        "diagnostics/diagnostics.md", "diagnostics/diagnostics.png"}
    assert diagnose.main(["--family", "vqvae", "--checkpoint", str(tmp_path / "nope"), "--no-mlflow"]) == 2
    assert diagnose.main(["--family", "riscov", "--checkpoint", str(ckpt), "--no-mlflow"]) == 2

    argv = ["--strategies", "uniform,balanced", "--seeds", "0,1", "--out", str(tmp_path / "cmp")] + \
        [a for s in SMALL for a in ("--set", s)]
    assert compare_compression.main(argv) == 0
    printed = capsys.readouterr().out  # a progress line as each of the 2 x 2 models and 2 bounds ends
    assert "[compare] balanced seed 1 done at" in printed and "[compare] bounds seed 0 done" in printed
    assert "(6/6)" in printed
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| uniform |" in table and "| balanced |" in table and "floor_residual_kmeans" in table and "ceiling_unquantised" in table
    assert "reference_pca" in table and "strongest bit-matched floor" in table
    assert " ± " in table and "Entropy/log K" in table and "Wall" in table and "load" in table
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert summary["winner"]["default"] in ("uniform", "balanced") and set(summary["runs"]) == {"uniform", "balanced"}
    assert all(len(v) == 2 for v in summary["runs"].values())  # one row per seed
    cl, parents = _runs(mlflow_uri, "compare_compression")
    assert len(parents) == 1
    pid = parents[0].info.run_id
    children = list(mu.iter_child_runs(cl, parents[0].info.experiment_id, pid))
    assert sorted((c.data.tags["strategy"], c.data.tags["seed"]) for c in children) == [
        ("balanced", "0"), ("balanced", "1"), ("uniform", "0"), ("uniform", "1")]
    assert {"comparison/comparison.md", "comparison/comparison.png", "comparison/comparison.json"} <= {
        a.path for a in cl.list_artifacts(pid, "comparison")}
    assert compare_compression.main(["--strategies", "bogus"]) == 2
    assert compare_compression.main(["--seeds", "0,x"]) == 2
    assert compare_compression.main(["--gpus-per-task", "-1"]) == 2
    assert compare_compression.main(["--gpus-per-task", "1", *argv]) == 2  # this Ray has no GPU: refused


def test_compare_tasks_run_without_ray_and_their_results_file_is_logged(home, tmp_path, mlflow_uri, monkeypatch):
    """benchmarks/vqvae_compare_gpu.py (a GPU machine without Ray or MLflow: a process pool, here on CPU)
    writes the tasks' results; compare_compression --results turns them into the table and a parent run."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    out = tmp_path / "r.json"
    sets = [a for s in SMALL for a in ("--set", s)]
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "vqvae_compare_gpu.py"), "--preset", "debug",
                           "--strategies", "uniform", "--seeds", "0", "--workers", "1", "--cpu-workers", "1",
                           "--out", str(out),
                           *sets], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})  # what the GPU pool keeps
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"bounds|0", "uniform|0"} and doc["meta"]["device"] == "cpu"
    assert all("failed" not in r for r in doc["results"].values())
    # --cpu-workers: the quantised model goes to the GPU-less pool, the bounds stay with the GPU pool
    assert doc["meta"]["placement"] == {"bounds|0": "gpu", "uniform|0": "cpu"}
    assert doc["results"]["uniform|0"]["device"] == "cpu"
    assert doc["results"]["uniform|0"]["cuda_visible_devices"] == ""  # the pool's initializer hid the GPU
    assert doc["results"]["bounds|0"]["cuda_visible_devices"] == "0"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    assert compare_compression.main(["--results", str(out), "--out", str(tmp_path / "cmp"), "--name", "imported"]) == 0
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| uniform |" in table and "ceiling_unquantised" in table and ", cpu." in table
    cl, parents = _runs(mlflow_uri, "compare_compression")
    assert len(parents) == 1 and parents[0].data.tags["compare.device"] == "cpu"
    assert parents[0].data.params["compare.results"] == str(out)
    doc["results"]["uniform|0"] = {"failed": "RuntimeError: boom"}
    out.write_text(json.dumps(doc))
    assert compare_compression.main(["--results", str(out)]) == 2  # a missing task's row is not made up
