"""The window-selection plot: both clips' latent energy over time with each pair's chosen window."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def window_plot(path: str | Path, x_in: torch.Tensor, x_tgt: torch.Tensor, params: dict[str, torch.Tensor],
                window_frames: int, frame_rate: float, title: str = "") -> Path:
    """Write a PNG for ONE item. Shape: x_in [C, T_in], x_tgt [C, T_tgt]; params values [P].

    Each pair's window is drawn as the span it reads, ``[start, start + W·ratio]`` seconds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=False)
    for ax, x, side in ((axes[0], x_in, "input"), (axes[1], x_tgt, "target")):
        energy = x.detach().float().pow(2).mean(0).sqrt().cpu()
        t = torch.arange(len(energy)) / frame_rate
        ax.plot(t.numpy(), energy.numpy(), color="0.3", lw=0.8)
        for i in range(len(params[f"start_{side}"])):
            s = float(params[f"start_{side}"][i]) / frame_rate
            r = float(params[f"ratio_{side}"][i])
            e = s + window_frames * r / frame_rate
            c = COLORS[i % len(COLORS)]
            ax.axvspan(s, e, color=c, alpha=0.18)
            ax.axvline(s, color=c, lw=1.2, label=f"pair {i}: {s:.2f}-{e:.2f} s, ratio {r:.3f}, "
                                                  f"tonality {float(params['tonality_strength'][i]):.2f}")
        ax.set_ylabel(f"{side} latent RMS")
        ax.legend(fontsize=7, loc="upper right")
    axes[1].set_xlabel("seconds")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def log_plot(state: dict[str, Any], path: Path) -> bool:
    """Upload to the run's MLflow artifacts under ``plots/`` when the loop gave the family a logger."""
    logger = state.get("logger")
    if logger is None:
        return False
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="mlp-plot-"))
    shutil.copy(path, d / path.name)
    logger.log_artifacts(str(d), "plots")
    return True
