"""Multi-worker sweep trials' placement groups (issue 16): with a second Ray instance on the host, Ray
Train's own cleaner cannot find its cluster unless told, and may leave a stopped trial's group reserved.
The State API must still answer in our workers, and an ASHA sweep of 4 two-worker trials must finish
with no placement group left reserved."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import ray

import hpo  # jobs/hpo.py
from mlplatform.tracking.server import free_port, stop_group
from mlplatform.tune.placement import RECORD_FILE

RAY_BIN = str(Path(sys.executable).with_name("ray"))


@pytest.fixture()
def second_ray():
    """Another local Ray instance (its own GCS on 127.0.0.1), stopped by its process group, never `ray stop`."""
    port, temp = free_port(), tempfile.mkdtemp(prefix="r2-", dir="/tmp")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    p = subprocess.Popen([RAY_BIN, "start", "--head", "--block", "--port", str(port), "--node-ip-address",
                          "127.0.0.1", "--num-cpus", "1", "--include-dashboard", "false", "--temp-dir", temp,
                          "--disable-usage-stats"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        end = time.time() + 120
        while not any(f"--gcs_server_port={port}" in " ".join(q.info["cmdline"] or [])
                      for q in psutil.process_iter(["cmdline"])):
            assert p.poll() is None and time.time() < end, "the second Ray instance did not start"
            time.sleep(0.5)
        yield port
    finally:
        stop_group(p, grace=5.0)  # a throwaway instance: `ray start --block` took the full 30 s on SIGTERM
        shutil.rmtree(temp, ignore_errors=True)


@ray.remote(num_cpus=0)
def _api_server_seen_by_a_worker() -> tuple[str, int]:
    from ray.dashboard.utils import get_address_for_submission_client
    from ray.util.state import list_placement_groups

    # no address given, as Ray Train's cleaner calls it
    return get_address_for_submission_client(None), len(list_placement_groups(limit=1000))


def _reserved() -> list[str]:
    return [pg for pg, row in ray.util.placement_group_table().items() if row["state"] in ("CREATED", "PENDING")]


def test_multi_worker_asha_sweep_beside_another_ray_leaves_no_group_reserved(
        ray_session, second_ray, mlflow_uri, tmp_path, monkeypatch):
    t0 = time.time()
    # Without being told, an address-less lookup guesses: it finds "multiple active Ray instances", or
    # whichever instance last wrote /tmp/ray/ray_current_cluster (ours or the other one, by start order).
    # Our workers are told: Ray Train's cleaner, in a worker, queries this instance.
    ours = "http://" + ray._private.worker.get_dashboard_url()
    seen, _ = ray.get(_api_server_seen_by_a_worker.remote())
    assert seen == ours

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    out, storage = tmp_path / "summary.json", tmp_path / "ray"
    rc = hpo.main(["--n_trials", "4", "--epochs_per_trial", "2", "--grace-period", "1", "--preset", "debug",
                   "--name", "t-pg", "--workers-per-trial", "2", "--cpus-per-worker", "0.25", "--max-concurrent", "2",
                   "--early_stop_patience", "0", "--storage-path", str(storage), "--json-out", str(out),
                   "--set", "data.n_train=256", "--set", "train.val_batches=1"])
    assert rc == 0
    assert json.loads(out.read_text())["n_trials"] == 4
    recorded = json.loads((storage / "t-pg" / RECORD_FILE).read_text())
    assert len(recorded) == 4 and all(recorded.values())  # every trial named its worker group's placement group
    end = time.time() + 30  # the last trial's controller removes its own group as it shuts down
    while _reserved() and time.time() < end:
        time.sleep(1)
    assert _reserved() == []
    print(f"[measured] 4-trial two-worker ASHA sweep beside a second Ray: {time.time() - t0:.0f} s")
