"""Take the MLflow UI screenshots of docs/mlflow_ui.md from a real sweep, with headless Chromium.

  MLPLATFORM_HOME=/tmp/ui .venv/bin/python jobs/hpo.py --n_trials 4 --epochs_per_trial 3 --name ui-demo
  .venv/bin/mlflow server --backend-store-uri sqlite:////tmp/ui/mlruns.db \\
      --default-artifact-root /tmp/ui/mlartifacts --host 127.0.0.1 --port 5077 --workers 1 &
  .venv/bin/python docs/img/screenshots.py --url http://127.0.0.1:5077 --sweep ui-demo --out docs/img

Needs `chromium` (Debian: `apt-get install -y chromium`). MLflow's UI is a JavaScript app, so a plain
``--screenshot`` would catch it half drawn and could not click: this drives Chromium over its DevTools
protocol (aiohttp, already installed with Ray) to wait for the page, close the assistant side panel,
expand the sweep's parent run and take each PNG. Nothing here is used by the platform or its tests.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp

W, H = 1600, 1000
EXPAND = 'button[data-component-id*="runnamecellrenderer"]'  # the +/- before a parent run's name


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expr: str):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    async def wait_text(self, text: str, timeout: float = 60) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if await self.js(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"page never showed {text!r}")

    async def click_label(self, pattern: str) -> int:
        """Click every button whose aria-label or title matches ``pattern`` (a JS regex)."""
        return await self.js(f"""(() => {{ let n = 0;
            for (const b of document.querySelectorAll('button,[role=button]')) {{
              const l = (b.getAttribute('aria-label') || '') + ' ' + (b.getAttribute('title') || '');
              if (/{pattern}/i.test(l)) {{ b.click(); n++; }} }}
            return n; }})()""")

    async def click_css(self, selector: str) -> int:
        return await self.js(f"""(() => {{ const bs = document.querySelectorAll({json.dumps(selector)});
            bs.forEach(b => b.click()); return bs.length; }})()""")

    async def search_charts(self, text: str) -> None:
        """Type into the "Search metric charts" box (React listens to input events, not to .value)."""
        await self.js(f"""(() => {{ const i = document.querySelector('input[placeholder*="Search metric charts"]');
            if (!i) return 0;
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(i, {json.dumps(text)});
            i.dispatchEvent(new Event('input', {{bubbles: true}})); return 1; }})()""")
        await asyncio.sleep(3)

    async def goto(self, url: str, wait_for: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_text(wait_for)
        await asyncio.sleep(3)  # charts draw after the data arrives

    async def shot(self, path: Path) -> None:
        await asyncio.sleep(2)
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path}")


def mlflow_get(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


async def main_async(a: argparse.Namespace) -> None:
    exp = json.loads(urllib.request.urlopen(
        f"{a.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={a.experiment}").read())["experiment"]
    eid = exp["experiment_id"]
    runs = mlflow_get(a.url, "runs/search", {"experiment_ids": [eid], "max_results": 100,
                                              "filter": f"tags.sweep = '{a.sweep}'"})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    children = [r["info"]["run_id"] for r, t in zip(runs, tags) if t.get("mlflow.parentRunId")]
    best = next(t.get("best_run_id") for t in tags if t.get("kind") == "sweep")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    profile = tempfile.mkdtemp(prefix="mlp-chromium-")
    port = 9333
    proc = subprocess.Popen([a.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--window-size={W},{H}", f"--remote-debugging-port={port}",
                             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(60):
            try:
                targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2).read())
                break
            except OSError:
                time.sleep(0.5)
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_url, max_msg_size=0) as ws:
            p = Page(ws)
            await p.call("Emulation.setDeviceMetricsOverride", width=W, height=H, deviceScaleFactor=1, mobile=False)
            # 1. the experiment's runs, the sweep's parent expanded to its trials, metric columns in view
            await p.goto(f"{a.url}/#/experiments/{eid}/runs", a.sweep)
            await p.click_label("close")  # the assistant side panel
            await p.click_css(EXPAND)  # the parent run's row: show its child (trial) runs
            await p.wait_text(f"{a.sweep}-")
            await p.shot(out / "mlflow_experiment_runs.png")
            # 2. the same runs as charts, one line per trial, filtered to the selection metric
            # (switch views in the page: a fresh load of the chart view shows the parent collapsed)
            await p.js("""(() => { const r = [...document.querySelectorAll('input[type=radio]')]
                .find(i => i.value === 'CHART'); if (r) r.click(); return !!r; })()""")
            await asyncio.sleep(4)
            await p.search_charts("nmse")
            await p.shot(out / "mlflow_experiment_charts.png")
            # 3. compare the trials: parallel coordinates of the swept params against the metric, params table
            ids = urllib.parse.quote(json.dumps(children))
            await p.goto(f"{a.url}/#/compare-runs?runs={ids}&experiments={urllib.parse.quote(json.dumps([eid]))}",
                         "Parallel Coordinates Plot")
            await p.shot(out / "mlflow_compare_runs.png")
            # 4. the best trial's own page: its metrics over epochs
            await p.goto(f"{a.url}/#/experiments/{eid}/runs/{best}/model-metrics", "Model metrics")
            await p.click_label("close")
            await p.search_charts("val/")
            await p.shot(out / "mlflow_run_metrics.png")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:5077")
    ap.add_argument("--experiment", default="riscov")
    ap.add_argument("--sweep", default="ui-demo")
    ap.add_argument("--out", default=str(Path(__file__).parent))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
