"""Issue 26 on CPU, for real: `ray start --head` (token auth on, loopback only), `jobs/observe.py start`
(a real Prometheus on 127.0.0.1 scraping that Ray's service-discovery file), a 2-worker TorchTrainer run
of riscov's debug preset, then Prometheus's HTTP API must return the platform's gauges per rank and Ray's
node CPU/memory series, and no GPU series (no GPU here). Everything is stopped by the PIDs it started."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from headproc import BIN, free_port, new_head, wait_for  # noqa: E402

from mlplatform.observe import gauges
from mlplatform.observe import prometheus as prom

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
GAUGE_NAMES = [gauges.exported_name(n) for n in ("steps_per_s", "data_wait_frac", "epoch", "selection_metric")]
NODE_SERIES = ["ray_node_cpu_utilization", "ray_node_mem_used"]
GPU_SERIES = ["ray_node_gpus_utilization", "ray_node_gram_used", "ray_component_gpu_percentage"]


def observe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / "observe.py"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def seen(url: str, name: str) -> list[dict]:
    """Every series of ``name`` scraped in the last 10 minutes: a gauge of a worker that has ended is
    stale now, but its samples are still in the range."""
    return prom.query(url, f"last_over_time({name}[10m])")


def all_seen(url: str, names: list[str]) -> dict[str, list[dict]] | None:
    got = {n: seen(url, n) for n in names}
    return got if all(got.values()) else None


def test_observe_cli_errors_are_one_line(tmp_path, capsys):
    from observe import main  # jobs/observe.py (tests/conftest.py puts jobs/ on the path)

    st = ["--state-dir", str(tmp_path / "st")]
    assert main(["start", "--ray-temp-dir", str(tmp_path / "no-ray"), *st]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no running Ray" in err, err
    assert main(["start", "--prometheus", str(tmp_path / "nope"), *st]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make sysdeps" in err, err
    assert main(["status", *st]) == 1 and "not running" in capsys.readouterr().out
    assert main(["stop", *st]) == 0 and "nothing to stop" in capsys.readouterr().out


def test_gauges_never_raise_into_training(monkeypatch):
    """Whether or not this process has Ray up, a gauge call with garbage returns quietly."""
    monkeypatch.setattr(gauges, "_broken", False)  # restored afterwards: a failure turns the module off
    gauges.record_epoch(object(), {"sys/epoch_time_s": 0.0}, epoch=1, steps=3)  # type: ignore[arg-type]
    gauges.record_trial_counts({"running": "many"}, "sweep")  # type: ignore[dict-item]
    assert gauges.exported_name("steps_per_s") == "ray_mlplatform_steps_per_s"


def test_sweep_progress_exports_trial_counts_by_state(monkeypatch):
    from types import SimpleNamespace

    from mlplatform.tune.callbacks import SweepProgress
    from mlplatform.tune.outcomes import OUTCOMES

    calls: list[tuple[dict, str]] = []
    monkeypatch.setattr(gauges, "record_trial_counts", lambda counts, sweep: calls.append((dict(counts), sweep)))
    p = SweepProgress("val/nmse_blend", "min", n_trials=3, max_concurrent=2)
    a = SimpleNamespace(trial_id="a", status="RUNNING", last_result=None, experiment_dir_name="riscov-sweep")
    b = SimpleNamespace(trial_id="b", status="RUNNING", last_result=None, experiment_dir_name="riscov-sweep")
    p.on_trial_start(0, [a, b], a)
    p.on_trial_start(0, [a, b], b)
    a.last_result, a.status = {"stop_reason": "completed", "epoch": 2}, "TERMINATED"
    p.on_trial_complete(1, [a, b], a)
    counts, sweep = calls[-1]
    assert sweep == "riscov-sweep" and set(counts) == set(OUTCOMES)
    assert counts["completed"] == 1 and counts["running"] == 1 and sum(counts.values()) == 2


def test_grafana_dashboard_covers_every_gauge_and_rays_series():
    """The shipped dashboard is Grafana JSON with a Prometheus datasource variable, a panel per platform
    gauge, and only Ray series that Ray 2.x really exports (names read from Ray's reporter agent)."""
    import importlib.util
    import json

    dash = json.loads((REPO / "docs" / "grafana" / "mlplatform.json").read_text())
    assert isinstance(dash["schemaVersion"], int) and dash["uid"] and dash["title"]
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in dash["templating"]["list"])
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] and p["gridPos"] for p in panels)
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for name in gauges.GAUGES:
        assert gauges.exported_name(name) in exprs, name
    reporter = Path(importlib.util.find_spec("ray.dashboard.modules.reporter.reporter_agent").origin).read_text()
    ray_series = set(re.findall(r"\bray_((?:node|component)_\w+)", exprs))
    assert {"node_gpus_utilization", "node_gram_used", "node_cpu_utilization", "node_mem_used"} <= ray_series
    for name in ray_series:
        assert f'"{name}": Gauge(' in reporter, name


