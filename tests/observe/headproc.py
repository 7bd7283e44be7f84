"""A real `ray start --head` on 127.0.0.1 in its own temp dir, token auth on, stopped by the PIDs it
started: shared by tests/observe/test_observe.py and benchmarks/observe_screenshots.py.

Loopback: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's single-machine switch (``ray_constants
.ENABLE_RAY_CLUSTER``): the node IP becomes 127.0.0.1 and every Ray socket binds it (raycluster.py says
why); without it a `ray start --node-ip-address 127.0.0.1` on this machine still listed its metrics
targets on the machine's address. Every port is a free one so a second Ray on the host (another test,
another engineer's run) cannot collide, DASHBOARD_METRIC_PORT included (Ray's default is a fixed 44227).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Head:
    temp: Path  # Ray's --temp-dir (short: Ray's socket paths must stay under 108 bytes)
    env: dict[str, str]  # what a client of this head (ray job, jobs/*.py) runs with
    gcs_port: int = field(default_factory=free_port)
    dash_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    seen: set[int] = field(default_factory=set)  # every PID of the head's tree we have seen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dash_port}"

    @property
    def token(self) -> str:
        return Path(self.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()

    def start(self, extra_env: dict[str, str] | None = None) -> "Head":
        self.env.update(extra_env or {})
        cmd = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dash_port),
               "--ray-client-server-port", str(free_port()), "--metrics-export-port", str(free_port()),
               "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
               "--runtime-env-agent-port", str(free_port()), "--num-cpus", "2", "--include-dashboard", "true",
               "--temp-dir", str(self.temp), "--disable-usage-stats"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=open(self.temp / "ray.log", "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return (self.temp / "ray.log").read_text(errors="replace")[-3000:]

    def remember(self) -> None:
        """Record the head's process tree (gcs_server, raylet, dashboard, agents, workers) by PID."""
        try:
            root = psutil.Process(self.proc.pid)
            self.seen.update([root.pid] + [p.pid for p in root.children(recursive=True)])
        except psutil.Error:
            pass

    def stop(self, grace_s: float = 8.0) -> None:
        """SIGTERM every process of the head's tree we have seen, SIGKILL what is left after ``grace_s``.
        Never `ray stop`: that stops every Ray on the machine, other people's included."""
        if self.proc is None:
            return
        self.remember()
        procs = []
        for pid in self.seen:
            try:
                p = psutil.Process(pid)
                p.send_signal(signal.SIGTERM)
                procs.append(p)
            except psutil.Error:
                pass
        _, left = psutil.wait_procs(procs, timeout=grace_s)
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=5)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def new_head(base_env: dict[str, str] | None = None) -> Head:
    """A head in a fresh short temp dir with its own token file; not started yet."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    token = temp / "ray_token"  # `ray start` needs the token to exist; clients read the same file
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**(base_env or os.environ), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "DASHBOARD_METRIC_PORT": str(free_port()),
           # core workers hand their metrics to the node's agent every 10 s by default: a short test run's
           # gauges would be gone before the first hand-over
           "RAY_metrics_report_interval_ms": "1000", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    env.pop("RAY_ADDRESS", None)
    return Head(temp, env)


def wait_for(predicate, timeout_s: float, what: str, head: Head, every: float = 0.5):
    """Poll ``predicate()`` until it returns something truthy (returned); fail with the head's log."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if head.proc is not None and head.proc.poll() is not None:
            raise RuntimeError(f"ray start exited ({head.proc.returncode}) while waiting for {what}:\n{head.log()}")
        head.remember()
        got = predicate()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout_s:g}s")
