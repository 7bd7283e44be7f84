"""MLflow's system-metrics monitor on a training run (rank 0): CPU and memory figures land in the run,
the monitor stops with the run, and MLPLATFORM_SYSTEM_METRICS=0 turns it off. CPU only (no GPU here:
GPU figures need the ``gpu`` extra and a GPU, and are not faked)."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from mlplatform.registry import build_config
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tracking import system_metrics
from mlplatform.train.executors import run_local

SMALL = ["data.n_train=1024", "data.n_val=128", "train.batch_size=32", "train.val_batches=2", "model.hidden=32",
         "train.epochs=4", "train.early_stop_patience=0"]


def train_logged(tmp_path, uri: str, name: str) -> str:
    cl = MlflowClient(uri)
    run_id = cl.create_run(mu.get_or_create_experiment(cl, "sysmetrics"), run_name=name).info.run_id
    cfg = build_config("riscov", "debug", SMALL)
    run_local({"family": "riscov", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / name), "verbose": False,
               "mlflow_run_id": run_id, "tracking_uri": uri})
    return run_id


def test_rank0_logs_cpu_and_memory_system_metrics(home, tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")  # a tiny run lasts a few seconds
    run_id = train_logged(tmp_path, mlflow_uri, "on")
    cl = MlflowClient(mlflow_uri)
    run = cl.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
                "system/system_memory_usage_percentage"):
        hist = cl.get_metric_history(run_id, key)
        assert hist, f"{key} not logged"
        assert all(h.value >= 0 for h in hist)
        steps = [h.step for h in hist]
        assert steps == sorted(set(steps))  # one sample per step, in order
    assert not any(k.startswith("system/gpu") for k in run.data.metrics)  # no GPU: nothing invented
    assert system_metrics._active == {}  # the monitor ended with the run
    assert run.data.tags["device"] == "cpu"


def test_system_metrics_can_be_turned_off(home, tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLPLATFORM_SYSTEM_METRICS", "0")
    run_id = train_logged(tmp_path, mlflow_uri, "off")
    run = MlflowClient(mlflow_uri).get_run(run_id)
    assert "val/nmse_blend" in run.data.metrics
    assert not any(k.startswith("system/") for k in run.data.metrics)
