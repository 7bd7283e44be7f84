"""Shared fixtures: one real local Ray per session, a real MLflow sqlite store per test module.

Data caches go to a session temp folder (MLPLATFORM_HOME), never into the repo being tested.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "jobs"))  # jobs are thin CLIs; tests import their main()
sys.path.append(str(REPO / "tests"))  # shared test helpers (metric_history.py), after everything else
# a sweep confirms its winner (hpo.py --confirm-top, 3 x 3 more trainings) only where a test asks for it
os.environ["MLPLATFORM_CONFIRM_TOP"] = "0"


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """An isolated MLPLATFORM_HOME (data caches, default MLflow store) for the whole session."""
    h = tmp_path_factory.mktemp("mlp-home")
    os.environ["MLPLATFORM_HOME"] = str(h)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return h


@pytest.fixture(scope="session")
def ray_session(home):
    """A real local Ray (2 CPUs), started once per session."""
    import ray

    from mlplatform.raycluster import pin_api_server
    from mlplatform.train.executors import ensure_env_for_workers

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    from mlplatform.raycluster import loopback_only

    if not ray.is_initialized():
        port, api_env = pin_api_server()  # as jobs do: Ray's own cleaner must find this instance
        with loopback_only():
            ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=True,
                     dashboard_port=port,
                     runtime_env={"env_vars": {**ensure_env_for_workers(), **api_env, "MLPLATFORM_HOME": str(home),
                                               "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO / "jobs"),
                                                                             str(REPO / "tests")])}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, made (schema migrations run) once per session: a new store costs about
    1.5 s of migrations in a warm process, a copy of this one 0.05 s, and some 60 tests each want their own."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlruns.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def mlflow_uri(tmp_path, _mlflow_template) -> str:
    """A fresh real MLflow sqlite store for one test (a copy of the session's empty, migrated one)."""
    db = tmp_path / "mlruns.db"
    shutil.copyfile(_mlflow_template, db)
    return f"sqlite:///{db}"
