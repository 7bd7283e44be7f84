"""Faults survived (issue 6, issue 16): a training worker process dies mid-epoch, or right after an epoch
was logged and before its checkpoint was reported; Ray Train retries it from the last checkpoint and the
run ends with the same final model as an uninterrupted run (CPU, exact), and its MLflow history holds
each epoch once, with the uninterrupted run's values."""
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import train  # jobs/train.py
from metric_history import assert_same_history, history  # tests/metric_history.py
from mlplatform.train.checkpoint import load_checkpoint

BASE = ["--family", "riscov", "--preset", "debug", "--set", "train.epochs=3", "--set", "data.n_train=512",
        "--set", "train.batch_size=64",
        "--set", "train.val_batches=2", "--set", "model.dropout=0.1", "--max-failures", "2"]


def final_model(storage, name):
    ckpts = sorted(p for p in (storage / name).glob("checkpoint_*") if p.is_dir())
    return load_checkpoint(ckpts[-1], "riscov")


def train_run_id(uri: str, name: str) -> str:
    cl = MlflowClient(uri)
    runs = cl.search_runs([cl.get_experiment_by_name("riscov").experiment_id],
                          filter_string=f"tags.train_name = '{name}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the retry continued the same run
    return runs[0].info.run_id


@pytest.fixture(scope="module")
def clean(ray_session, tmp_path_factory):
    """The uninterrupted run both drills are compared with: (storage, tracking URI)."""
    tmp = tmp_path_factory.mktemp("faults")
    storage, uri = tmp / "ray", f"sqlite:///{tmp / 'mlruns.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        assert train.main(BASE + ["--name", "clean", "--storage-path", str(storage)]) == 0
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return storage, uri


def test_worker_killed_mid_epoch_retries_from_checkpoint_exactly(clean, tmp_path, monkeypatch):
    storage, uri = clean
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
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
    assert_same_history(history(uri, train_run_id(uri, "crashy")), history(uri, train_run_id(uri, "clean")))


def kill_when_paused(marker: Path, timeout: float = 600) -> threading.Thread:
    """SIGKILL the process whose pid the pause drill writes to ``marker`` (as an OOM kill would)."""
    def watch():
        end = time.time() + timeout
        while time.time() < end:
            text = marker.read_text().strip() if marker.exists() else ""
            if text:
                os.kill(int(text), signal.SIGKILL)
                return
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_worker_killed_after_logging_an_epoch_logs_it_once(clean, tmp_path, monkeypatch):
    """The kill lands after epoch 2 reached MLflow and before its checkpoint was reported: the retry
    re-runs epoch 2 from epoch 1's checkpoint and must not log it a second time."""
    storage, uri = clean
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    marker = tmp_path / "paused"
    watcher = kill_when_paused(marker)
    assert train.main(BASE + ["--name", "killed-after-log", "--storage-path", str(storage),
                              "--set", "train.inject_pause_after_log_epoch=2",
                              "--set", f"train.inject_crash_marker={marker}"]) == 0
    watcher.join(timeout=5)
    assert marker.exists() and not watcher.is_alive()  # the worker really was killed in the window
    assert_same_history(history(uri, train_run_id(uri, "killed-after-log")), history(uri, train_run_id(uri, "clean")))
