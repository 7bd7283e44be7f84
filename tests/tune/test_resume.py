"""The hpo driver killed mid-sweep (SIGKILL, with its embedded Ray): `--resume` finishes exactly n_trials,
does not re-run completed trials, and MLflow holds exactly one child run per trial. The kill lands while
trial 2 has logged its first epoch and not yet reported its checkpoint (a fault drill holds it there): the
resumed trial re-runs that epoch and must not log it twice. Every trial's MLflow history equals the one
the same trial has in an uninterrupted sweep, step for step (issue 16), and the stored Optuna study was
continued: one trial per sweep trial, each ended as its MLflow run says (issue 18). The newest snapshot is
cut in half before the resume, as a kill during Tune's copy of it leaves it: the resume uses the copy
before it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from metric_history import assert_same_history, history  # tests/metric_history.py

REPO = Path(__file__).resolve().parents[2]
N, EPOCHS = 3, 4


def children(cl: MlflowClient, exp_id: str, parent: str) -> list:
    return cl.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def wait_for(p: subprocess.Popen, log: Path, ready, what: str, timeout: float = 400) -> None:
    end = time.time() + timeout
    while time.time() < end and not ready():
        assert p.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    assert ready(), f"{what} did not happen: " + log.read_text()[-3000:]


def test_killed_driver_resumes_without_duplicates(home, tmp_path, check_study):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    # a Tune snapshot every second: the kill below lands after one that holds trial 2 as running
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLPLATFORM_OPTUNA_STORAGE", None)
    marker = tmp_path / "pause"
    marker.write_text("")  # disarmed: the pause drill fires only where its marker is absent
    # grace period = epochs: ASHA stops nothing, so both sweeps run the same epochs of every trial
    args = ["--n_trials", str(N), "--epochs_per_trial", str(EPOCHS), "--preset", "debug",
            "--storage-path", str(tmp_path / "ray"), "--max-concurrent", "1", "--early_stop_patience", "0",
            "--grace-period", str(EPOCHS), "--set", "data.n_train=512", "--set", "train.val_batches=2",
            "--set", "train.inject_pause_after_log_epoch=1", "--set", f"train.inject_crash_marker={marker}"]
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "jobs/hpo.py", *args, "--name", "t-resume"], cwd=REPO, env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(p, log, lambda: f"1/{N} done" in log.read_text(), "trial 1's end")
        marker.unlink()  # arm: trial 2 holds after logging epoch 1, before reporting its checkpoint
        wait_for(p, log, lambda: marker.exists() and marker.read_text().strip(), "the drill's pause")
        time.sleep(3)
    finally:  # the driver and its local Ray, hard
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    # a kill during Tune's copy of its snapshot to storage leaves the file cut off (seen in CI: the experiment
    # state cut at 262,144 of 364,358 bytes, and Tune then restarts the sweep without its search space). Cut
    # it here: the resume must come from the whole copy the sweep keeps beside it (mlplatform.tune.snapshot)
    sweep_dir = tmp_path / "ray" / "t-resume"
    assert (sweep_dir / "mlplatform_snapshot.zip").is_file()
    state = max(sweep_dir.glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    r = subprocess.run([sys.executable, "jobs/hpo.py", "--resume", "t-resume", "--storage-path",
                        str(tmp_path / "ray"), "--json-out", str(tmp_path / "s.json")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # trial 2 was in the snapshot, so it was re-run from its start (not replaced), and its logger skipped
    # the epoch it had logged before the kill
    assert "already holds step 1" in r.stdout + r.stderr, r.stdout[-3000:]
    assert "resuming from the snapshot before it" in r.stdout, r.stdout[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["n_trials"] == N
    # the summary's clock is the progress lines' (from the sweep's start), with this session's share
    assert summary["since_start_s"] > summary["wall_s"] and "s of it in this session" in r.stdout
    cl = MlflowClient(uri)
    exp = cl.get_experiment_by_name("riscov")
    runs = children(cl, exp.experiment_id, summary["parent_run_id"])
    assert len(runs) == N and len({c.data.tags["trial_id"] for c in runs}) == N
    assert all(c.info.status in ("FINISHED", "KILLED") for c in runs)
    assert not cl.search_runs([exp.experiment_id], run_view_type=ViewType.DELETED_ONLY)  # no trial replaced
    parents = cl.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # the study beside the MLflow store, continued: superseded trials (asked after Tune's last snapshot) aside,
    # exactly one finished Optuna trial per sweep trial, matching its run (states, values, per-epoch values)
    trials = check_study(f"sqlite:///{tmp_path / 'optuna.db'}", "t-resume", uri, summary["parent_run_id"])
    assert len(trials) == N and len({t.user_attrs["tune_trial_id"] for t in trials}) == N
    assert all(t.state.is_finished() for t in optuna.load_study(study_name="t-resume",
                                                                  storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials)

    # the same sweep uninterrupted (drill disarmed: same resolved configs), up to the trial that was held
    r = subprocess.run([sys.executable, "jobs/hpo.py", *args, "--name", "t-reference", "--n_trials", "2",
                        "--json-out", str(tmp_path / "ref.json")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ref = children(cl, exp.experiment_id, json.loads((tmp_path / "ref.json").read_text())["parent_run_id"])
    assert len(ref) == 2
    for want in ref:  # the same sampled config: the same trial
        got = [c for c in runs if c.data.params == want.data.params]
        assert len(got) == 1, want.data.params
        assert_same_history(history(uri, got[0].info.run_id), history(uri, want.info.run_id),
                            got[0].data.tags["trial_id"])
