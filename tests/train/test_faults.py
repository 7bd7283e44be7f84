"""Faults survived (issue 6): a training worker process dies mid-epoch; Ray Train retries it from the
last checkpoint and the run ends with the same final model as an uninterrupted run (CPU, exact)."""
import torch
from mlflow.tracking import MlflowClient

import train  # jobs/train.py
from mlplatform.train.checkpoint import load_checkpoint

BASE = ["--family", "riscov", "--preset", "debug", "--set", "train.epochs=3", "--set", "data.n_train=512",
        "--set", "train.batch_size=64",
        "--set", "train.val_batches=2", "--set", "model.dropout=0.1", "--max-failures", "2"]


def final_model(storage, name):
    ckpts = sorted(p for p in (storage / name).glob("checkpoint_*") if p.is_dir())
    return load_checkpoint(ckpts[-1], "riscov")


def test_worker_killed_mid_epoch_retries_from_checkpoint_exactly(ray_session, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    storage = tmp_path / "ray"
    assert train.main(BASE + ["--name", "clean", "--storage-path", str(storage)]) == 0
    marker = tmp_path / "crashed"
    # 512 items / 64 per batch = 8 steps per epoch: step 12 is in the middle of epoch 2
    assert train.main(BASE + ["--name", "crashy", "--storage-path", str(storage),
                              "--set", "train.inject_crash_at_step=12",
                              "--set", f"train.inject_crash_marker={marker}"]) == 0
    assert marker.exists()  # the worker really died once
    a, b = final_model(storage, "clean"), final_model(storage, "crashy")
    assert a["loop"]["epoch"] == b["loop"]["epoch"] == 3 and a["loop"]["step"] == b["loop"]["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    cl = MlflowClient(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id],
                          filter_string="tags.train_name = 'crashy'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the retry continued the same run
