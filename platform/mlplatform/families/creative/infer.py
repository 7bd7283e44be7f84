"""Inference with a trained creative agent: one input/target clip pair -> one decoded output clip.

The agent proposes ``model.num_pairs`` window pairs; a mode picks how they become one output
(docs/families/creative.md, "Inference"):
  best      per item, the pair with the lowest agent loss
  ensemble  the mean of all pairs' output latents
  pair:N    pair N (0-based)
The wavs are read with soundfile, mixed to mono, resampled to the codec's rate and cut to the trained
clip length (``data.clip_s``); the output latent is decoded through the frozen EnCodec.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from mlplatform.config import ConfigError
from mlplatform.families.creative.pretrained import codec_for
from mlplatform.families.creative.config import CreativeConfig
from mlplatform.families.creative.family import build_model, forward_and_losses
from mlplatform.families.creative.music import BadAudio, load_clip
from mlplatform.train.checkpoint import load_checkpoint


@dataclass
class Inference:
    audio: np.ndarray  # [T] float32 mono at ``sample_rate``
    sample_rate: int
    codec_pretrained: bool
    pairs: list[dict[str, Any]] = field(default_factory=list)  # per pair: agent loss, window starts, ratios
    codec_source: str = ""
    codec_run_id: str = ""
    latents: Any = None  # (input [C, T], target [C, T]) for the window plot
    params: dict[str, Any] = field(default_factory=dict)  # per pair [P]: starts, ratios, tonality
    window_frames: int = 0
    frame_rate: float = 75.0


def parse_mode(mode: str, pairs: int) -> tuple[str, int]:
    """``best`` | ``ensemble`` | ``pair:N`` -> (kind, pair index or -1); a bad mode is a ConfigError."""
    if mode in ("best", "ensemble"):
        return mode, -1
    if mode.startswith("pair:"):
        try:
            n = int(mode.split(":", 1)[1])
        except ValueError:
            n = -1
        if 0 <= n < pairs:
            return "pair", n
        raise ConfigError(f"--mode {mode}: pair index must be in 0..{pairs - 1}")
    raise ConfigError(f"--mode {mode!r}: choose best, ensemble or pair:N")


def _pair_rows(out: dict[str, torch.Tensor], agent: torch.Tensor, frame_rate: float) -> list[dict[str, Any]]:
    """Item 0's windows per pair, starts in seconds: what the agent chose, for the user to listen along."""
    return [{"pair": i, "agent_loss": round(float(agent[0, i]), 5),
             "start_input_s": round(float(out["start_input"][0, i]) / frame_rate, 3),
             "start_target_s": round(float(out["start_target"][0, i]) / frame_rate, 3),
             "ratio_input": round(float(out["ratio_input"][0, i]), 4),
             "ratio_target": round(float(out["ratio_target"][0, i]), 4),
             "tonality_strength": round(float(out["tonality_strength"][0, i]), 4)} for i in range(agent.shape[1])]


def infer(checkpoint: str, input_wav: str, target_wav: str, mode: str = "best", codec_checkpoint: str | None = None,
          log: Callable[[str], None] = functools.partial(print, flush=True)) -> Inference:
    """Load ``checkpoint`` (weights_only), run the agent on the two clips and decode the chosen output.

    Bad input (unknown mode, unusable wav) raises ConfigError with a one-line message; a bad checkpoint
    raises CheckpointError.
    """
    payload = load_checkpoint(checkpoint, "creative")  # weights_only=True inside
    cfg = CreativeConfig.from_dict(payload["config"])
    if codec_checkpoint is not None:
        cfg = cfg.override({"data.codec_checkpoint": codec_checkpoint})
    kind, idx = parse_mode(mode, cfg.model.num_pairs)
    codec = codec_for(cfg)  # the codec the model was trained with (same resolution as training)
    n = codec.samples(cfg.data.clip_s)
    try:
        wavs = [load_clip(f, codec.sample_rate, n) for f in (input_wav, target_wav)]
    except BadAudio as e:
        raise ConfigError(str(e)) from None
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    model.eval()
    log(f"[infer] {checkpoint}: {cfg.model.num_pairs} pairs, {cfg.data.window_s:g} s windows of "
        f"{cfg.data.clip_s:g} s clips at {codec.frame_rate:g} frames/s; mode {mode}")
    with torch.no_grad():
        z = codec.encode(torch.from_numpy(np.stack(wavs))[:, None])
        # no random reconstruction crop: inference draws nothing from the RNG, so it is repeatable
        f = forward_and_losses(model, z[0:1], z[1:2], cfg.override({"loss.recon_crop_s": 0.0}), codec)
        out, agent = f["out"], f["agent_items"]  # [1, P, C, W], [1, P]
        if kind == "ensemble":
            latent = out["output"].mean(1)
        else:
            chosen = int(agent[0].argmin()) if kind == "best" else idx
            latent = out["output"][:, chosen]
        audio = codec.decode(latent)[0, 0].cpu().numpy()
    params = {k: v[0] for k, v in out.items() if v.dim() == 2}
    return Inference(audio, codec.sample_rate, codec.pretrained, _pair_rows(out, agent, codec.frame_rate),
                     codec.source, codec.run_id, (z[0], z[1]), params, model.window_frames, codec.frame_rate)
