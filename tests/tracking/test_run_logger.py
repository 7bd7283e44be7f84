"""RunLogger against a store that is not there: it queues in order, backs off instead of paying a request
per call, and gives up only after its retry window, saying so; against a live store it drains in order."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tracking.server import free_port


class CountingLogger(mu.RunLogger):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.attempts = 0

    def _send(self, kind, payload):
        self.attempts += 1
        super()._send(kind, payload)


def test_dead_store_queues_backs_off_and_gives_up_after_its_window(capsys, monkeypatch):
    monkeypatch.setenv("MLPLATFORM_MLFLOW_RETRY_S", "0")
    lg = CountingLogger("0" * 32, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for step in range(1, 21):
        lg.log_metrics({"train/loss": 1.0 / step}, step=step)
    assert lg.pending == 20
    assert lg.attempts == 1  # the other 19 calls fell inside the backoff: no request, no wait
    assert lg.end("FINISHED") is False and lg.pending == 21  # the end marker queues behind the metrics
    out = capsys.readouterr().out
    assert out.count("store unreachable") == 1 and "giving up: 21 item(s)" in out


def test_queue_drains_in_order_once_the_store_answers(mlflow_uri, tmp_path):
    cl = MlflowClient(mlflow_uri)
    run_id = cl.create_run(mu.get_or_create_experiment(cl, "drain")).info.run_id
    lg = mu.RunLogger(run_id, mlflow_uri)
    dead = MlflowClient(f"http://127.0.0.1:{free_port()}")
    live, lg.cl = lg.cl, dead  # the same logger, first pointed at nothing...
    art = tmp_path / "best"
    art.mkdir()
    (art / "weights.txt").write_text("epoch 1")
    for step in (1, 2, 3):
        lg.log_metrics({"val/x": float(step)}, step=step)
    lg.log_artifacts(str(art), "checkpoints/best")
    (art / "weights.txt").write_text("epoch 9")  # the caller reuses its folder; the buffered copy is kept
    assert lg.pending == 4
    lg.cl = live  # ...then the store is back
    assert lg.end("FINISHED", timeout_s=30) is True and lg.pending == 0
    assert [(m.step, m.value) for m in cl.get_metric_history(run_id, "val/x")] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert cl.get_run(run_id).info.status == "FINISHED"
    got = cl.download_artifacts(run_id, "checkpoints/best/weights.txt", str(tmp_path / "dl"))
    assert open(got).read() == "epoch 1"


def test_a_restarted_logger_does_not_log_an_epoch_the_run_already_holds(mlflow_uri, capsys):
    """A retried worker or resumed trial re-runs the epochs after its last checkpoint: the points of those
    already in the store (the marker's steps) are not sent again; a batch without the marker always is."""
    cl = MlflowClient(mlflow_uri)
    run_id = cl.create_run(mu.get_or_create_experiment(cl, "once")).info.run_id
    first = mu.RunLogger(run_id, mlflow_uri, epoch_marker="sys/epoch_time_s")
    for step in (1, 2):  # logged, then the process died before epoch 2's checkpoint was reported
        first.log_metrics({"sys/epoch_time_s": 0.1, "train/loss": 1.0 / step}, step=step)
    again = mu.RunLogger(run_id, mlflow_uri, epoch_marker="sys/epoch_time_s")
    for step in (2, 3):  # the retry resumes from epoch 1's checkpoint
        again.log_metrics({"train/loss": 1.0 / step, "sys/epoch_time_s": 0.2}, step=step)
    again.log_metrics({"summary/x": 1.0}, step=1)  # no marker: not an epoch's batch
    assert again.logged_through == 2
    assert [(m.step, m.value) for m in cl.get_metric_history(run_id, "train/loss")] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert [m.value for m in cl.get_metric_history(run_id, "sys/epoch_time_s")] == [0.1, 0.1, 0.2]
    assert len(cl.get_metric_history(run_id, "summary/x")) == 1
    assert "already holds step 2" in capsys.readouterr().out
