"""Connecting to Ray: a cluster when ``RAY_ADDRESS`` is set (``ray job submit`` sets it), else an
embedded local Ray on 127.0.0.1 only, with the dashboard on (Train-in-Tune leaks placement groups without it).

Loopback only (docs/cluster.md, "Sockets of a local run"): Ray 2.60 binds gcs_server, raylet, workers,
the dashboard agent, the runtime-env agent and the metrics exporters to the *node IP* (and some of them to
all interfaces), and finds that IP by asking the network for the machine's address. Ray's own switch for
single-machine Ray (``ray_constants.ENABLE_RAY_CLUSTER``, False on macOS/Windows, read from
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when Ray is imported) makes the node IP 127.0.0.1, and every one of
those sockets then binds 127.0.0.1 (measured with psutil; tests/e2e/test_loopback_sockets.py).
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

# ray.init(address="local") refuses nothing, so a node started inside this switch also cannot be
# joined by another machine: exactly what a local run wants
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Start a local Ray inside this block and all of its sockets bind 127.0.0.1.

    Ray reads the switch at import time into ``ray_constants``; we set the constant itself for the
    duration of ``ray.init`` (Ray may already be imported) and put it back, so a later ``ray start``
    from this process (a test of the cluster path) still makes a joinable head."""
    import ray._private.ray_constants as rc

    before = rc.ENABLE_RAY_CLUSTER
    rc.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        rc.ENABLE_RAY_CLUSTER = before


def bind_torch_store_to_loopback() -> None:
    """Ray's ``worker_process_setup_hook`` for local runs: the TCPStore that rank 0 of a multi-worker run
    serves for torch.distributed's rendezvous listens on *all* interfaces (torch binds ``::`` whatever the
    host) and answers anyone. When the rendezvous address is loopback, bind its socket ourselves to that
    address and hand it to torch (``TCPStore(master_listen_fd=...)``, torch's own option for a pre-bound
    socket); any other address (a real cluster) is left to torch."""
    import importlib
    import socket

    rdv = importlib.import_module("torch.distributed.rendezvous")  # the package exports a function of that name

    create = rdv._create_c10d_store
    if getattr(create, "loopback_only", False):
        return

    def create_store(hostname: str, port: int, rank: int, world_size: int, timeout: Any, use_libuv: bool = True) -> Any:
        if rank != 0 or hostname not in ("127.0.0.1", "localhost") or rdv._torchelastic_use_agent_store():
            return create(hostname, port, rank, world_size, timeout, use_libuv)
        from torch.distributed import TCPStore

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        # detach: the store owns the descriptor from here on (Python must not close it when sock is collected)
        return TCPStore(hostname, port, world_size, True, timeout, multi_tenant=True,
                        master_listen_fd=sock.detach(), use_libuv=use_libuv)

    create_store.loopback_only = True  # type: ignore[attr-defined]
    rdv._create_c10d_store = create_store


def local_resources() -> dict[str, float] | None:
    """What the embedded local Ray will have, found the way Ray finds it, without starting it (seconds
    saved on a request that cannot fit); None when the job will join a cluster (``RAY_ADDRESS``)."""
    if os.environ.get("RAY_ADDRESS"):
        return None
    from ray._private.accelerators import get_accelerator_manager_for_resource
    from ray._private.utils import get_num_cpus

    return {"CPU": float(get_num_cpus()),
            "GPU": float(get_accelerator_manager_for_resource("GPU").get_current_node_num_accelerators())}


def check_fits(resources: dict[str, Any], workers: int, cpus_per_worker: float, gpus_per_worker: float, *,
               what: str = "one trial", workers_flag: str = "--workers-per-trial", driver_cpus: float = 0.0) -> None:
    """``workers`` workers (plus a driver taking ``driver_cpus``) must fit the cluster, or Ray waits for
    workers that never start. Raises ConfigError (one line, exit 2) before any run is opened."""
    from mlplatform.config import ConfigError

    cpus = cpus_per_worker * workers + driver_cpus
    if cpus > resources.get("CPU", 0) + 1e-9:
        driver = f" + {driver_cpus:g} for the trial driver" if driver_cpus else ""
        raise ConfigError(f"{what} needs {cpus:g} CPUs ({workers} worker(s) x --cpus-per-worker {cpus_per_worker:g}"
                          f"{driver}) but the cluster has {resources.get('CPU', 0):g}; lower --cpus-per-worker or "
                          f"{workers_flag}")
    gpus = gpus_per_worker * workers
    if gpus > resources.get("GPU", 0) + 1e-9:
        raise ConfigError(f"{what} needs {gpus:g} GPUs but the cluster has {resources.get('GPU', 0):g}; "
                          f"lower --gpus-per-worker or {workers_flag}")


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
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")  # Train passes it to its controller and workers
    # Ray logs "Token authentication is enabled..." at WARNING before logging_level applies: a second
    # stderr line under every one-line error that follows. Token auth itself stays on.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level="WARNING" if quiet else "INFO")
        where = f"cluster at {os.environ['RAY_ADDRESS']}"
    else:
        # address="local": never attach to a `ray start` cluster by accident (that is what RAY_ADDRESS is for)
        port, api_env = pin_api_server()
        with loopback_only():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                     dashboard_port=port, logging_level="WARNING" if quiet else "INFO",
                     runtime_env={"env_vars": {**ensure_env_for_workers(), **api_env},
                                  "worker_process_setup_hook": "mlplatform.raycluster.bind_torch_store_to_loopback"})
        where = "embedded local Ray"
    res = ray.cluster_resources()
    print(f"[ray] {where}: {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU", flush=True)
    return res
