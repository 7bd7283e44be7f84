#!/usr/bin/env python
"""A simulated multi-node Ray cluster (``ray.cluster_utils.Cluster``: one raylet per node, all on this
host) running real sweeps through ``run_sweep``; run as its own process by ``test_simulated_cluster.py``
so its Ray instance never meets the test session's.

Two phases on one cluster (a head with no CPUs for the driver, two 1-CPU worker nodes):

1. node loss: a 4-trial FIFO sweep, 2 trials at a time (one per node); once a trial has checkpointed
   two epochs on one worker node, that node is removed (``cluster.remove_node``, no grace). Its trial
   fails and Tune retries it (``FailureConfig(max_failures)``) from its last checkpoint on the survivor.
2. logical GPUs: a node declaring 1 GPU to Ray (there is no CUDA) joins; a sweep with
   ``gpus_per_worker=0.5`` must run 2 trials at a time on it, each on the CPU torch device.

  python tests/cluster/simcluster.py OUT_DIR     # writes OUT_DIR/result.json and OUT_DIR/mlruns.db
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

# tiny trials: 8 epochs of 8 steps (batch 128), 2 validation batches
TINY = ["data.n_train=1024", "train.val_batches=2", "model.hidden=64", "model.depth=2"]
EPOCHS = 8


def patient(start: Any, tries: int = 3) -> Any:
    """Start a node, again if it fails: Ray gives a raylet a fixed 30 s to register with the GCS, which a
    2-core machine shared with other jobs (load average 50-90 was seen) does not always allow."""
    for i in range(tries):
        try:
            return start()
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception for a node that timed out
            if i == tries - 1 or "timed out during startup" not in str(e):
                raise
            print(f"[simcluster] a node timed out during startup (load {os.getloadavg()[0]:.0f}); again", flush=True)


def start_cluster(shared: Path) -> tuple[Any, list[Any]]:
    import ray
    from ray.cluster_utils import Cluster

    from mlplatform.train.executors import ensure_env_for_workers

    from mlplatform.tracking.server import free_port

    # the dashboard on loopback and a free port (another Ray on this host may hold 8265); a lost node is
    # declared dead after ~3 missed 1 s health checks instead of Ray's default ~30 s
    cluster = patient(lambda: Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "dashboard_host": "127.0.0.1", "dashboard_port": free_port(),
        "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}}))
    workers = [patient(lambda: cluster.add_node(num_cpus=1)) for _ in range(2)]
    cluster.wait_for_nodes()
    env = {**ensure_env_for_workers(), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "MLPLATFORM_HOME": os.environ.get("MLPLATFORM_HOME", str(shared / "home"))}
    ray.init(address=cluster.address, runtime_env={"env_vars": env}, logging_level="WARNING")
    return cluster, workers


def remove_when_checkpointed(cluster: Any, workers: list[Any], uri: str, sweep: str, out: dict[str, Any],
                             stop: threading.Event) -> None:
    """Watch the sweep's MLflow runs; when a RUNNING trial on a worker node has logged >= 2 epochs (and so
    reported their checkpoints) but not its last, remove that node. Records what it removed in ``out``."""
    from mlplatform.tracking import mlflow_utils as mu

    cl = mu.client(uri)
    by_id = {w.node_id: w for w in workers}
    while not stop.is_set():
        exp = cl.get_experiment_by_name("riscov")
        runs = cl.search_runs([exp.experiment_id], filter_string=f"tags.sweep = '{sweep}' and "
                              "attributes.status = 'RUNNING'") if exp else []
        for r in runs:
            node = r.data.tags.get("ray.node_id")
            if node not in by_id:
                continue
            steps = [m.step for m in cl.get_metric_history(r.info.run_id, "train/loss")]
            if 2 <= len(steps) < EPOCHS - 1:
                time.sleep(0.3)  # the report after the metrics: its checkpoint is in storage by then
                out.update(victim=node, victim_trial=r.data.tags["trial_id"], epochs_at_removal=len(steps),
                           running_on_victim=[x.data.tags["trial_id"] for x in runs
                                              if x.data.tags.get("ray.node_id") == node], removed_at=time.time())
                cluster.remove_node(by_id[node], allow_graceful=False)
                out["survivor"] = next(n for n in by_id if n != node)
                return
        time.sleep(0.2)


def node_loss_sweep(cluster: Any, workers: list[Any], shared: Path, uri: str) -> dict[str, Any]:
    from mlplatform.tune.sweep import SweepSpec, run_sweep

    spec = SweepSpec(family="riscov", n_trials=4, epochs_per_trial=EPOCHS, early_stop_patience=0, scheduler="fifo",
                     overrides=TINY, name="sim-node-loss", storage_path=str(shared / "ray_results"),
                     tracking_uri=uri, max_failures=2)
    removed: dict[str, Any] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=remove_when_checkpointed, args=(cluster, workers, uri, spec.name, removed, stop),
                               daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    try:
        summary = run_sweep(spec)
    finally:
        stop.set()
        watcher.join(30)
    return {"summary": summary, "removed": removed, "wall_s": time.perf_counter() - t0,
            "workers": [w.node_id for w in workers]}


def logical_gpu_sweep(cluster: Any, shared: Path, uri: str) -> dict[str, Any]:
    import ray

    from mlplatform.tune.sweep import SweepSpec, run_sweep

    gpu_node = patient(lambda: cluster.add_node(num_cpus=2, num_gpus=1))
    cluster.wait_for_nodes()
    spec = SweepSpec(family="riscov", n_trials=4, epochs_per_trial=EPOCHS, early_stop_patience=0, scheduler="fifo",
                     overrides=TINY, name="sim-logical-gpu", storage_path=str(shared / "ray_results"),
                     tracking_uri=uri, cpus_per_worker=0.5, gpus_per_worker=0.5)
    t0 = time.perf_counter()
    summary = run_sweep(spec)
    return {"summary": summary, "gpu_node": gpu_node.node_id, "wall_s": time.perf_counter() - t0,
            "cluster_gpus": ray.cluster_resources().get("GPU", 0)}


def main(out_dir: str) -> int:
    out = Path(out_dir)
    shared = out / "shared"  # the "network" folder every node sees: Tune's storage path
    shared.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out / 'mlruns.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    t0 = time.perf_counter()
    cluster, workers = start_cluster(shared)
    result: dict[str, Any] = {"start_s": time.perf_counter() - t0, "head": cluster.head_node.node_id}
    try:
        result["node_loss"] = node_loss_sweep(cluster, workers, shared, uri)
        result["logical_gpu"] = logical_gpu_sweep(cluster, shared, uri)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    result["wall_s"] = time.perf_counter() - t0
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
