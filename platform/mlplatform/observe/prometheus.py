"""Prometheus as a real process on 127.0.0.1, scraping the targets Ray lists for it (docs/observability.md).

Ray's dashboard head keeps a file-based service-discovery file (``prom_metrics_service_discovery.json``,
the name is ``ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE``) with every live node's metrics-export
address, the autoscaler's and the dashboard's. Ray 2.60 writes it into the session folder and keeps a
symlink to it at ``<ray temp dir>/prom_metrics_service_discovery.json`` (``metrics_agent.py``,
``PrometheusServiceDiscoveryWriter.write``). We scrape the symlink: a Ray restarted later (a new session
folder) is picked up without restarting Prometheus. The config is ours, not the one Ray generates under
``<session>/metrics/prometheus/prometheus.yml``, only so the scrape interval can be chosen (a test wants 1 s);
the scrape job is the same (``job_name: ray``), so Ray's generated Grafana dashboards match it.

State (PID, port, paths) lives in ``<state dir>/state.json``; ``stop`` signals that PID only, after
checking that the process is still the Prometheus we started (a PID can be reused).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.config import ConfigError

DEFAULT_PORT = 9090  # Ray's dashboard queries http://localhost:9090 when RAY_PROMETHEUS_HOST is unset
STATE_FILE = "state.json"
GRAFANA_BINARIES = ("grafana", "grafana-server")


class ObserveError(ConfigError):
    """Bad input or a missing component: one line, exit 2 (``cli.one_line_errors``)."""


@dataclass
class State:
    pid: int
    port: int
    config: str
    data_dir: str
    log: str
    discovery_file: str
    scrape_interval_s: float
    started_at: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ray_temp_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Ray's temp root (``ray start --temp-dir``), found the way Ray finds it when not given."""
    if explicit:
        return Path(explicit)
    from ray._common.utils import get_default_ray_temp_dir

    return Path(get_default_ray_temp_dir())


def discovery_file(temp_dir: Path) -> Path:
    """The service-discovery symlink Ray keeps in its temp root (see the module docstring)."""
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    return temp_dir / PROMETHEUS_SERVICE_DISCOVERY_FILE


def ray_targets(sd_file: Path) -> list[str]:
    """The ``host:port`` targets Ray lists in its service-discovery file."""
    try:
        groups = json.loads(sd_file.read_text())
    except (OSError, ValueError) as e:
        raise ObserveError(f"cannot read Ray's service-discovery file {sd_file}: {e}") from e
    return [t for g in groups for t in g.get("targets", [])]


def _answers(target: str, timeout: float = 1.0) -> bool:
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_ray_running(temp_dir: Path) -> list[str]:
    """The live metrics targets of the Ray under ``temp_dir``; ObserveError when there is none."""
    sd = discovery_file(temp_dir)
    if not sd.exists():
        raise ObserveError(f"no running Ray under {temp_dir} ({sd.name} not found): start Ray first "
                           "(ray start --head ...), pass --ray-temp-dir, or --before-ray to start Prometheus now")
    targets = ray_targets(sd)
    live = [t for t in targets if _answers(t)]
    if not live:
        raise ObserveError(f"Ray under {temp_dir} is not running: none of its metrics targets "
                           f"{', '.join(targets) or '(none listed)'} answers; start Ray first, or pass --before-ray")
    return live


def render_config(sd_file: Path, scrape_interval_s: float) -> str:
    """prometheus.yml: Ray's one scrape job over its service-discovery file. Paths are JSON-quoted (valid
    YAML whatever they contain)."""
    every = f"{scrape_interval_s:g}s"
    return (f"# written by jobs/observe.py (mlplatform.observe.prometheus); Ray's own template is\n"
            f"# ray/dashboard/modules/metrics/templates.py PROMETHEUS_YML_TEMPLATE\n"
            f"global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n"
            f"  scrape_timeout: {every if scrape_interval_s < 10 else '10s'}\n"
            f"scrape_configs:\n- job_name: 'ray'\n  file_sd_configs:\n  - files:\n    - {json.dumps(str(sd_file))}\n"
            f"    refresh_interval: 30s\n")


