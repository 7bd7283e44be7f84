"""Start and stop a local ``mlflow server`` as a process we own (tests, fault drills, docs screenshots).

The server binds 127.0.0.1 only, runs in its own session so it can be stopped by its PID's process
group (never by name: other MLflow servers on the machine are not ours), and can be restarted on the
same port and store, which is what the "tracking server outage" drill needs.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process group of a process we started with ``start_new_session=True`` (by its PID),
    then SIGKILL what is left: nothing else on the machine is touched."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


class MlflowServer:
    """``mlflow server`` on 127.0.0.1:<port> over a sqlite store in ``store_dir`` (or ``backend_uri``, e.g.
    PostgreSQL), artifacts proxied through the server into ``store_dir``."""

    def __init__(self, store_dir: str | Path, port: int | None = None, workers: int = 1,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 backend_uri: str | None = None):
        self.backend_uri = backend_uri
        self.extra_args = list(extra_args or [])
        self.env = env
        self.dir = Path(store_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> "MlflowServer":
        exe = Path(sys.executable).parent / "mlflow"
        cmd = [str(exe), "server", "--backend-store-uri", self.backend_uri or f"sqlite:///{self.dir / 'mlflow.db'}",
               "--artifacts-destination", str(self.dir / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), *self.extra_args]
        env = {**os.environ, **self.env} if self.env else None
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited early:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=3) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow server on {self.url} not healthy after {timeout:.0f}s; see {self.log}")

    def stop(self, grace: float = 30.0) -> None:
        """Stop the server (see :func:`stop_group`); ``start()`` may run it again on the same port."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, grace)

    def __enter__(self) -> "MlflowServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
