"""Run a job (jobs/*.py) as a real subprocess and watch its process tree with psutil: the listening
sockets it opens, the Ray processes it starts. Shared by the socket and signal tests."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.", "::1", "::ffff:127.")


@dataclass
class Listener:
    ip: str
    port: int
    pid: int
    name: str

    @property
    def loopback(self) -> bool:
        return self.ip.startswith(LOOPBACK)


@dataclass
class Job:
    proc: subprocess.Popen
    log: Path
    listeners: dict[tuple[str, int], Listener] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)
    # every title each pid was seen under: Ray retitles a worker per task it runs, so the title at the
    # moment a socket is first seen (e.g. 'ray::execute.chdir_to_working_dir') need not name its actor
    titles: dict[int, set[str]] = field(default_factory=dict)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root] + root.children(recursive=True)
        except psutil.Error:
            return []

    def scan(self) -> None:
        """Record the tree's processes and every socket any of them listens on right now."""
        for p in self.tree():
            self.pids.add(p.pid)
            try:
                conns = p.net_connections(kind="inet")
                name = p.name()
            except psutil.Error:
                continue
            self.titles.setdefault(p.pid, set()).add(name)
            for c in conns:
                if c.status == psutil.CONN_LISTEN:
                    self.listeners.setdefault((c.laddr.ip, c.laddr.port), Listener(c.laddr.ip, c.laddr.port, p.pid, name))

    def listener_titles(self) -> set[str]:
        """Every title seen for any process that listened on a socket."""
        return {t for lst in self.listeners.values() for t in self.titles.get(lst.pid, {lst.name})}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float, every: float = 0.5) -> None:
        end = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"{text!r} never printed (rc={self.proc.poll()}):\n{self.output()[-3000:]}")
            self.scan()
            time.sleep(every)

    def finish(self, timeout: float, every: float = 0.5) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"job still running after {timeout:.0f}s:\n{self.output()[-3000:]}")
            self.scan()
            time.sleep(every)
        return self.proc.returncode

    def alive(self) -> list[str]:
        """Processes of this job (seen while it ran) that are still alive, as 'pid name'."""
        out = []
        for pid in sorted(self.pids - {self.proc.pid}):
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {p.name()}")
            except psutil.Error:
                pass
        return out


def start_job(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> Job:
    log = tmp / f"{Path(args[0]).stem}-{time.monotonic_ns()}.log"
    full = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full, stdout=f, stderr=subprocess.STDOUT)
    return Job(proc, log)