def load_state(state_dir: Path) -> State | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return State(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise ObserveError(f"{path} is unreadable ({e}); remove it and stop Prometheus by hand") from e


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie child of this process is reaped, not counted)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child: the normal case, started by an earlier command
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(state: State) -> bool:
    """The PID still runs the Prometheus we started (its command line names our config file)."""
    cmd = _cmdline(state.pid)
    return bool(cmd) and alive(state.pid) and any(a.endswith(f"--config.file={state.config}") for a in cmd)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(port: int | None) -> int:
    """``port`` when given (it must be free); else 9090 when free (Ray's default needs no variable), else any."""
    if port is not None:
        if not port_free(port):
            raise ObserveError(f"port {port} on 127.0.0.1 is in use: pass another --port, or none for a free one")
        return port
    if port_free(DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(explicit: str | None = None) -> str:
    exe = explicit or shutil.which("prometheus")
    if not exe or not os.access(exe, os.X_OK):
        which = f"binary {explicit!r} " if explicit else ""
        raise ObserveError(f"prometheus {which}not found: `make sysdeps` "
                           "installs Debian's package (apt-get install prometheus), or pass --prometheus PATH")
    return exe


def start(state_dir: Path, temp_dir: Path, *, port: int | None = None, scrape_interval_s: float = 10.0,
          binary: str | None = None, check_ray: bool = True, timeout_s: float = 60.0) -> State:
    """Start Prometheus on 127.0.0.1 scraping the Ray under ``temp_dir``; return its recorded state."""
    exe = find_binary(binary)
    old = load_state(state_dir)
    if old is not None and is_ours(old):
        raise ObserveError(f"Prometheus already runs on {old.url} (pid {old.pid}): `jobs/observe.py stop` first")
    sd = discovery_file(temp_dir)
    if check_ray:
        check_ray_running(temp_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    chosen = pick_port(port)
    config, data, log = state_dir / "prometheus.yml", state_dir / "prometheus-data", state_dir / "prometheus.log"
    config.write_text(render_config(sd, scrape_interval_s))
    cmd = [exe, f"--config.file={config}", f"--storage.tsdb.path={data}",
           f"--web.listen-address=127.0.0.1:{chosen}"]  # loopback only; no admin or lifecycle API either
    with open(log, "ab") as out:
        # its own session: it outlives this command, and a Ctrl-C in the shell that ran us does not reach it
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=state_dir)
    state = State(proc.pid, chosen, str(config), str(data), str(log), str(sd), scrape_interval_s)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
    try:
        wait_ready(state, timeout_s)
    except ObserveError:
        stop(state_dir)
        raise
    return state


def wait_ready(state: State, timeout_s: float) -> None:
    """Until ``/-/ready`` answers 200; ObserveError with the log's last line if the process dies first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not alive(state.pid):
            tail = Path(state.log).read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
            raise ObserveError(f"prometheus exited at start ({state.log}): {tail[0][:300]}")
        try:
            with urllib.request.urlopen(f"{state.url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise ObserveError(f"prometheus did not become ready on {state.url} in {timeout_s:g}s (log: {state.log})")


def stop(state_dir: Path, grace_s: float = 15.0) -> State | None:
    """SIGTERM the recorded PID (SIGKILL after ``grace_s``) if it is still our Prometheus; forget the state.
    Returns the state that was stopped, None when nothing was recorded or it had already ended."""
    state = load_state(state_dir)
    if state is None:
        return None
    ours = is_ours(state)
    if ours:
        os.kill(state.pid, signal.SIGTERM)  # Prometheus flushes its head block on SIGTERM
        end = time.monotonic() + grace_s
        while alive(state.pid) and time.monotonic() < end:
            time.sleep(0.2)
        if alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return state if ours else None


def query(url: str, expr: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """An instant query over Prometheus's HTTP API: the ``result`` list (``metric`` labels, ``value``)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise ObserveError(f"prometheus refused {expr!r}: {e.read().decode(errors='replace')[:300]}") from e
    except OSError as e:
        raise ObserveError(f"prometheus at {url} does not answer: {e}") from e
    if body.get("status") != "success":
        raise ObserveError(f"prometheus query {expr!r} failed: {body.get('error', body)}")
    return body["data"]["result"]


def grafana_url(candidate: str = "http://127.0.0.1:3000") -> str | None:
    """``candidate`` when a Grafana answers its health check there, else None (none is installed here:
    docs/observability.md, "Grafana")."""
    try:
        with urllib.request.urlopen(f"{candidate}/api/health", timeout=2) as r:
            return candidate if r.status == 200 and json.loads(r.read()).get("database") == "ok" else None
    except (OSError, ValueError):
        return None


def grafana_binary() -> str | None:
    return next((p for p in map(shutil.which, GRAFANA_BINARIES) if p), None)


def version(binary: str) -> str:
    """``prometheus --version``'s first line (for the status line), '' when it cannot be read."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return ""
