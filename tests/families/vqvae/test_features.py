"""Feature tables: the generator's structure, cleaning, and one-line errors on bad tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.families.vqvae import features as feat


def test_generator_has_known_structure():
    df, truth = feat.generate(3000, seed=1)
    groups = truth["groups"]
    assert len(groups) >= 6
    variances = [g["variance"] for g in groups.values()]
    assert max(variances) / min(variances) >= 1e4  # 4+ orders of magnitude
    assert len({g["intrinsic_dim"] for g in groups.values()}) == len(groups)
    # the measured column variances follow the declared scales
    for g in groups.values():
        v = df[g["columns"]].var().mean()
        assert 0.5 * g["variance"] < v < 2.0 * g["variance"]
    assert set(truth["junk"]) <= set(df.columns)
    df2, _ = feat.generate(3000, seed=1)
    pd.testing.assert_frame_equal(df, df2)  # deterministic in the seed


def test_cleaning_drops_junk_with_reasons_and_imputes():
    df, truth = feat.generate(3000, seed=2)
    cl = feat.clean(df)
    assert set(cl.dropped) == set(truth["junk"])
    assert cl.dropped["summary_constant"] == "constant"
    assert cl.dropped["initial_mostly_nan"].startswith("mostly_nan")
    assert cl.dropped["temporal_duplicate"] == truth["junk"]["temporal_duplicate"]
    assert cl.imputed, "scattered NaNs must be imputed, not dropped"
    x = cl.apply(df)
    assert x.shape == (3000, len(cl.kept)) and np.isfinite(x).all()
    assert np.allclose(x.mean(0), 0, atol=1e-3) and np.allclose(x.std(0), 1, atol=1e-2)


def _write(tmp_path, df, name="t.parquet"):
    return feat.write_table(df, tmp_path / name)


@pytest.mark.parametrize("case", ["all_nan", "one_row", "non_numeric", "empty_file", "no_rows"])
def test_bad_tables_give_one_line_error_naming_column_or_file(tmp_path, case):
    good = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5.0) ** 2})
    if case == "all_nan":
        path, needle = _write(tmp_path, good.assign(broken=np.nan)), "'broken'"
    elif case == "one_row":
        path, needle = _write(tmp_path, good.iloc[:1]), "t.parquet"
    elif case == "non_numeric":
        path, needle = _write(tmp_path, good.assign(label=list("vwxyz"))), "'label'"
    elif case == "no_rows":
        path, needle = _write(tmp_path, good.iloc[:0]), "t.parquet"
    else:
        path = tmp_path / "empty.parquet"
        path.write_bytes(b"")
        needle = "empty.parquet"
    with pytest.raises(feat.FeatureTableError) as e:
        feat.clean(feat.read_table(path), source=str(path))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg


def test_inf_column_is_named(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"a": [1.0, 2.0, 3.0], "spiky": [1.0, np.inf, 2.0]}))
    with pytest.raises(feat.FeatureTableError, match="'spiky'"):
        feat.read_table(path)
