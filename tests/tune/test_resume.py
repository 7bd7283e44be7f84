"""The hpo driver killed mid-sweep (SIGKILL, with its embedded Ray): `--resume` finishes exactly n_trials,
does not re-run completed trials, and MLflow holds exactly one child run per trial."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
N, EPOCHS = 4, 6


def test_killed_driver_resumes_without_duplicates(home, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    args = ["--n_trials", str(N), "--epochs_per_trial", str(EPOCHS), "--preset", "debug", "--name", "t-resume",
            "--storage-path", str(tmp_path / "ray"), "--max-concurrent", "1", "--early_stop_patience", "0",
            "--set", "data.n_train=512", "--set", "train.val_batches=2"]
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "jobs/hpo.py", *args], cwd=REPO, env=env, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.time() + 400
        while time.time() < end and "1/4 done" not in log.read_text():
            assert p.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "1/4 done" in log.read_text(), log.read_text()[-3000:]
        time.sleep(3)  # let the second trial get going, then kill the driver and its local Ray hard
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    r = subprocess.run([sys.executable, "jobs/hpo.py", "--resume", "t-resume", "--storage-path",
                        str(tmp_path / "ray"), "--json-out", str(tmp_path / "s.json")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["n_trials"] == N
    # the summary's clock is the progress lines' (from the sweep's start), with this session's share
    assert summary["since_start_s"] > summary["wall_s"] and "s of it in this session" in r.stdout
    cl = MlflowClient(uri)
    exp = cl.get_experiment_by_name("riscov")
    children = cl.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{summary['parent_run_id']}'")
    assert len(children) == N and len({c.data.tags["trial_id"] for c in children}) == N
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)
    for c in children:  # no epoch logged twice: completed trials were not re-run, resumed ones continued
        steps = [m.step for m in cl.get_metric_history(c.info.run_id, "val/nmse_blend")]
        assert len(steps) == len(set(steps)), (c.data.tags["trial_id"], steps)
    parents = cl.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
