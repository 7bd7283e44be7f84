"""creative validation metrics, per item: the selection value, the ratio spread and every pair's window."""
from __future__ import annotations

import torch


def selection_items(agent_items: torch.Tensor, recon_items: torch.Tensor) -> torch.Tensor:
    """Shape: [B, P] x2 -> [B]: mean over pairs of agent + reconstruction, unit weights and no diversity
    term (``val/selection_loss``: nothing in it can be lowered without a better output)."""
    return agent_items.mean(1) + recon_items.mean(1)


def ratio_spread(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Shape: ratios [B, P] per side -> [B]: the mean of both sides' std across pairs (0 = collapsed)."""
    return 0.5 * (out["ratio_input"].std(1) + out["ratio_target"].std(1))


def pair_metrics(out: dict[str, torch.Tensor], frame_rate: float) -> dict[str, torch.Tensor]:
    """Per pair ``i``: window starts (frames and seconds), ratio per side and tonality strength, each [B]."""
    m: dict[str, torch.Tensor] = {}
    for i in range(out["ratio_input"].shape[1]):
        for side in ("input", "target"):
            s = out[f"start_{side}"][:, i]
            m[f"pair{i}/start_{side}_frames"] = s
            m[f"pair{i}/start_{side}_s"] = s / frame_rate
            m[f"pair{i}/ratio_{side}"] = out[f"ratio_{side}"][:, i]
        m[f"pair{i}/tonality_strength"] = out["tonality_strength"][:, i]
    return m