def test_prometheus_scrapes_gauges_of_a_two_worker_run(tmp_path, home, mlflow_uri):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed: `make sysdeps` installs Debian's package "
                    "(apt-get install prometheus)")
    t0 = time.monotonic()
    head = new_head()
    state_dir = tmp_path / "observe"
    env = {**head.env, "MLPLATFORM_HOME": str(home), "MLFLOW_TRACKING_URI": mlflow_uri}  # sqlite:///<tmp>/mlruns.db
    train = None
    try:
        head.start()
        wait_for(lambda: prom.discovery_file(head.temp).exists() and prom.check_ray_running(head.temp),
                 90, "Ray's service-discovery file with a live target", head)
        t_ray = time.monotonic() - t0
        r = observe("start", "--ray-temp-dir", str(head.temp), "--state-dir", str(state_dir), "--port",
                    str(free_port()), "--scrape-interval", "1", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        url = re.search(r"^export RAY_PROMETHEUS_HOST=(http://127\.0\.0\.1:\d+)$", r.stdout, re.M).group(1)
        state = prom.load_state(state_dir)
        assert state is not None and state.url == url and prom.is_ours(state)
        listening = [c.laddr for c in psutil.Process(state.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
        targets = prom.ray_targets(prom.discovery_file(head.temp))
        assert targets and all(t.startswith("127.0.0.1:") for t in targets), targets

        train = subprocess.Popen(
            [sys.executable, str(REPO / "jobs" / "train.py"), "--family", "riscov", "--preset", "debug",
             "--num-workers", "2", "--set", "train.epochs=3", "--storage-path", str(tmp_path / "ray_results")],
            env={**env, "RAY_ADDRESS": head.address}, cwd=REPO, stdout=open(tmp_path / "train.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        t_train = time.monotonic()
        assert train.wait(300) == 0, (tmp_path / "train.log").read_text()[-3000:]
        t_train = time.monotonic() - t_train

        # the last samples reach Prometheus within a hand-over (1 s here) plus a scrape (1 s)
        found = wait_for(lambda: all_seen(url, GAUGE_NAMES + NODE_SERIES), 30, "the gauges in Prometheus", head)
        steps = found[gauges.exported_name("steps_per_s")]
        assert {s["metric"]["rank"] for s in steps} == {"0", "1"}, steps
        assert all(s["metric"]["family"] == "riscov" and s["metric"]["run"] for s in steps), steps
        assert all(float(s["value"][1]) > 0 for s in steps)
        epochs = {s["metric"]["rank"]: float(s["value"][1]) for s in found[gauges.exported_name("epoch")]}
        assert epochs == {"0": 3.0, "1": 3.0}, epochs
        frac = [float(s["value"][1]) for s in found[gauges.exported_name("data_wait_frac")]]
        assert all(0.0 <= f <= 1.0 for f in frac), frac
        sel = found[gauges.exported_name("selection_metric")]
        assert {s["metric"]["metric"] for s in sel} == {"val/nmse_blend"}, sel
        assert all(s["metric"]["instance"].startswith("127.0.0.1:") for s in found["ray_node_cpu_utilization"])
        for name in GPU_SERIES:  # no GPU on this machine: Ray exports no GPU series at all
            assert seen(url, name) == [], name

        st = observe("status", "--state-dir", str(state_dir), env=env)
        assert st.returncode == 0 and " up" in st.stdout, st.stdout + st.stderr
        print(f"\n[observe test] ray up {t_ray:.1f}s, training {t_train:.1f}s, "
              f"checks done at {time.monotonic() - t0:.1f}s")
    finally:
        t_stop = time.monotonic()
        if train is not None and train.poll() is None:
            train.kill()
        stopped = observe("stop", "--state-dir", str(state_dir), env=env)
        leftover = prom.load_state(state_dir)  # the CLI failed: stop our Prometheus by its PID here
        if leftover is not None and prom.is_ours(leftover):
            prom.stop(state_dir)
        head.stop()
        shutil.rmtree(head.temp, ignore_errors=True)
        print(f"[observe test] stopped in {time.monotonic() - t_stop:.1f}s, total {time.monotonic() - t0:.1f}s")
    assert stopped.returncode == 0 and "stopped Prometheus pid" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not prom.alive(state.pid)
