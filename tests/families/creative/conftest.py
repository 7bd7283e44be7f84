"""Shared creative fixtures: the debug corpus + latent cache and ONE debug training run per session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def creative_cfg(home):
    from mlplatform.registry import build_config

    return build_config("creative", "debug")


@pytest.fixture(scope="session")
def creative_data(creative_cfg):
    """Corpus rendered by fluidsynth and encoded once (in-process path; the Ray Data path has its own test)."""
    from mlplatform.families.creative.data import prepare_data

    return prepare_data(creative_cfg)


@pytest.fixture(scope="session")
def creative_run(creative_cfg, creative_data, tmp_path_factory):
    from mlplatform.train.executors import run_local

    from mlplatform.tracking import mlflow_utils as mu

    work = tmp_path_factory.mktemp("creative-run")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    cl = mu.client(uri)
    run_id = cl.create_run(mu.get_or_create_experiment(cl, "creative-test")).info.run_id
    res, rep = run_local({"family": "creative", "cfg": creative_cfg.to_dict(), "work_dir": str(work / "ckpt"),
                          "verbose": True, "mlflow_run_id": run_id, "tracking_uri": uri})
    return res, rep, cl, run_id
