"""Fault 5 (issue 6): an unwritable or full --storage-path / MLflow artifact location stops jobs/train.py and
jobs/hpo.py with one line and exit code 2 at start, before Ray or any training.

Read-only and full are real file systems, not mocks: a private mount namespace (``unshare``, no root
needed where user namespaces are allowed) gets a read-only tmpfs and a 2 MiB tmpfs filled to the last
byte. As root, ``chmod 0o500`` stops nothing, so the permission-bit variant runs only as a normal user.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpo  # jobs/hpo.py
import train  # jobs/train.py
from mlplatform.storage import StorageError, check_writable

REPO = Path(__file__).resolve().parents[1]
JOBS = {"train": (train.main, ["--family", "riscov", "--preset", "debug"]),
        "hpo": (hpo.main, ["--family", "riscov", "--preset", "debug", "--n_trials", "1"])}


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "[ray]" not in out  # stopped before Ray started
    return lines[0]


@pytest.mark.parametrize("job", sorted(JOBS))
def test_storage_path_under_a_regular_file(job, home, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    main, base = JOBS[job]
    assert main(base + ["--storage-path", str(blocker / "ray_results")]) == 2
    line = one_error_line(capsys)
    assert f"--storage-path {blocker / 'ray_results'} is not usable: a parent is a file, not a folder" in line
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.parametrize("job", sorted(JOBS))
def test_mlflow_artifact_folder_unwritable(job, tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlartifacts").write_text("a file where the artifact folder should be")
    monkeypatch.setenv("MLPLATFORM_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    main, base = JOBS[job]
    assert main(base + ["--storage-path", str(tmp_path / "ray")]) == 2
    assert f"MLflow artifact folder {home / 'mlartifacts'} is not usable" in one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the read-only mount test covers it")
def test_permission_bits_read_only_folder(home, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert train.main(JOBS["train"][1] + ["--storage-path", str(ro)]) == 2
        assert "is not usable: permission denied" in one_error_line(capsys)
    finally:
        ro.chmod(0o700)


# Runs inside `unshare --user --map-root-user --mount`: mounts, fills, calls both jobs' main(), prints JSON.
NAMESPACE_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, subprocess, sys
    ro, full, out = sys.argv[1], sys.argv[2], {}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4m", "tmpfs", ro], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", full], check=True)
    fill = os.path.join(full, "existing-checkpoint.bin")
    with open(fill, "wb", buffering=0) as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as e:
            out["fill_errno"] = e.errno
    out["size_before"] = os.path.getsize(fill)
    import hpo, train
    jobs = {"train": (train.main, ["--family", "riscov", "--preset", "debug"]),
            "hpo": (hpo.main, ["--family", "riscov", "--preset", "debug", "--n_trials", "1"])}
    cases = {"read_only": (ro, None), "full": (full, None), "full_enospc": (full, "0")}
    for case, (path, min_free) in cases.items():
        if min_free is None:
            os.environ.pop("MLPLATFORM_MIN_FREE_MB", None)
        else:
            os.environ["MLPLATFORM_MIN_FREE_MB"] = min_free  # no free-space bar: the write itself must fail
        for job, (main, base) in jobs.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as so:
                rc = main(base + ["--storage-path", path])
            out[f"{case}/{job}"] = {"rc": rc, "err": err.getvalue(), "ray": "[ray]" in so.getvalue()}
    out["full_listing"] = sorted(os.listdir(full))
    out["size_after"] = os.path.getsize(fill)
    print("RESULT " + json.dumps(out))
""")


def run_in_mount_namespace(tmp_path: Path, home: Path) -> dict:
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    ns = ["unshare", "--user", "--map-root-user", "--mount"]
    if subprocess.run(ns + ["mount", "-t", "tmpfs", "tmpfs", str(tmp_path)], capture_output=True).returncode:
        pytest.skip("this machine allows no private mount namespace (user namespaces disabled)")
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    env = {**os.environ, "MLPLATFORM_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO / "jobs"), os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run(ns + [sys.executable, "-c", NAMESPACE_SCRIPT, str(ro), str(full)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_read_only_and_full_file_systems_stop_both_jobs(home, tmp_path):
    res = run_in_mount_namespace(tmp_path, home)
    assert res["fill_errno"] == 28  # ENOSPC: the tmpfs really is full
    want = {"read_only": "is not usable: read-only file system",
            "full": "is not usable: the disk is full (0 MB free, need 100 MB",
            "full_enospc": "is not usable: no space left on device"}
    for case, fragment in want.items():
        for job in ("train", "hpo"):
            r = res[f"{case}/{job}"]
            lines = [ln for ln in r["err"].splitlines() if ln.strip()]
            assert r["rc"] == 2 and len(lines) == 1, (case, job, r)
            assert lines[0].startswith("error: --storage-path ") and fragment in lines[0], (case, job, lines)
            assert not r["ray"], (case, job)
    # the probe cleaned up after itself and the full disk's existing file is untouched
    assert res["full_listing"] == ["existing-checkpoint.bin"] and res["size_after"] == res["size_before"] > 0


def test_probe_accepts_a_writable_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "new" / "ray_results"
    assert check_writable(target, "--storage-path") == str(target)
    assert target.is_dir() and list(target.iterdir()) == []


def test_probe_of_a_uri_goes_through_pyarrow(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert check_writable(f"file://{tmp_path / 'ok'}", "--storage-path") == f"file://{tmp_path / 'ok'}"
    with pytest.raises(StorageError, match=r"--storage-path file://.* is not usable"):
        check_writable(f"file://{blocker}/sub", "--storage-path")


def test_existing_experiment_with_an_unwritable_artifact_location(tmp_path, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    home = tmp_path / "home"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the experiment's artifact folder should be")
    monkeypatch.setenv("MLPLATFORM_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home.mkdir()
    MlflowClient(f"sqlite:///{home / 'mlruns.db'}").create_experiment(
        "elsewhere", artifact_location=(blocker / "artifacts").as_uri())
    capsys.readouterr()  # MLflow's own log lines from creating the store above
    assert train.main(JOBS["train"][1] + ["--experiment", "elsewhere", "--storage-path", str(tmp_path / "ray")]) == 2
    line = one_error_line(capsys)
    assert f"artifact location of MLflow experiment 'elsewhere' {blocker / 'artifacts'} is not usable" in line
    assert "--experiment" in line
