"""A resumed sweep makes the decisions the uninterrupted one makes (issue 27). An 8-trial ASHA sweep with
a fixed seed runs once uninterrupted; the same sweep is killed (driver and embedded Ray, SIGKILL) after its
4th trial ended and resumed with ``--resume``. Per sampled config, the resumed sweep must stop each trial at
the same epoch for the same reason, and name the same best trial with the same value.

Tune's snapshot leaves ASHA's rungs out (mlplatform.tune.scheduler_state): without the SchedulerState
callback, the resumed trials meet empty rungs and are kept where the uninterrupted sweep stops them. The
rungs here (grace 1, ASHA's default reduction factor 3, 4 epochs: rungs after epochs 1 and 3, a trial below
the rung's 67th percentile stops) prune most trials reaching them, so the trials after the kill meet rungs the
first four filled."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
N, EPOCHS, KILL_AFTER = 8, 4, 4
ARGS = ["--n_trials", str(N), "--epochs_per_trial", str(EPOCHS), "--preset", "debug", "--max-concurrent", "1",
        "--early_stop_patience", "0", "--grace-period", "1", "--seed", "7",
        "--confirm-top", "0", "--set", "data.n_train=512", "--set", "train.val_batches=2"]


def decisions(uri: str, parent: str) -> dict[tuple, tuple[str, int]]:
    """{swept params of a trial: (stop reason, epochs logged)} of a sweep's child runs (only the params that
    vary between its trials, so a failure names the trial by what was sampled)."""
    cl = MlflowClient(uri)
    exp = cl.get_experiment_by_name("riscov")
    runs = cl.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    swept = {k for k in runs[0].data.params if len({r.data.params.get(k) for r in runs}) > 1}
    out = {}
    for r in runs:
        key = tuple(sorted((k, v) for k, v in r.data.params.items() if k in swept))
        epochs = len(cl.get_metric_history(r.info.run_id, "val/nmse_blend"))
        assert key not in out, f"two trials sampled the same config {key}"
        out[key] = (r.data.tags.get("stop_reason", ""), epochs)
    return out


def sweep(env: dict, tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / f"{name}.json"
    r = subprocess.run([sys.executable, "jobs/hpo.py", *ARGS, "--storage-path", str(tmp_path / "ray"),
                        "--name", name, "--json-out", str(out), *extra],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(out.read_text())


def test_resumed_sweep_makes_the_same_decisions(home, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLPLATFORM_OPTUNA_STORAGE", None)
    ref = sweep(env, tmp_path, "t-whole")
    want = decisions(uri, ref["parent_run_id"])
    assert len(want) == N
    pruned = [k for k, (why, _) in want.items() if why.startswith("pruned")]
    assert 0 < len(pruned) < N, want  # the rungs decide something, else the test shows nothing

    log = tmp_path / "killed.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "jobs/hpo.py", *ARGS, "--storage-path", str(tmp_path / "ray"),
                              "--name", "t-killed"], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        end = time.time() + 600
        while time.time() < end and f"{KILL_AFTER}/{N} done" not in log.read_text():
            assert p.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert f"{KILL_AFTER}/{N} done" in log.read_text(), log.read_text()[-3000:]
        time.sleep(2)  # a snapshot (every second here) after the 4th trial's end
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    got_summary = sweep(env, tmp_path, "t-killed", "--resume", "t-killed")
    got = decisions(uri, got_summary["parent_run_id"])
    assert set(got) == set(want), "the resumed sweep sampled other configs"
    differ = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    assert not differ, f"decisions differ (uninterrupted, resumed): {differ}"
    assert got_summary["best_config"] == ref["best_config"]
    assert got_summary["best_value"] == ref["best_value"]
