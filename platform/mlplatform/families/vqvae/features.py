"""Feature tables: a generator with known structure, and validation + cleaning of any Parquet table.

The generator (``generate``) makes groups of correlated numeric features, each group driven by a
few latent factors (its *intrinsic dimensionality*) and scaled by its own standard deviation, so the
variance scales span many orders of magnitude; it adds the junk real tables carry (a constant
column, a mostly-NaN column, an exact duplicate, scattered NaNs). Its ground truth (which column
belongs to which group, each group's intrinsic dimension and scale, which columns are junk and why)
is returned beside the table, so the compression analysis can be tested against it.

``read_table`` + ``validate`` + ``clean`` accept any Parquet table of numeric columns. Nothing here
knows the generator's layout: every dimension is inferred from the table at run time (hard-coded sizes broke on every other table).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.config import ConfigError

GENERATOR_VERSION = "features-gen-1"  # the six-group table is unchanged; other sets key their own folder

# (prefix, name, n_features, intrinsic_dim, std scale, kind). Scales span 1e-2..1e3 (variance 1e-4..1e6)
# and are assigned independently of the dimension, so variance and dimensionality are not confounded.
GROUPS: tuple[tuple[str, str, int, int, float, str], ...] = (
    ("temporal_", "a", 10, 1, 1e1, "continuous"),
    ("temporal_", "b", 12, 2, 1e-2, "continuous"),
    ("summary_", "c", 9, 3, 1e3, "discrete"),
    ("summary_", "d", 14, 5, 1e0, "continuous"),
    ("initial_", "e", 16, 8, 1e2, "continuous"),
    ("initial_", "f", 20, 12, 1e-1, "continuous"),
)


# The research model's own scale: 12 categories of 5..33 features (the sizes of its diagnosis table),
# intrinsic dimensions from 1 to 28 and std scales 1e-2..1e3 drawn independently of the size. With one
# uniform ratio every category gets the same latent share, so a near-full-rank 33-feature group is starved
# while a 1-factor group with little noise is reconstructed almost exactly: that is what makes the
# per-category errors of a uniform model span orders of magnitude. The 7th field is the group's noise
# (relative to its signal); the 1-factor groups carry almost none, as the research's easy categories did.
NOTE_GROUPS: tuple[tuple, ...] = (
    ("temporal_", "a", 33, 28, 1e3, "continuous", 0.05),
    ("temporal_", "b", 19, 16, 3e2, "continuous", 0.05),
    ("summary_", "c", 13, 11, 1e-1, "continuous", 0.05),
    ("initial_", "d", 24, 18, 1e1, "continuous", 0.05),
    ("temporal_", "e", 16, 12, 1e0, "continuous", 0.03),
    ("summary_", "f", 14, 9, 3e-1, "continuous", 0.03),
    ("initial_", "g", 17, 10, 1e2, "continuous", 0.03),
    ("temporal_", "h", 16, 6, 1e-2, "continuous", 0.03),
    ("summary_", "i", 9, 4, 3e0, "discrete", 0.03),
    ("initial_", "j", 5, 2, 3e1, "continuous", 0.01),
    ("summary_", "k", 16, 1, 1e-1, "continuous", 0.002),
    ("initial_", "l", 5, 1, 1e2, "continuous", 0.002),
)
GENERATORS = {"six": GROUPS, "note": NOTE_GROUPS}


class FeatureTableError(ConfigError):
    """A feature table that cannot be used. One line; names the file or the column."""


# ----------------------------------------------------------------------------------------------
# generator with known structure
# ----------------------------------------------------------------------------------------------

def generate(n_rows: int, seed: int = 0, groups: tuple = GROUPS, noise: float = 0.03,
             nan_rate: float = 0.005) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A feature table and its ground truth. Deterministic in ``seed``.

    Each group: ``x = (z @ W + noise·ε) · scale`` with ``z ~ N(0, I_k)``; ``W = N(0,1) + 0.6`` shares a
    positive component so features within a group stay correlated even for large ``k``, while groups
    are independent of each other. ``discrete`` groups are rounded to ~6 levels per standard deviation
    (lower entropy). Columns are shuffled so no method can rely on their order.
    """
    if n_rows < 2:
        raise FeatureTableError(f"n_rows must be >= 2, got {n_rows}")
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    truth_groups: dict[str, dict[str, Any]] = {}
    for prefix, name, m, k, scale, kind, *own_noise in groups:
        z = rng.standard_normal((n_rows, k))
        w = rng.standard_normal((k, m)) + 0.6
        x = z @ w
        x = x / x.std(0, keepdims=True)
        x = x + (own_noise[0] if own_noise else noise) * rng.standard_normal((n_rows, m))
        if kind == "discrete":
            x = np.round(x * 2.0) / 2.0
        x = x * scale
        names = [f"{prefix}{name}{j:02d}" for j in range(m)]
        for j, c in enumerate(names):
            cols[c] = x[:, j]
        truth_groups[f"{prefix}{name}"] = {"columns": names, "intrinsic_dim": k, "scale": scale,
                                           "variance": scale ** 2, "kind": kind}
    first = truth_groups[next(iter(truth_groups))]["columns"][0]
    junk = {
        "summary_constant": ("constant", np.full(n_rows, 3.0)),
        "initial_mostly_nan": ("mostly_nan", np.where(rng.random(n_rows) < 0.97, np.nan, rng.standard_normal(n_rows))),
        "temporal_duplicate": (f"duplicate of {first}", cols[first].copy()),
    }
    for c, (_, v) in junk.items():
        cols[c] = v
    # scattered missing values in real columns: cleaning must impute them, not drop the columns
    real = [c for g in truth_groups.values() for c in g["columns"]]
    for c in rng.choice(real, size=max(1, len(real) // 10), replace=False):
        if c == first:
            continue  # keep the duplicate an exact copy
        mask = rng.random(n_rows) < nan_rate
        cols[c] = np.where(mask, np.nan, cols[c])
    order = list(cols)
    rng.shuffle(order)
    # cleaning keeps the first of two identical columns: keep the original first so the truth holds
    order.remove("temporal_duplicate")
    order.insert(order.index(first) + 1 + int(rng.integers(0, len(order) - order.index(first))), "temporal_duplicate")
    df = pd.DataFrame({c: cols[c].astype(np.float64) for c in order})
    truth = {"generator": GENERATOR_VERSION, "seed": seed, "n_rows": n_rows, "groups": truth_groups,
             "junk": {c: r for c, (r, _) in junk.items()}}
    return df, truth


# ----------------------------------------------------------------------------------------------
# reading and validating arbitrary tables
# ----------------------------------------------------------------------------------------------

def parquet_files(path: str | Path) -> list[Path]:
    """The Parquet files of ``path`` (one file, or a folder of ``*.parquet``)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.rglob("*.parquet"))
        if not files:
            raise FeatureTableError(f"{p}: folder holds no .parquet files")
        return files
    if not p.exists():
        raise FeatureTableError(f"{p}: feature table not found")
    return [p]


def table_fingerprint(path: str | Path) -> str:
    """sha256 of the bytes of every Parquet file of the table (the analysis cache's data key)."""
    h = hashlib.sha256()
    for f in parquet_files(path):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet table (file or folder) and validate it; errors are one line naming file/column."""
    frames = []
    for f in parquet_files(path):
        if f.stat().st_size == 0:
            raise FeatureTableError(f"{f}: empty file (0 bytes); regenerate or remove it")
        try:
            frames.append(pq.read_table(f).to_pandas())
        except (pa.ArrowInvalid, OSError) as e:
            raise FeatureTableError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0][:120]})") from None
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    validate(df, str(path))
    return df


def validate(df: pd.DataFrame, source: str = "table") -> None:
    """Reject what no cleaning can fix: no rows/columns, one row, non-numeric, all-NaN or inf columns."""
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise FeatureTableError(f"{source}: table is empty ({df.shape[0]} rows, {df.shape[1]} columns)")
    if df.shape[0] < 2:
        raise FeatureTableError(f"{source}: table has {df.shape[0]} row; need at least 2 rows to analyse features")
    for c in df.columns:
        s = df[c]
        if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
            raise FeatureTableError(f"{source}: column {c!r} is not numeric (dtype {s.dtype}); "
                                    f"drop or encode it before analysis")
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(v).all():
            raise FeatureTableError(f"{source}: column {c!r} is entirely NaN; drop it or fix the upstream join")
        if np.isinf(v).any():
            raise FeatureTableError(f"{source}: column {c!r} contains inf values; replace them with NaN or finite values")


# ----------------------------------------------------------------------------------------------
# cleaning
# ----------------------------------------------------------------------------------------------

@dataclass
class Cleaning:
    """What cleaning kept and why it dropped the rest; the numbers to apply it again to new rows."""

    kept: list[str]
    dropped: dict[str, str]  # column -> reason
    medians: list[float]  # imputation values of ``kept``
    means: list[float]  # of the imputed columns (standardisation)
    stds: list[float]
    imputed: dict[str, int] = field(default_factory=dict)  # column -> number of NaNs filled

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": self.dropped, "medians": self.medians, "means": self.means,
                "stds": self.stds, "imputed": self.imputed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cleaning":
        return cls(**d)

    def apply(self, df: pd.DataFrame, standardize: bool = True) -> np.ndarray:
        """Shape: table [N, any columns] -> [N, len(kept)] float32, imputed (and standardised)."""
        missing = [c for c in self.kept if c not in df.columns]
        if missing:
            raise FeatureTableError(f"table lacks column {missing[0]!r} that the analysis kept ({len(missing)} missing)")
        x = df[self.kept].to_numpy(dtype=np.float64, na_value=np.nan)
        med = np.asarray(self.medians)
        x = np.where(np.isnan(x), med[None, :], x)
        if standardize:
            x = (x - np.asarray(self.means)[None, :]) / np.asarray(self.stds)[None, :]
        return x.astype(np.float32)


def clean(df: pd.DataFrame, max_nan_frac: float = 0.5, source: str = "table") -> Cleaning:
    """Drop mostly-NaN, constant and duplicate columns; impute the rest with the median.

    Order matters and is reported: a column that is mostly NaN is dropped for that reason before its
    few values could make it look constant; a duplicate is dropped in favour of its first occurrence.
    Raises if nothing is left.
    """
    validate(df, source)
    dropped: dict[str, str] = {}
    kept: list[str] = []
    seen: dict[bytes, str] = {}
    for c in df.columns:
        v = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
        nan = np.isnan(v)
        if nan.mean() > max_nan_frac:
            dropped[c] = f"mostly_nan ({nan.mean():.0%} NaN > {max_nan_frac:.0%})"
            continue
        fin = v[~nan]
        if fin.size == 0 or np.ptp(fin) == 0:
            dropped[c] = "constant"
            continue
        key = hashlib.sha256(np.where(nan, np.inf, v).tobytes()).digest()
        if key in seen:
            dropped[c] = f"duplicate of {seen[key]}"
            continue
        seen[key] = c
        kept.append(c)
    if not kept:
        raise FeatureTableError(f"{source}: no usable column left after cleaning ({len(dropped)} dropped)")
    x = df[kept].to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(x)
    med = np.nanmedian(x, axis=0)
    x = np.where(nan, med[None, :], x)
    std = x.std(0)
    std = np.where(std > 0, std, 1.0)  # imputation can make a nearly-constant column constant
    imputed = {c: int(n) for c, n in zip(kept, nan.sum(0)) if n}
    return Cleaning(kept, dropped, med.tolist(), x.mean(0).tolist(), std.tolist(), imputed)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path
