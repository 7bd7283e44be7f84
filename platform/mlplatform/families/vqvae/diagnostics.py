"""Diagnostics of a trained vqvae (per-category reconstruction table and codebook health) and the
apples-to-apples comparison table. Used by ``jobs/diagnose.py`` and ``jobs/compare_compression.py``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mlplatform.families.vqvae import data as D
from mlplatform.families.vqvae.build import load_model  # noqa: F401  (the jobs load checkpoints from here)
from mlplatform.families.vqvae.metrics import full_pass


def evaluate_split(cfg: Any, model: torch.nn.Module, split: str = "val") -> dict[str, Any]:
    """``full_pass`` over the run's own split (same table, cleaning, categories and split seed)."""
    x, lay = D.load_matrix(cfg)
    tr, va = D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    rows = {"val": va, "train": tr}.get(split)
    xs = torch.from_numpy(x if rows is None else x[rows])
    out = full_pass(model, xs)
    out["n_rows"] = len(xs)
    out["strategy"] = lay.strategy
    out["ratios"] = dict(zip(lay.categories, [list(r) for r in lay.ratios]))
    out["n_params"] = sum(p.numel() for p in model.parameters())
    return out


def diagnosis_markdown(d: dict[str, Any], title: str = "vqvae diagnostics") -> str:
    """The "Per-Category Reconstruction Errors" table (worst first) and "Codebook Health"."""
    cats = sorted(d["mse"], key=d["mse"].get, reverse=True)
    best = min(d["mse"], key=d["mse"].get)
    lines = [f"## {title}", "", f"Rows: {d['n_rows']} · strategy: `{d['strategy']}` · parameters: {d['n_params']:,}", "",
             "### Per-Category Reconstruction Errors", "",
             "| Category | MSE | Relative Error | Dimensions | Codebook Utilization (L0/L1/L2) | Ratios (L0/L1/L2) |",
             "|---|---|---|---|---|---|"]
    for c in cats:
        rel = f"{d['rel_error'][c]:,.1f}x" + (" (best)" if c == best else "")
        util = " / ".join(f"{100 * d[f'util/{c}/L{lv}']:.1f}%" for lv in range(3))
        ratios = ", ".join(f"{r:.2f}" for r in d["ratios"][c])
        lines.append(f"| {c} | {d['mse'][c]:.4f} | {rel} | {d['dims'][c]}D | {util} | [{ratios}] |")
    lines += ["", "### Codebook Health", "",
              f"- **Average Utilization:** {100 * d['codebook_utilization']:.1f}% "
              f"(L0 {100 * d['codebook_utilization_L0']:.1f}%, L1 {100 * d['codebook_utilization_L1']:.1f}%, "
              f"L2 {100 * d['codebook_utilization_L2']:.1f}%)",
              f"- **Dead Codes:** {int(d['dead_codes'])} out of {int(d['total_codes'])} "
              f"({100 * d['dead_codes'] / max(d['total_codes'], 1):.0f}% unused)",
              f"- **Average Perplexity:** {d['perplexity']:.2f} · **perplexity / K** L0/L1/L2: "
              + " / ".join(f"{d[f'perplexity_norm_L{lv}']:.3f}" for lv in range(3))
              + " · **entropy / log K** L0/L1/L2: " + " / ".join(f"{d[f'entropy_norm_L{lv}']:.3f}" for lv in range(3)),
              f"- **Reconstruction error:** {d['recon_error']:.4f} · **Quality:** {d['quality']:.4f}", ""]
    return "\n".join(lines)


def diagnosis_plot(d: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = list(d["mse"])
    x = np.arange(len(cats))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].bar(x, [d["mse"][c] for c in cats])
    axes[0].set_yscale("log")
    axes[0].set_title("per-category MSE (log)")
    for lv in range(3):
        axes[1].bar(x + (lv - 1) * 0.27, [100 * d[f"util/{c}/L{lv}"] for c in cats], 0.27, label=f"L{lv}")
    axes[1].set_title("codebook utilisation %")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(x, cats, rotation=45, ha="right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
