"""Failures end: a request that cannot fit is refused in one line before Ray work and before any MLflow
run; a run (or a multi-worker sweep trial) whose workers cannot be placed ends within a bounded time,
FAILED, with the reason as its ``stop_reason`` tag (Train's controller retries are bounded)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import hpo  # jobs/hpo.py
import train  # jobs/train.py

REPO = Path(__file__).resolve().parents[2]


def test_a_gpu_request_on_a_machine_without_gpus_is_one_line_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the request fits")
    db = tmp_path / "mlruns.db"
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    env.pop("RAY_ADDRESS", None)
    t0, cpu0 = time.monotonic(), sum(os.times()[2:4])
    r = subprocess.run([sys.executable, "jobs/train.py", "--family", "riscov", "--preset", "debug",
                        "--gpus-per-worker", "1", "--storage-path", str(tmp_path / "ray")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    cpu = sum(os.times()[2:4]) - cpu0  # user + system time of the finished child
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == ["error: the run needs 1 GPUs but the cluster has 0; lower --gpus-per-worker "
                                     "or --num-workers"]
    assert cpu < 30, f"{cpu:.0f}s of CPU"
    # the wall clock is the bar ("under 30 s"); on a machine loaded far past its cores (load > 4 per core,
    # measured: 52 s of wall time for 7 s of CPU at load 80 on 2 cores) only the CPU time above is a fair bar
    if os.getloadavg()[0] < 4 * (os.cpu_count() or 1):
        assert wall < 30, f"{wall:.0f}s"
    assert not db.exists()  # no MLflow run (not even a store) was created


@pytest.fixture()
def busy_cluster(ray_session, monkeypatch):
    """0.5 of the session's 2 CPUs held by an actor: a worker of 1.9 CPUs fits the cluster but cannot be placed
    now (the data step's 1-CPU tasks still run). Workers that cannot start are given up after 2 s per try."""
    import ray

    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "2")

    @ray.remote(num_cpus=0.5)
    class Hold:
        def ping(self) -> int:
            return 1

    hold = Hold.remote()
    ray.get(hold.ping.remote())
    yield
    ray.kill(hold)


def test_a_run_whose_workers_cannot_be_placed_ends_failed_with_its_reason(busy_cluster, mlflow_uri, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    t0 = time.monotonic()
    rc = train.main(["--family", "riscov", "--preset", "debug", "--cpus-per-worker", "1.9", "--name", "t-stuck",
                     "--storage-path", str(tmp_path / "ray"), "--set", "train.epochs=1"])
    wall = time.monotonic() - t0
    assert rc == 1
    err = capsys.readouterr().err
    assert "[train] FAILED: workers could not be started: The worker group startup timed out after 2.0 seconds" in err
    assert wall < 120, f"{wall:.0f}s"  # 3 tries of 2 s plus Train's start and stop, not forever
    cl = MlflowClient(mlflow_uri)
    run = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["stop_reason"].startswith("error: workers could not be started")


def test_a_multi_worker_trial_whose_workers_cannot_be_placed_ends_failed(busy_cluster, mlflow_uri, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    t0 = time.monotonic()
    # 2 workers x 0.9 CPU + 0.01 fit the cluster's 2 CPUs, but only 1.5 are free
    rc = hpo.main(["--n_trials", "1", "--epochs_per_trial", "1", "--preset", "debug", "--name", "t-stuck-mw",
                   "--workers-per-trial", "2", "--cpus-per-worker", "0.9", "--storage-path", str(tmp_path / "ray")])
    wall = time.monotonic() - t0
    assert rc == 1  # no trial produced the selection metric
    assert wall < 240, f"{wall:.0f}s"
    cl = MlflowClient(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert children and all(r.info.status == "FAILED" for r in children), [r.info.status for r in children]
    assert all(r.data.tags.get("stop_reason", "").startswith("error") for r in children)
