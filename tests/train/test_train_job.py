"""jobs/train.py: a real TorchTrainer with 2 DDP workers (gloo) logging one MLflow run."""
from mlflow.tracking import MlflowClient

import train  # jobs/train.py


def test_train_job_two_workers_logs_one_run(ray_session, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    rc = train.main(["--family", "riscov", "--preset", "debug", "--num-workers", "2", "--name", "t-train",
                     "--storage-path", str(tmp_path / "ray"), "--set", "train.epochs=2",
                     "--set", "data.n_train=1024", "--set", "train.val_batches=2"])
    assert rc == 0
    cl = MlflowClient(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.data.tags["world_size"] == "2"
    assert r.data.tags["stop_reason"] == "completed"
    assert len(cl.get_metric_history(r.info.run_id, "val/nmse_blend")) == 2
    assert [a.path for a in cl.list_artifacts(r.info.run_id, "checkpoints")] == ["checkpoints/best"]
