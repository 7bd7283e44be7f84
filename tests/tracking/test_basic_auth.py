"""A shared MLflow server with basic auth (`mlflow server --app-name basic-auth`, needs `mlflow[auth]`):
a job without or with wrong credentials stops with one line before Ray; with MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD the run logger writes through it. /health stays open, so the check asks the API."""
from __future__ import annotations

import secrets

import pytest
from mlflow.tracking import MlflowClient

from mlplatform.config import ConfigError
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tracking.server import MlflowServer

pytest.importorskip("flask_wtf", reason="basic auth needs `pip install mlflow[auth]` (Flask-WTF)")
pytestmark = pytest.mark.e2e


def test_basic_auth_server_refuses_without_credentials_and_logs_with_them(tmp_path, monkeypatch):
    password = secrets.token_urlsafe(16)
    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    with MlflowServer(tmp_path / "srv", extra_args=["--app-name", "basic-auth"], env=env) as srv:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        with pytest.raises(ConfigError, match="refused the request \\(no credentials given\\)"):
            mu.check_tracking(srv.url)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(ConfigError, match="refused the request \\(as user 'admin'\\)"):
            mu.check_tracking(srv.url)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        mu.check_tracking(srv.url)
        cl = MlflowClient(srv.url)
        run_id = cl.create_run(mu.get_or_create_experiment(cl, "auth")).info.run_id
        log = mu.RunLogger(run_id, srv.url)
        log.log_metrics({"val/x": 0.5}, step=1)
        assert log.end("FINISHED", timeout_s=10)
        run = cl.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics == {"val/x": 0.5}
