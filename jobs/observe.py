#!/usr/bin/env python
"""Prometheus over the running Ray's metrics, on 127.0.0.1 only (``make observe``; docs/observability.md).

  python jobs/observe.py start                 # after `ray start --head ...`: scrape that Ray
  python jobs/observe.py start --before-ray    # first, then `ray start` with the printed variable
  python jobs/observe.py status
  python jobs/observe.py stop                  # by the PID recorded in .observe/state.json

Prometheus scrapes the service-discovery file Ray keeps in its temp dir (``/tmp/ray`` unless
``--ray-temp-dir``/``RAY_TMPDIR``), so a Ray restarted later is picked up. The Ray dashboard reads
``RAY_PROMETHEUS_HOST`` when it starts: export the printed value before ``ray start`` (Ray's default,
http://localhost:9090, already matches when port 9090 was free). Grafana cannot be installed on this
project's machines (no package on the registries; its binaries are downloaded from grafana.com, which we do
not do at run time): ``RAY_GRAFANA_HOST`` is printed only when a Grafana answers on --grafana-url. The
platform's dashboard for a Grafana you run yourself is docs/grafana/mlplatform.json.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlplatform.cli import one_line
from mlplatform.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("start", "stop", "status"))
    p.add_argument("--port", type=int, default=None,
                   help="port on 127.0.0.1 (default 9090 when free, else a free one)")
    p.add_argument("--ray-temp-dir", default=None,
                   help="Ray's temp root, as given to `ray start --temp-dir` (default: Ray's, /tmp/ray)")
    p.add_argument("--state-dir", default=os.environ.get("MLPLATFORM_OBSERVE_DIR", str(REPO / ".observe")),
                   help="config, data, log and state.json (default $MLPLATFORM_OBSERVE_DIR or <repo>/.observe)")
    p.add_argument("--scrape-interval", type=float, default=10.0, help="seconds (default %(default)s, as Ray's)")
    p.add_argument("--prometheus", default=None, help="the prometheus binary (default: from PATH)")
    p.add_argument("--before-ray", action="store_true",
                   help="start even when no Ray runs yet (it is scraped once it starts)")
    p.add_argument("--grafana-url", default="http://127.0.0.1:3000",
                   help="where a Grafana of yours would answer (default %(default)s); none is started")
    return p.parse_args(argv)


def print_env(url: str, grafana: str | None) -> None:
    """What a user exports before `ray start`, so its dashboard's Metrics tab queries this Prometheus."""
    print(f"export RAY_PROMETHEUS_HOST={url}")
    if grafana:
        print(f"export RAY_GRAFANA_HOST={grafana}")
    else:
        print("# RAY_GRAFANA_HOST: no Grafana answers here (none is installable on this machine; "
              "docs/observability.md, 'Grafana')")


def do_start(args: argparse.Namespace) -> int:
    from mlplatform.observe import prometheus as prom

    temp = prom.ray_temp_dir(args.ray_temp_dir)
    st = prom.start(Path(args.state_dir), temp, port=args.port, scrape_interval_s=args.scrape_interval,
                    binary=args.prometheus, check_ray=not args.before_ray)
    ver = prom.version(prom.find_binary(args.prometheus))
    print(f"[observe] {ver or 'prometheus'} on {st.url} (pid {st.pid}), scraping the Ray targets in "
          f"{st.discovery_file} every {st.scrape_interval_s:g}s; log {st.log}", flush=True)
    print_env(st.url, prom.grafana_url(args.grafana_url))
    return 0


def do_stop(args: argparse.Namespace) -> int:
    from mlplatform.observe import prometheus as prom

    st = prom.stop(Path(args.state_dir))
    print(f"[observe] stopped Prometheus pid {st.pid} on {st.url}" if st else "[observe] nothing to stop")
    return 0


def do_status(args: argparse.Namespace) -> int:
    """Running or not; the scrape targets and whether each is up (exit 1 when not running)."""
    from mlplatform.observe import prometheus as prom

    st = prom.load_state(Path(args.state_dir))
    if st is None or not prom.is_ours(st):
        print("[observe] Prometheus is not running (python jobs/observe.py start)")
        return 1
    up = prom.query(st.url, "up")
    print(f"[observe] Prometheus on {st.url} (pid {st.pid}); {len(up)} Ray target(s) from {st.discovery_file}")
    for r in up:
        print(f"  {r['metric'].get('instance', '?'):24s} {'up' if r['value'][1] == '1' else 'DOWN'}")
    print_env(st.url, prom.grafana_url(args.grafana_url))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Known bad input -> ``error: <one line>``, exit 2: ``cli.one_line_errors``'s contract, caught here
    because that decorator imports the checkpoint module and so torch (8 s on a loaded machine) for a
    command that only starts or stops a process."""
    args = parse(argv)
    try:
        return {"start": do_start, "stop": do_stop, "status": do_status}[args.command](args)
    except ConfigError as e:
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
