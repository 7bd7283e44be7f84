"""Every job: --help works; bad input gives one line on stderr and exit code 2, before any Ray work."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JOBS = ["train.py", "hpo.py", "prepare_data.py", "litmus.py", "overfit.py"]


def job(args, env_extra=None, timeout=120):
    env = {**os.environ, **(env_extra or {})}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)


def main_of(script):
    import importlib

    return importlib.import_module(script.removesuffix(".py")).main


@pytest.mark.parametrize("script", JOBS)
def test_help(script, capsys):
    with pytest.raises(SystemExit) as e:
        main_of(script)(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--family" in out and "usage:" in out


def test_rerun_help(capsys):
    with pytest.raises(SystemExit) as e:
        main_of("rerun.py")(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "RUN_ID" in out and "bit for bit" in out


def test_help_as_a_real_process():
    r = job(["jobs/hpo.py", "--help"])
    assert r.returncode == 0 and "--n_trials" in r.stdout


@pytest.mark.parametrize("args, fragment", [
    (["jobs/train.py", "--family", "nope"], "unknown family 'nope'"),
    (["jobs/hpo.py", "--family", "nope"], "unknown family 'nope'"),
    (["jobs/hpo.py", "--set", "loss.lam_cvo=1"], "unknown config key 'loss.lam_cvo'"),
    (["jobs/hpo.py", "--set", "loss.lam_cov=0"], "loss.lam_cov: 0.0 must be > 0"),
    (["jobs/train.py", "--family", "riscov", "--set", "loss.lam_cov=-1"], "loss.lam_cov: -1.0 must be > 0"),
    (["jobs/hpo.py", "--space", "tiny"], "no space named 'tiny'"),
    (["jobs/hpo.py", "--n_trials", "0"], "--n_trials must be >= 1"),
    (["jobs/train.py", "--family", "riscov", "--reset-optimizer"], "--reset-optimizer needs --resume CHECKPOINT"),
    (["jobs/train.py", "--family", "riscov", "--resume", "/nonexistent/ckpt"], "checkpoint /nonexistent/ckpt not found"),
    (["jobs/prepare_data.py", "--family", "riscov", "--corpus", "/nonexistent"], "--corpus /nonexistent: no such folder"),
    (["jobs/hpo.py", "--resume", "no-such-sweep", "--storage-path", "/tmp"], "no sweep named no-such-sweep"),
    (["jobs/train.py", "--family", "riscov", "--config", "/nonexistent.yaml"], "--config /nonexistent.yaml: cannot read"),
    (["jobs/train.py", "--family", "riscov", "--config", "pyproject.toml"], "--config pyproject.toml: "),
])
def test_bad_input_one_line_exit_2(args, fragment, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    rc = main_of(Path(args[0]).name)(args[1:])
    out, err = capsys.readouterr()
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "[ray]" not in out  # rejected before any Ray work


def test_malformed_space_file(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("family: riscov\nspaces: [")
    assert main_of("hpo.py")(["--space-file", str(bad)]) == 2
    assert "malformed YAML" in capsys.readouterr().err


def test_unreachable_tracking_server():
    r = job(["jobs/hpo.py", "--n_trials", "1"], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert r.returncode == 2
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in r.stderr and "Traceback" not in r.stderr


def test_list_keys(capsys):
    assert main_of("train.py")(["--family", "riscov", "--list-keys"]) == 0
    out = capsys.readouterr().out
    assert "loss.lam_cov = 1.0" in out and "train.beta_final = 0.3" in out


def test_litmus_and_overfit_pass_for_riscov(home, capsys):
    assert main_of("litmus.py")(["--family", "riscov"]) == 0
    out = capsys.readouterr().out
    assert "Step 5/5: beta=0.300" in out and "PASS" in out
    assert main_of("overfit.py")(["--family", "riscov"]) == 0
    assert "EXCELLENT: val/nmse_blend" in capsys.readouterr().out


def test_litmus_fails_when_the_network_gets_no_gradient(home, capsys):
    # a network that cannot learn (lr ~ 0) and no β ramp to hide behind: the litmus must fail
    rc = main_of("litmus.py")(["--family", "riscov", "--set", "train.beta_final=0.0", "--set", "optim.lr=1e-12"])
    assert rc == 1 and "FAIL" in capsys.readouterr().out
