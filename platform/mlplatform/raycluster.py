"""Connecting to Ray: a cluster when ``RAY_ADDRESS`` is set (``ray job submit`` sets it), else an
embedded local Ray with the dashboard on 127.0.0.1 (Train-in-Tune leaks placement groups without it)."""
from __future__ import annotations

import os
from typing import Any


def pin_api_server() -> tuple[int, dict[str, str]]:
    """A free loopback port for this Ray instance's dashboard (its State API server), and the variable
    that points State API clients at it. Ray Train's placement-group cleaner, in a worker, looks the API
    server up with no address; with another Ray instance on the host it fails ("multiple active Ray
    instances") and its thread dies (docs/cluster.md, "Two Ray instances on one host"). Ray reads
    RAY_API_SERVER_ADDRESS before guessing. It goes to the workers' runtime env only: in the driver's own
    environment it would also redirect a ``ray job submit`` that process (or a test after it) runs."""
    from mlplatform.tracking.server import free_port

    port = free_port()
    return port, {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}


def init_ray(num_cpus: int | None = None, quiet: bool = True) -> dict[str, Any]:
    import ray

    from mlplatform.train.executors import ensure_env_for_workers

    if ray.is_initialized():
        return ray.cluster_resources()
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level="WARNING" if quiet else "INFO")
        where = f"cluster at {os.environ['RAY_ADDRESS']}"
    else:
        # address="local": never attach to a `ray start` cluster by accident (that is what RAY_ADDRESS is for)
        port, api_env = pin_api_server()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                 dashboard_port=port, logging_level="WARNING" if quiet else "INFO",
                 runtime_env={"env_vars": {**ensure_env_for_workers(), **api_env}})
        where = "embedded local Ray"
    res = ray.cluster_resources()
    print(f"[ray] {where}: {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU", flush=True)
    return res
