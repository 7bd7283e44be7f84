"""Shared vqvae fixtures: one small generated table (with ground truth) per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.families.vqvae import features as feat


@pytest.fixture(scope="session")
def small_table(tmp_path_factory) -> tuple[Path, dict]:
    """A 4000-row table from the generator, written as a Parquet folder, and its ground truth."""
    d = tmp_path_factory.mktemp("vq-table")
    df, truth = feat.generate(4000, seed=3)
    feat.write_table(df, d / "table" / "part-00000.parquet")
    return d / "table", truth
