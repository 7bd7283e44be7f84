#!/usr/bin/env python
"""Redo docs/img/observe_*.png: a real Ray head (loopback, token auth) started with RAY_PROMETHEUS_HOST set,
Prometheus through jobs/observe.py's module, a 2-worker riscov debug run, then headless Chromium captures
Prometheus's graph of the platform's gauges and the Ray dashboard's Metrics tab. Prints one scraped series
per metric (the exact exported names and labels for docs/observability.md). Everything is stopped by PID.

  .venv/bin/python benchmarks/observe_screenshots.py [--out docs/img] [--epochs 6]

Chromium is driven over its DevTools protocol (aiohttp's websocket client, no extra package) so the
dashboard's token can be handed over as the cookie the dashboard's own login sets
(``ray-authentication-token``); token auth stays on. Chromium's debugging port is bound to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "observe"))
from headproc import free_port, new_head, wait_for  # noqa: E402

from mlplatform.observe import gauges  # noqa: E402
from mlplatform.observe import prometheus as prom  # noqa: E402

SIZE = (1400, 900)
SERIES = [gauges.exported_name(n) for n in gauges.GAUGES if n != "trials"] + [
    "ray_node_cpu_utilization", "ray_node_mem_used", "ray_node_gpus_utilization", "ray_node_gram_used"]


class Cdp:
    """The smallest DevTools client: one command at a time, events ignored."""

    def __init__(self, ws) -> None:
        self.ws, self.n = ws, 0

    async def __call__(self, method: str, **params) -> dict:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})


async def shoot(chromium: str, shots: list[tuple[str, Path, float]], cookie: tuple[str, str, str] | None) -> None:
    """Each (url, png, seconds to let the page render) in one headless Chromium; ``cookie`` = (name, value, url)."""
    import aiohttp

    port, profile = free_port(), tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}",
                             f"--user-data-dir={profile}", f"--window-size={SIZE[0]},{SIZE[1]}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        async with aiohttp.ClientSession() as http:
            pages: list = []
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [p for p in await r.json() if p.get("type") == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = Cdp(ws)
                await cdp("Emulation.setDeviceMetricsOverride", width=SIZE[0], height=SIZE[1], deviceScaleFactor=1,
                          mobile=False)
                if cookie:
                    await cdp("Network.setCookie", name=cookie[0], value=cookie[1], url=cookie[2], httpOnly=True)
                for url, out, wait_s in shots:
                    await cdp("Page.navigate", url=url)
                    await asyncio.sleep(wait_s)
                    png = base64.b64decode((await cdp("Page.captureScreenshot", format="png"))["data"])
                    out.write_bytes(png)
                    print(f"[shots] {out} ({len(png) // 1024} KB) <- {url}", flush=True)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def graph_url(base: str, expr: str) -> str:
    from urllib.parse import quote

    return f"{base}/graph?g0.expr={quote(expr)}&g0.tab=0&g0.stacked=0&g0.show_exemplars=0&g0.range_input=2m"


def dashboard_health(head) -> None:
    """What the Ray dashboard says about the Prometheus and Grafana it was pointed at (its Metrics tab
    shows charts only when both answer)."""
    import urllib.error
    import urllib.request

    for what in ("prometheus_health", "grafana_health"):
        req = urllib.request.Request(f"{head.dashboard_url}/api/{what}",
                                     headers={"Authorization": f"Bearer {head.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            body = f"HTTP {e.code} {e.read().decode(errors='replace')}"
        print(f"[dashboard] /api/{what}: {body[:300]}", flush=True)


def run(args: argparse.Namespace, work: Path) -> None:
    head = new_head()
    pport = free_port()
    url = f"http://127.0.0.1:{pport}"
    state_dir = work / "observe"
    train = None
    try:
        head.start({"RAY_PROMETHEUS_HOST": url})  # the dashboard reads it when it starts: set before `ray start`
        wait_for(lambda: prom.discovery_file(head.temp).exists() and prom.check_ray_running(head.temp), 90,
                 "Ray's service-discovery file", head)
        st = prom.start(state_dir, head.temp, port=pport, scrape_interval_s=1.0)
        print(f"[shots] Ray {head.dashboard_url}, Prometheus {st.url} (pid {st.pid})", flush=True)
        env = {**head.env, "RAY_ADDRESS": head.address, "MLPLATFORM_HOME": str(work / "home"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns.db'}"}
        t0 = time.monotonic()
        train = subprocess.run([sys.executable, str(REPO / "jobs" / "train.py"), "--family", "riscov", "--preset",
                                "debug", "--num-workers", "2", "--set", f"train.epochs={args.epochs}",
                                "--storage-path", str(work / "ray_results")], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=600)
        print(f"[shots] training rc={train.returncode} in {time.monotonic() - t0:.1f}s", flush=True)
        time.sleep(3)  # the last hand-over and scrape
        for name in SERIES:
            got = prom.query(st.url, f"last_over_time({name}[10m])")
            print(f"[series] {name}: {len(got)} series" + (f", e.g. {json.dumps(got[0]['metric'])}" if got else ""))
        dashboard_health(head)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        asyncio.run(shoot(args.chromium, [
            (graph_url(st.url, f"sum by (family, run, rank) ({gauges.exported_name('steps_per_s')})"),
             out / "observe_prometheus_steps_per_s.png", 6),
            (graph_url(st.url, f"sum by (family, run, rank) ({gauges.exported_name('data_wait_frac')})"),
             out / "observe_prometheus_data_wait_frac.png", 6),
            (graph_url(st.url, "ray_node_cpu_utilization"), out / "observe_prometheus_node_cpu.png", 6),
            (f"{head.dashboard_url}/#/metrics", out / "observe_ray_dashboard_metrics.png", 10),
        ], ("ray-authentication-token", head.token, head.dashboard_url)))
    finally:
        prom.stop(state_dir)
        head.stop()
        shutil.rmtree(head.temp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "docs" / "img"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="observe-shots-") as work:
        run(args, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
