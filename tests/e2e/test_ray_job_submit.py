"""The cluster path, for real: `ray start --head` + `mlflow server` on 127.0.0.1, `ray job submit` of a
2-trial sweep with `--working-dir .`, runs checked over MLflow's REST API, both stopped by PID.

Token authentication stays on (RAY_AUTH_MODE=token, with this test's own token file).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlplatform.tracking.server import free_port, stop_group as stop

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):  # up, and refusing us without the token: as it should
                return
            time.sleep(1)
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


def mlflow_api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                 headers={"Content-Type": "application/json"}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_ray_job_submit_sweep_lands_runs_in_mlflow_server(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths must stay short
    mlf_port, gcs_port, dash_port, client_port = free_port(), free_port(), free_port(), free_port()
    mlflow_url = f"http://127.0.0.1:{mlf_port}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(tmp_path / "ray_token"), "MLFLOW_TRACKING_URI": mlflow_url,
           "MLPLATFORM_HOME": str(tmp_path / "home"), "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    env.pop("RAY_ADDRESS", None)
    (tmp_path / "home").mkdir()
    token = tmp_path / "ray_token"  # `ray start` needs the token to exist; clients read the same file
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    mlflow_proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(mlf_port),
         "--workers", "1"], env=env, stdout=open(tmp_path / "mlflow.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    ray_proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs_port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port), "--ray-client-server-port",
         str(client_port), "--num-cpus", "2", "--include-dashboard", "true", "--temp-dir", str(short),
         "--disable-usage-stats"], env=env, stdout=open(tmp_path / "ray.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        wait_http(f"{mlflow_url}/health", 120, mlflow_proc, tmp_path / "mlflow.log")
        wait_http(f"http://127.0.0.1:{dash_port}/api/version", 120, ray_proc, tmp_path / "ray.log")
        cmd = [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dash_port}", "--working-dir", ".",
               "--", "python", "jobs/hpo.py", "--n_trials", "2", "--epochs_per_trial", "2", "--preset", "debug",
               "--name", "e2e-sweep", "--storage-path", str(tmp_path / "ray_results"),
               "--set", "data.n_train=512", "--set", "train.val_batches=2"]
        for _ in range(30):  # the dashboard answers before its job agent is ready
            job = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            if "No available agent to submit job" not in job.stdout + job.stderr:
                break
            time.sleep(2)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout + job.stderr
        exp = mlflow_api(mlflow_url, "experiments/get-by-name?experiment_name=riscov")["experiment"]
        runs = mlflow_api(mlflow_url, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 50})
        runs = runs.get("runs", [])
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags) if t.get("kind") == "sweep"]
        children = [r for r, t in zip(runs, tags) if t.get("mlflow.parentRunId")]
        assert len(parents) == 1 and len(children) == 2
        assert all(r["info"]["status"] in ("FINISHED", "KILLED") for r in runs)
        assert all(any(m["key"] == "val/nmse_blend" for m in r["data"].get("metrics", [])) for r in children)
    finally:
        stop(ray_proc)
        stop(mlflow_proc)
        # whatever Ray spawned under this test's temp dir goes too (never a machine-wide `ray stop`)
        subprocess.run(["pkill", "-9", "-f", str(short)], check=False)
        shutil.rmtree(short, ignore_errors=True)
    assert ray_proc.poll() is not None and mlflow_proc.poll() is not None
