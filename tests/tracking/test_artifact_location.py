"""Artifacts of a sqlite store live beside the database, never in the repository when the database is
elsewhere (a user's ``sqlite:////data/x.db``)."""
from pathlib import Path

from mlflow.tracking import MlflowClient

from mlplatform.paths import repo_root
from mlplatform.tracking import mlflow_utils as mu


def test_artifacts_go_beside_a_sqlite_database_elsewhere(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPLATFORM_HOME", raising=False)
    uri = f"sqlite:///{tmp_path / 'data' / 'x.db'}"
    (tmp_path / "data").mkdir()
    assert mu.default_artifact_root(uri) == str(tmp_path / "data" / "mlartifacts")
    cl = MlflowClient(uri)
    exp = cl.get_experiment(mu.get_or_create_experiment(cl, "beside"))
    assert exp.artifact_location == (tmp_path / "data" / "mlartifacts" / "beside").as_uri()
    assert not str(exp.artifact_location).startswith(repo_root().as_uri())
    assert f"--default-artifact-root {tmp_path / 'data' / 'mlartifacts'}" in mu.ui_command(uri)


def test_the_default_store_keeps_its_artifacts_in_the_repo_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLATFORM_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mu.default_artifact_root(mu.resolve_tracking_uri()) == str(Path(tmp_path).resolve() / "mlartifacts")
    assert mu.default_artifact_root("http://127.0.0.1:5000") is None
