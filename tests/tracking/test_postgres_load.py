"""A real local PostgreSQL behind a real ``mlflow server``, written by concurrent processes through the
platform's ``RunLogger``: every point arrives exactly once. The full 16-writer x 50-epoch x 20-metric run
and its throughput against a sqlite-backed server are ``make bench`` (benchmarks/tracking_load.py);
this is its smaller form for ``make test`` (docs/cluster.md says why)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.tracking.postgres import LocalPostgres, bin_dir, pid_alive
from mlplatform.tracking.server import MlflowServer

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
pytestmark = pytest.mark.skipif(bin_dir() is None, reason="PostgreSQL is not installed (make sysdeps installs it)")


def test_concurrent_writers_through_postgres_lose_and_repeat_nothing(tmp_path, monkeypatch):
    # on sys.path while the writers start: spawned processes import the writer function from there
    monkeypatch.syspath_prepend(str(BENCH))
    import tracking_load

    with LocalPostgres() as pg:
        pid = pg.pid
        srv = MlflowServer(tmp_path / "srv", workers=2, backend_uri=pg.sqlalchemy_uri(),
                           extra_args=tracking_load.server_args(2))
        try:
            srv.start(timeout=600)
            out = tracking_load.run_load(srv.url, writers=4, epochs=10, metrics=20)
        finally:
            srv.stop()
        assert pg.sqlalchemy_uri().startswith("postgresql+psycopg://mlflow:")  # a real database, by password
    assert out["points"] == 4 * 10 * 20 and out["all_ended"]
    assert (out["lost"], out["duplicated"], out["wrong"]) == (0, 0, 0)
    assert not pid_alive(pid)  # the postmaster was stopped (by its PID)
