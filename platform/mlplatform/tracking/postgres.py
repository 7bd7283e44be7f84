"""A throwaway local PostgreSQL (``initdb`` + ``pg_ctl``) as a process we own, for the tracking load
test and benchmark: an MLflow server on a real database without touching the machine's own clusters.

The data folder is a fresh temporary one; the server listens on 127.0.0.1 and a free port only (its Unix
socket in the data folder), with password (SCRAM) authentication and a random password. PostgreSQL
refuses to run as root, so under root the binaries run as the ``postgres`` system user (the Debian
package creates it). It is stopped by the postmaster's PID (fast shutdown), never by name.
A team's real server is the Debian service instead (``cluster.yaml``, docs/cluster.md).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from mlplatform.tracking.server import free_port


def bin_dir() -> Path | None:
    """Where ``initdb``/``pg_ctl`` are: on PATH, else the newest /usr/lib/postgresql/<v>/bin (Debian)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.sqlalchemy_uri("mlflow")`` -> a database that exists."""

    def __init__(self, user: str = "mlflow"):
        bins = bin_dir()
        if bins is None:
            raise FileNotFoundError("PostgreSQL is not installed (initdb not found); `make sysdeps` installs the "
                                    "Debian package 'postgresql'")
        self.bins, self.user = bins, user
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mlp-pg-"))
        self.data = self.dir / "data"
        self.pid: int | None = None
        # root: run as the package's system user, which must own the folder (and reach it: /tmp is 1777)
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "LocalPostgres":
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self.as_user:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in (self.dir, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run(str(self.bins / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.data}"
        self._run(str(self.bins / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.data / "server.log"),
                  "-w", "-t", "90", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._create_db(self.user)
        return self

    def _create_db(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                             dbname="postgres", autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')

    def sqlalchemy_uri(self) -> str:
        """The MLflow ``--backend-store-uri`` (SQLAlchemy with the psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.user}"

    def stop(self, grace: float = 60.0) -> None:
        """Fast shutdown (SIGINT to the postmaster, by PID), SIGKILL after ``grace``; then remove the folder."""
        pid, self.pid = self.pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
                end = time.monotonic() + grace
                while time.monotonic() < end and pid_alive(pid):
                    time.sleep(0.2)
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    """A process is there and not a zombie (in a container whose PID 1 reaps nothing, a stopped daemon can
    stay a zombie: it holds no port or file, so it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child counts as gone (pg_ctl's postmaster is not our child, but be safe)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
