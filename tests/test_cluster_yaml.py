"""cluster.yaml passes Ray's own cluster-config schema validation (offline) and opens nothing to the world."""
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_with_rays_schema():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(cfg))
    assert cfg["provider"]["type"] == "aws"
    assert cfg["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1


def test_schema_validation_would_catch_a_broken_config():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    cfg["max_workers"] = "many"
    with pytest.raises(Exception, match="is not of type 'integer'"):
        validate_config(prepare_config(cfg))


def test_nothing_binds_a_public_address():
    text = (REPO / "cluster.yaml").read_text()
    assert "0.0.0.0" not in text
    assert "--dashboard-host=127.0.0.1" in text and "--host 127.0.0.1" in text
    assert "RAY_AUTH_MODE=token" in text


def test_head_runs_mlflow_on_postgresql_with_no_password():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    head = " ".join(cfg["head_setup_commands"])
    assert "apt-get install -y -qq postgresql" in head and "systemctl enable --now postgresql" in head
    assert '--backend-store-uri "postgresql+psycopg://ubuntu@/mlflow?host=/var/run/postgresql"' in head
    assert "sqlite" not in head  # the embedded default stays sqlite; the cluster's server does not
    assert "--artifacts-destination" in head  # artifacts on shared storage, not in the database
