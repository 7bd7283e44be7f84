"""Reports of the compression analysis: JSON, a markdown table, a plot, and MLflow logging."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlplatform.families.vqvae.analysis.strategies import summary_rows


def markdown(result: dict[str, Any]) -> str:
    """The "Computed Adaptive Ratios" markdown table plus the cleaning report."""
    lines = [f"### Computed ratios: strategy `{result['strategy']}`", "",
             "| Category | Features | Variance | Dimensionality | Information | Correlation | Ratios (L0/L1/L2) |",
             "|---|---|---|---|---|---|---|"]
    for r in summary_rows(result):
        lines.append(f"| {r['category']} | {r['features']} | {r['variance']:.3f} | {r['dimensionality']:.3f} | "
                     f"{r['information']:.3f} | {r['correlation']:.3f} | [{', '.join(f'{x:.2f}' for x in r['ratios'])}] |")
    cl = result["cleaning"]
    lines += ["", f"Table: `{result['table']}` ({result['n_rows']} rows, {result['n_columns']} columns); "
              f"kept {len(cl['kept'])}, dropped {len(cl['dropped'])}; categories: "
              f"{result['category_info']['n_categories']} (chosen by {result['category_info']['chosen_by']}).", ""]
    if cl["dropped"]:
        lines += ["| Dropped column | Reason |", "|---|---|"]
        lines += [f"| {c} | {why} |" for c, why in cl["dropped"].items()]
    if cl.get("imputed"):
        lines += ["", f"Imputed (median): {sum(cl['imputed'].values())} values in {len(cl['imputed'])} columns."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = summary_rows(result)
    cats = [r["category"] for r in rows]
    x = np.arange(len(cats))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, name in enumerate(("variance", "dimensionality", "information", "correlation")):
        axes[0].bar(x + (i - 1.5) * 0.2, [r[name] for r in rows], 0.2, label=name)
    axes[0].set_title("characteristics")
    for lv in range(3):
        axes[1].bar(x + (lv - 1) * 0.27, [r["ratios"][lv] for r in rows], 0.27, label=f"L{lv}")
    axes[1].set_title(f"ratios ({result['strategy']})")
    for ax in axes:
        ax.set_xticks(x, cats, rotation=45, ha="right")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """analysis_<strategy>.json / .md / .png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = result["strategy"]
    j = out / f"analysis_{s}.json"
    j.write_text(json.dumps({k: v for k, v in result.items() if k not in ("cached", "cache_dir")}, indent=1))
    m = out / f"analysis_{s}.md"
    m.write_text(markdown(result))
    return [j, m, plot(result, out / f"analysis_{s}.png")]


def log_to_mlflow(result: dict[str, Any], logger: Any, artifact_path: str = "compression_analysis") -> None:
    """Artifacts (json, md, png) and flat params of one strategy's result on an open ``RunLogger``."""
    import tempfile

    d = tempfile.mkdtemp(prefix="mlp-analysis-")
    write(result, d)
    logger.log_artifacts(d, artifact_path)
    s = result["strategy"]
    logger.log_params({f"analysis.{s}.ratios.{c}": r for c, r in result["ratios"].items()})
