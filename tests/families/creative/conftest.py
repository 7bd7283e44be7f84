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

    work = tmp_path_factory.mktemp("creative-run")
    res, rep = run_local({"family": "creative", "cfg": creative_cfg.to_dict(), "work_dir": str(work),
                          "verbose": True})
    return res, rep
