"""The sweep's terminal progress: counts by how trials ended and a time-left estimate that accounts for
concurrency and trials still running. Times are given explicitly (``now``), never measured."""
from types import SimpleNamespace

import pytest

from mlplatform.tune.callbacks import SweepProgress


def _progress(n: int, done: int, avg: float = 10.0) -> SweepProgress:
    """``done`` trials of ``avg`` seconds each, two at a time."""
    p = SweepProgress("val/x", "min", n_trials=n, max_concurrent=2)
    p.t0 = 0.0
    p.durations = [avg] * done
    p.ended_at = [avg * (1 + i // 2) for i in range(done)]
    p.done = {f"d{i}": "completed" for i in range(done)}
    return p


def test_eta_from_measured_throughput():
    p = _progress(10, 4)  # 2 at a time, 10 s each: 4 done after 20 s
    assert p.eta(20.0) == pytest.approx(30.0)  # 6 left at 2 per 10 s
    p.started = {"r": 15.0}  # a running trial half-way through counts as half done
    assert p.eta(20.0) == pytest.approx(5.5 * 20.0 / 4.5)
    assert _progress(4, 4).eta(20.0) == 0.0
    assert SweepProgress("val/x", "min", 4, 2).eta(5.0) is None  # nothing finished yet: no estimate


def test_eta_follows_a_change_in_cluster_load():
    p = _progress(12, 8)
    p.ended_at = [40.0, 40.0, 80.0, 80.0, 90.0, 90.0, 100.0, 100.0]  # slow at first, then 2 per 10 s
    assert p.eta(100.0) == pytest.approx(20.0)  # the last 4 ends, not the average since the start (50 s)


def test_eta_never_below_what_a_running_trial_still_needs():
    p = _progress(5, 4)
    p.started = {"last": 18.0}  # alone at the end: the pair throughput would say ~4 s
    assert p.eta(20.0) == pytest.approx(8.0)


def test_counts_by_outcome_and_restored_trials(capsys):
    p = SweepProgress("val/x", "min", n_trials=6, max_concurrent=2)
    trials = [SimpleNamespace(trial_id="a", status="TERMINATED", last_result={"stop_reason": "completed"}),
              SimpleNamespace(trial_id="b", status="TERMINATED", last_result={"stop_reason": "guard:g: x"}),
              SimpleNamespace(trial_id="c", status="ERROR", last_result={}),
              SimpleNamespace(trial_id="d", status="PENDING", last_result=None)]
    p.on_trial_start(0, trials, trials[3])  # a restored sweep: a, b, c ended before the restore
    p.on_trial_result(0, trials, trials[3], {"val/x": 0.5})
    trials[3].last_result = {"stop_reason": "alarm:loss_vs_selection: loss fell, metric rose", "epoch": 3}
    p.on_trial_complete(0, trials, trials[3])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "4/6 done (1 completed; stopped: 1 GUARD, 1 ALARM, 1 FAILED), 0 running" in last
    assert "best val/x=0.5 (d)" in last and "d ALARM after 3 epoch(s): alarm:loss_vs_selection" in last
