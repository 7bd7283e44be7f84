"""creative losses: the agent's descriptor loss and the ratio supervision (docs/families/creative.md).

The descriptors the agent is scored against are FIXED functions of the latents (no parameters): a
trainable target could collapse to something trivially matched.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as Fn

EPS = 1e-5


def _check3(name: str, *xs: torch.Tensor) -> None:
    for x in xs:
        if x.dim() != 3:
            raise ValueError(f"{name}: expected latents [N, C, W], got {tuple(x.shape)}")
    if len({tuple(x.shape) for x in xs}) != 1:
        raise ValueError(f"{name}: shapes differ: {[tuple(x.shape) for x in xs]}")


def rhythm_descriptor(z: torch.Tensor) -> torch.Tensor:
    """Standardised onset envelope: per-frame latent change, zero mean and unit variance over time.

    Shape: [N, C, W] -> [N, W-1].
    """
    flux = (z[..., 1:] - z[..., :-1]).pow(2).mean(1).add(EPS).sqrt()
    return (flux - flux.mean(-1, keepdim=True)) / flux.std(-1, keepdim=True).clamp_min(EPS)


def harmony_descriptor(z: torch.Tensor) -> torch.Tensor:
    """Unit-norm time-averaged latent (which "notes"/channels are active). Shape: [N, C, W] -> [N, C]."""
    return Fn.normalize(z.mean(-1), dim=-1, eps=EPS)


def timbre_descriptor(z: torch.Tensor) -> torch.Tensor:
    """Log per-channel spread over time (the texture's energy profile). Shape: [N, C, W] -> [N, C]."""
    return z.std(-1).add(EPS).log()


def agent_loss_parts(out: torch.Tensor, win_in: torch.Tensor, win_tgt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-item descriptor distances, no reduction over items.

    Shape: [N, C, W] x3 -> {"rhythm", "harmony", "timbre"}: [N] each.
    rhythm = MSE of standardised onset envelopes (output vs INPUT window), in [0, 4];
    harmony = 1 - cos of harmony descriptors (output vs TARGET window), in [0, 2];
    timbre = MSE of log spreads (output vs TARGET window), >= 0. Identical descriptors give 0.
    """
    _check3("agent_loss_parts", out, win_in, win_tgt)
    rhythm = (rhythm_descriptor(out) - rhythm_descriptor(win_in)).pow(2).mean(-1)
    harmony = 1.0 - (harmony_descriptor(out) * harmony_descriptor(win_tgt)).sum(-1)
    timbre = (timbre_descriptor(out) - timbre_descriptor(win_tgt)).pow(2).mean(-1)
    return {"rhythm": rhythm, "harmony": harmony.clamp_min(0.0), "timbre": timbre}


def per_pair_mean(per_item: torch.Tensor, batch: int, pairs: int) -> torch.Tensor:
    """Per-pair loss from folded items. Shape: [B·P] -> [P] (mean over the batch)."""
    if per_item.shape != (batch * pairs,):
        raise ValueError(f"expected [{batch * pairs}] per-item values, got {tuple(per_item.shape)}")
    return per_item.view(batch, pairs).mean(0)


def mean_over_pairs(pair_losses: torch.Tensor) -> torch.Tensor:
    """The MEAN of the per-pair losses (never argmin: every pair gets gradients). Shape: [P] -> []."""
    if pair_losses.dim() != 1:
        raise ValueError(f"expected per-pair losses [P], got {tuple(pair_losses.shape)}")
    return pair_losses.mean()


def ratio_diversity_loss(ratio_input: torch.Tensor, ratio_target: torch.Tensor) -> torch.Tensor:
    """Ratio diversity: ``-(var_pairs(ratio_input) + var_pairs(ratio_target))``, variance across pairs.

    Shape: [B, P] x2 -> [] (variance over P with torch.var's default unbiased estimator, mean over B).
    Always <= 0; more diverse ratios give a lower value. E.g. [0.8, 1.0, 1.2] on both sides -> -0.08.
    """
    if ratio_input.dim() != 2 or ratio_input.shape != ratio_target.shape or ratio_input.shape[1] < 2:
        raise ValueError(f"expected ratios [B, P>=2] x2, got {tuple(ratio_input.shape)} and {tuple(ratio_target.shape)}")
    return -(torch.var(ratio_input, dim=1).mean() + torch.var(ratio_target, dim=1).mean())


def diversity_bounds(ratio_min: float, ratio_max: float, pairs: int) -> tuple[float, float]:
    """Declared bound of :func:`ratio_diversity_loss`: values in [a, b] have unbiased variance at most
    P/(P-1)·(b-a)²/4, two sides -> [-2·that, 0]."""
    return -2.0 * pairs / (pairs - 1) * (ratio_max - ratio_min) ** 2 / 4.0, 0.0


def crop_pair(a: torch.Tensor, b: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``frames``-long crop of two latent batches (global torch RNG; 0 = no crop).

    Shape: [N, C, W] x2 -> [N, C, frames] x2.
    """
    w = a.shape[-1]
    if frames <= 0 or frames >= w:
        return a, b
    off = int(torch.randint(0, w - frames + 1, (1,)))
    return a[..., off:off + frames], b[..., off:off + frames]


def reconstruction_loss(decode: Callable[[torch.Tensor], torch.Tensor], output: torch.Tensor,
                        original: torch.Tensor) -> torch.Tensor:
    """MSE between the DECODED agent output and the DECODED original uncompressed window.

    Shape: output, original [N, C, W] latents -> [N] per-item MSE of the waveforms (no item reduction).
    ``decode`` is the frozen EnCodec decoder; gradients flow through it to the output AND to the
    original window's start (the window is read with a differentiable compressor), never to its weights.
    """
    _check3("reconstruction_loss", output, original)
    wo, wr = decode(output), decode(original)
    return (wo - wr).pow(2).flatten(1).mean(1)
