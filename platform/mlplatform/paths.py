"""Where the project lives on disk: a leaf module, so data code finds its folders without importing MLflow."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The project folder (``MLPLATFORM_HOME`` overrides): where the default store and data live."""
    env = os.environ.get("MLPLATFORM_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]
