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


def clip_spread(out: dict[str, torch.Tensor], ratio_min: float, ratio_max: float) -> torch.Tensor:
    """Shape: selector outputs [B, P] -> [B]: how far each clip's choices sit from the batch's mean choice.

    Mean over pairs of |start fraction − batch mean| (input and target) and |ratio − batch mean| / range.
    Next to ``ratio_spread`` (across pairs): a selector that ignores its input picks the same windows for
    every clip and reads 0 here however far apart its pairs are. Needs B >= 2 (0 otherwise).
    """
    span = ratio_max - ratio_min
    parts = [out["start_frac_input"], out["start_frac_target"], out["ratio_input"] / span, out["ratio_target"] / span]
    return torch.stack([(v - v.mean(0, keepdim=True)).abs().mean(1) for v in parts]).mean(0)


def choice_shift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per item [B]: mean |Δ start fraction| (both sides) and mean |Δ ratio| (both sides) between two runs."""
    return {"start_shift": 0.5 * ((a["start_frac_input"] - b["start_frac_input"]).abs().mean(1)
                                  + (a["start_frac_target"] - b["start_frac_target"]).abs().mean(1)),
            "ratio_shift": 0.5 * ((a["ratio_input"] - b["ratio_input"]).abs().mean(1)
                                  + (a["ratio_target"] - b["ratio_target"]).abs().mean(1))}
