"""`make optuna-ui` (jobs/optuna_ui.py): optuna-dashboard serves the stored studies on 127.0.0.1, found as a
sweep finds its store; a missing store is a one-line error."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna

import optuna_ui  # jobs/optuna_ui.py

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dashboard_serves_the_study_on_loopback(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="riscov-ui", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db",
           "PYTHONPATH": str(REPO / "platform")}
    env.pop("MLPLATFORM_OPTUNA_STORAGE", None)  # found beside the tracking store, as a sweep puts it
    p = subprocess.Popen([sys.executable, "jobs/optuna_ui.py", "--port", str(port)], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body, end = None, time.time() + 240  # two Python start-ups; minutes on a loaded 2-core machine
        while body is None and time.time() < end:
            assert p.poll() is None, p.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "optuna-dashboard did not answer on 127.0.0.1"
        assert [s["study_name"] for s in body["study_summaries"]] == ["riscov-ui"]
        sid = body["study_summaries"][0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}", timeout=10) as r:
            assert len(json.loads(r.read())["trials"]) == 3
        listening = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening, listening
    finally:
        p.terminate()  # by its PID: the job execs the dashboard in its own process
        p.wait(timeout=30)


def test_no_store_yet_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLPLATFORM_OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    assert optuna_ui.main(["--port", "1"]) == 2
    assert f"no Optuna store at sqlite:///{tmp_path}/optuna.db yet" in capsys.readouterr().err
