"""A multi-worker sweep trial's reports, from its ``TorchTrainer`` to Tune, without Ray 2.60's deadlock.

Ray's own bridge (``ray.tune.integration.ray_train.TuneReportCallback``) hands each Train report to the
trial actor's *main* thread through an inter-actor queue; that thread puts it on the session's one-slot
result queue. When ``trainer.fit()`` returns while the last report is still on its way, the trial's
training thread puts Tune's end-of-function marker (``RESULT_DUPLICATE``) on that slot first, and the main
thread then blocks forever on its own put: the trial hangs with its workers gone (seen twice in three full
test runs, 2026-11-26, in a 1-trial 2-worker sweep; the main thread's stack ended in
``_report_training_result -> queue.put``).

Here the trial's *training* thread does all reporting, as in any function trainable: the Train controller
puts each report on a queue of our own, and the training thread, which runs ``fit()`` in a helper thread,
takes them off and calls ``tune.report``. Every report is already queued when ``fit()`` returns (the
controller calls ``after_report`` before training ends), so draining the queue then leaves nothing in flight.
"""
from __future__ import annotations

import threading
from typing import Any

from ray.train.v2.api.callback import UserCallback

CHECKPOINT_PATH_KEY = "checkpoint_path"  # the key Ray's own bridge uses for a Train checkpoint's path


class ReportToTrial(UserCallback):
    """Runs in the Train controller: rank 0's metrics of each report go to the trial's queue. The queue
    holds one item, so the controller waits for the trial to take a report before it goes on, as with
    Ray's bridge."""

    def __init__(self, queue: Any):
        self.queue = queue

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        out = dict(metrics[0])
        if checkpoint is not None:
            out[CHECKPOINT_PATH_KEY] = checkpoint.path
        self.queue.put(out)


def fit_and_report(make_trainer: Any, poll_s: float = 0.5) -> Any:
    """Build the trainer with a ``ReportToTrial`` callback (``make_trainer(callback)``), fit it in a helper
    thread and forward its reports to Tune from this (the training) thread. Returns fit's result or
    raises its exception after the last report was forwarded."""
    from ray import tune
    from ray.util.queue import Empty, Queue

    queue = Queue(1, actor_options={"num_cpus": 0})
    trainer = make_trainer(ReportToTrial(queue))
    box: dict[str, Any] = {}
    done = threading.Event()

    def fit() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 - re-raised in the training thread below
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=fit, name="torchtrainer-fit", daemon=True).start()
    try:
        while True:
            try:
                tune.report(queue.get(timeout=poll_s))
            except Empty:
                if done.is_set() and queue.empty():
                    break
    finally:
        queue.shutdown()
    if "error" in box:
        raise box["error"]
    return box.get("result")
