"""Adaptive-window creative agent on continuous EnCodec latents ``[B, 128, T]``.

WindowSelector -> TemporalCompressor -> TonalityReducer (input, target) -> shared CompositionalCreativeAgent.
All ``P`` window pairs go through the agent in ONE batched forward (pairs folded into the batch).
Frames are never hard-coded: the clip length is read from the latents, the window length is given
in frames by the caller (``codec.frames(cfg.data.window_s)``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import nn

PARAM_NAMES = ("start_input", "start_target", "ratio_input", "ratio_target", "tonality_strength")


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class WindowSelector(nn.Module):
    """Pooled input+target latents -> MLP -> per pair (start_in, start_tgt, ratio_in, ratio_tgt, tonality).

    Starts are fractions of the allowed range ``[0, T - W·ratio]`` (so every window stays inside the
    clip), ratios lie in ``[ratio_min, ratio_max]``, tonality strength in ``[0, 1]``. Initialisation:
    the last layer's weights are zero and its bias puts the starts spread over the range
    (pair i at margin + i·(1-2·margin)/(P-1)), every ratio at 1.0 and every tonality at 0.5.
    """

    def __init__(self, dim: int, pool_frames: int, hidden: int, num_pairs: int, ratio_min: float,
                 ratio_max: float, start_margin: float = 0.05):
        super().__init__()
        self.pool_frames, self.num_pairs = pool_frames, num_pairs
        self.ratio_min, self.ratio_max = float(ratio_min), float(ratio_max)
        width = 2 * dim * pool_frames
        self.norm = nn.LayerNorm(width, elementwise_affine=False)  # latent scale differs between codecs
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, max(2, hidden // 2)),
                                 nn.GELU(), nn.Linear(max(2, hidden // 2), 5 * num_pairs))
        last = self.mlp[-1]
        nn.init.zeros_(last.weight)
        fr = [start_margin + i * (1 - 2 * start_margin) / (num_pairs - 1) for i in range(num_pairs)]
        r1 = (1.0 - self.ratio_min) / (self.ratio_max - self.ratio_min)  # ratio 1.0 (clamped into the range)
        bias = torch.tensor([[_logit(f), _logit(f), _logit(r1), _logit(r1), 0.0] for f in fr])
        with torch.no_grad():
            last.bias.copy_(bias.flatten())

    def forward(self, x_in: torch.Tensor, x_tgt: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
        """Shape: x_in [B, C, T_in], x_tgt [B, C, T_tgt], window W frames -> dict of [B, P] tensors
        (starts in frames as floats, ratios, tonality strength, and the start fractions)."""
        b = x_in.shape[0]
        feats = torch.cat([Fn.adaptive_avg_pool1d(x_in, self.pool_frames).flatten(1),
                           Fn.adaptive_avg_pool1d(x_tgt, self.pool_frames).flatten(1)], dim=1)
        raw = self.mlp(self.norm(feats)).view(b, self.num_pairs, 5)
        span = self.ratio_max - self.ratio_min
        ratio_in = self.ratio_min + span * torch.sigmoid(raw[..., 2])
        ratio_tgt = self.ratio_min + span * torch.sigmoid(raw[..., 3])
        frac_in, frac_tgt = torch.sigmoid(raw[..., 0]), torch.sigmoid(raw[..., 1])
        # clamp to the clip: the window reads W·ratio frames, so it may start at most T - W·ratio
        start_in = frac_in * (x_in.shape[-1] - window * ratio_in).clamp_min(0.0)
        start_tgt = frac_tgt * (x_tgt.shape[-1] - window * ratio_tgt).clamp_min(0.0)
        return {"start_input": start_in, "start_target": start_tgt, "ratio_input": ratio_in,
                "ratio_target": ratio_tgt, "tonality_strength": torch.sigmoid(raw[..., 4]),
                "start_frac_input": frac_in, "start_frac_target": frac_tgt}


class TemporalCompressor(nn.Module):
    """Extract ``W·ratio`` frames from ``start`` and resample them to ``W`` frames (no parameters).

    Linear interpolation through ``grid_sample``, so the output is differentiable in BOTH the start
    and the ratio (integer slicing would silently cut the start's gradient). ratio > 1 compresses
    (faster rhythm), ratio < 1 stretches.
    """

    def forward(self, x: torch.Tensor, start: torch.Tensor, ratio: torch.Tensor, window: int) -> torch.Tensor:
        """Shape: x [N, C, T], start [N] frames, ratio [N], window W -> [N, C, W]."""
        if x.dim() != 3 or start.shape != (x.shape[0],) or ratio.shape != (x.shape[0],):
            raise ValueError(f"expected x [N,C,T], start [N], ratio [N]; got {tuple(x.shape)}, "
                             f"{tuple(start.shape)}, {tuple(ratio.shape)}")
        t = x.shape[-1]
        k = torch.arange(window, device=x.device, dtype=x.dtype)
        pos = start[:, None] + k[None, :] * ratio[:, None]  # [N, W] source frame positions
        gx = 2.0 * pos / max(t - 1, 1) - 1.0
        grid = torch.stack([gx, torch.zeros_like(gx)], dim=-1)[:, None]  # [N, 1, W, 2]
        out = Fn.grid_sample(x[:, :, None, :], grid.to(x.dtype), mode="bilinear", padding_mode="border",
                             align_corners=True)
        return out[:, :, 0, :]


class TonalityReducer(nn.Module):
    """Depthwise-separable conv -> LayerNorm, mixed in by strength: ``(1-α)·x + α·(x + LN(pw(dw(x))))``.

    The LayerNorm's gain and bias start at zero, so the transform is exactly the identity at
    initialisation for every strength: no change until trained.
    """

    def __init__(self, dim: int, kernel: int = 7):
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pointwise = nn.Conv1d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim)
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """Shape: x [N, C, W], strength [N] in [0, 1] -> [N, C, W]."""
        h = self.pointwise(self.depthwise(x))
        transformed = x + self.norm(h.transpose(1, 2)).transpose(1, 2)
        a = strength[:, None, None]
        return (1 - a) * x + a * transformed


class CompositionalCreativeAgent(nn.Module):
    """Rhythm from the input window, harmony and timbre from the target window, composed into one latent.

    rhythm: temporal convolutions over the input (onsets live in frame-to-frame change);
    harmony: per-frame projection of the target; timbre: time-averaged projection of the target.
    The composition is added to the mean of the two windows, so the output starts on the latent manifold.
    """

    def __init__(self, dim: int, hidden: int, kernel: int = 5):
        super().__init__()
        self.rhythm = nn.Sequential(nn.Conv1d(dim, hidden, kernel, padding=kernel // 2), nn.GELU(),
                                    nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2))
        self.harmony = nn.Conv1d(dim, hidden, 1)
        self.timbre = nn.Conv1d(dim, hidden, 1)
        self.compose = nn.Sequential(nn.GELU(), nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
                                     nn.Conv1d(hidden, dim, 1))

    def decompose(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Shape: a, b [N, C, W] -> rhythm [N, H, W], harmony [N, H, W], timbre [N, H, 1]."""
        return {"rhythm": self.rhythm(a), "harmony": self.harmony(b), "timbre": self.timbre(b).mean(-1, keepdim=True)}

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Shape: input window a [N, C, W], target window b [N, C, W] -> output latent [N, C, W]."""
        parts = self.decompose(a, b)
        return 0.5 * (a + b) + self.compose(parts["rhythm"] + parts["harmony"] + parts["timbre"])


class AdaptiveWindowCreativeAgent(nn.Module):
    def __init__(self, dim: int, window_frames: int, num_pairs: int, pool_frames: int, selector_hidden: int,
                 ratio_min: float, ratio_max: float, start_margin: float, tonality_kernel: int,
                 agent_hidden: int, agent_kernel: int):
        super().__init__()
        self.window_frames, self.num_pairs = int(window_frames), int(num_pairs)
        self.selector = WindowSelector(dim, pool_frames, selector_hidden, num_pairs, ratio_min, ratio_max,
                                       start_margin)
        self.compressor = TemporalCompressor()
        self.tonality_input = TonalityReducer(dim, tonality_kernel)
        self.tonality_target = TonalityReducer(dim, tonality_kernel)
        self.agent = CompositionalCreativeAgent(dim, agent_hidden, agent_kernel)

    def forward(self, x_in: torch.Tensor, x_tgt: torch.Tensor, ablate: bool = False) -> dict[str, torch.Tensor]:
        """Shape: x_in [B, C, T_in], x_tgt [B, C, T_tgt] ->
        output / window_input / window_target / original_input [B, P, C, W], and [B, P] selector params.

        ``ablate``: every ratio forced to 1.0 and every tonality strength to 0 (the reliance probe: what
        do the adaptive ratios and the tonality reduction contribute?).

        ``original_input`` is the UNCOMPRESSED input window at the predicted start (ratio 1): the
        reference of the reconstruction loss.
        """
        if x_in.dim() != 3 or x_tgt.dim() != 3 or x_in.shape[:2] != x_tgt.shape[:2]:
            raise ValueError(f"expected latents [B, C, T] x2, got {tuple(x_in.shape)} and {tuple(x_tgt.shape)}")
        b, c, _ = x_in.shape
        p, w = self.num_pairs, self.window_frames
        prm = self.selector(x_in, x_tgt, w)
        if ablate:  # same start fractions, re-clamped for ratio 1 so the window stays inside the clip
            one = torch.ones_like(prm["ratio_input"])
            prm = {**prm, "ratio_input": one, "ratio_target": one,
                   "tonality_strength": torch.zeros_like(prm["tonality_strength"]),
                   "start_input": prm["start_frac_input"] * max(0.0, x_in.shape[-1] - w),
                   "start_target": prm["start_frac_target"] * max(0.0, x_tgt.shape[-1] - w)}

        def fold(x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B·P, C, T]: pairs become batch items
            return x[:, None].expand(b, p, *x.shape[1:]).reshape(b * p, *x.shape[1:])

        xi, xt = fold(x_in), fold(x_tgt)
        s_in, s_tg = prm["start_input"].reshape(-1), prm["start_target"].reshape(-1)
        r_in, r_tg = prm["ratio_input"].reshape(-1), prm["ratio_target"].reshape(-1)
        alpha = prm["tonality_strength"].reshape(-1)
        win_in = self.tonality_input(self.compressor(xi, s_in, r_in, w), alpha)
        win_tg = self.tonality_target(self.compressor(xt, s_tg, r_tg, w), alpha)
        out = self.agent(win_in, win_tg)  # one batched forward over all B·P pairs
        original = self.compressor(xi, s_in, torch.ones_like(r_in), w)

        def unfold(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, p, c, w)

        return {"output": unfold(out), "window_input": unfold(win_in), "window_target": unfold(win_tg),
                "original_input": unfold(original), **prm}
