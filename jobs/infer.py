#!/usr/bin/env python
"""Run a trained creative agent on one input/target pair and write the decoded result.

  python jobs/infer.py --family creative --checkpoint runs/.../best --input a.wav --target b.wav \\
      --mode best --out out.wav

Modes (the three ways to use the agent's pairs; docs/families/creative.md):
  best      option B: per item, the pair with the lowest agent loss
  ensemble  option A: the mean of all pairs' output latents
  pair:N    option C: pair N (0-based)
The wavs are read with soundfile, mixed to mono, resampled to 24 kHz and cut to the trained clip length
(data.clip_s); the output latent is decoded through EnCodec (the checkpoint's codec unless --codec-checkpoint).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors


def parse_mode(mode: str, pairs: int) -> tuple[str, int]:
    if mode in ("best", "ensemble"):
        return mode, -1
    if mode.startswith("pair:"):
        try:
            n = int(mode.split(":", 1)[1])
        except ValueError:
            n = -1
        if 0 <= n < pairs:
            return "pair", n
        raise UsageError(f"--mode {mode}: pair index must be in 0..{pairs - 1}")
    raise UsageError(f"--mode {mode!r}: choose best, ensemble or pair:N")


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="creative", help="only creative has an inference job (default)")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (or its state.pt) from jobs/train.py")
    p.add_argument("--input", required=True, help="input clip (rhythm source), any rate, >= data.clip_s long")
    p.add_argument("--target", required=True, help="target clip (harmony/timbre source)")
    p.add_argument("--mode", default="best", help="best | ensemble | pair:N (default best)")
    p.add_argument("--out", required=True, help="output wav (24 kHz mono)")
    p.add_argument("--codec-checkpoint", default=None,
                   help="local EnCodec 24 kHz weights; default: the codec the model was trained with")
    args = p.parse_args(argv)
    if args.family != "creative":
        raise UsageError(f"--family {args.family}: jobs/infer.py supports only the creative family")

    import numpy as np
    import soundfile as sf
    import torch

    from mlplatform.data.codec import load_codec
    from mlplatform.data.music import BadAudio, load_clip
    from mlplatform.families.creative.config import CreativeConfig
    from mlplatform.families.creative.family import build_model, forward_and_losses
    from mlplatform.train.checkpoint import load_checkpoint

    payload = load_checkpoint(args.checkpoint, "creative")  # weights_only=True inside
    cfg = CreativeConfig.from_dict(payload["config"])
    if args.codec_checkpoint is not None:
        cfg = cfg.override({"data.codec_checkpoint": args.codec_checkpoint})
    kind, idx = parse_mode(args.mode, cfg.model.num_pairs)
    codec = load_codec(cfg.data.codec_checkpoint, cfg.data.codec_seed)
    n = codec.samples(cfg.data.clip_s)
    try:
        wavs = [load_clip(f, codec.sample_rate, n) for f in (args.input, args.target)]
    except BadAudio as e:
        raise UsageError(str(e)) from None
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    model.eval()
    print(f"[infer] {args.checkpoint}: {cfg.model.num_pairs} pairs, {cfg.data.window_s:g} s windows of "
          f"{cfg.data.clip_s:g} s clips at {codec.frame_rate:g} frames/s; mode {args.mode}", flush=True)
    with torch.no_grad():
        z = codec.encode(torch.from_numpy(np.stack(wavs))[:, None])
        f = forward_and_losses(model, z[0:1], z[1:2], cfg.override({"loss.recon_crop_s": 0.0}), codec)
        out, agent = f["out"], f["agent_items"]  # [1, P, C, W], [1, P]
        if kind == "ensemble":
            latent = out["output"].mean(1)
        else:
            chosen = int(agent[0].argmin()) if kind == "best" else idx
            latent = out["output"][:, chosen]
        audio = codec.decode(latent)[0, 0].cpu().numpy()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, audio, codec.sample_rate)
    fr = codec.frame_rate
    pairs = [{"pair": i, "agent_loss": round(float(agent[0, i]), 5),
              "start_input_s": round(float(out["start_input"][0, i]) / fr, 3),
              "start_target_s": round(float(out["start_target"][0, i]) / fr, 3),
              "ratio_input": round(float(out["ratio_input"][0, i]), 4),
              "ratio_target": round(float(out["ratio_target"][0, i]), 4),
              "tonality_strength": round(float(out["tonality_strength"][0, i]), 4)} for i in range(agent.shape[1])]
    print(json.dumps({"out": args.out, "mode": args.mode, "seconds": round(len(audio) / codec.sample_rate, 3),
                      "codec_pretrained": codec.pretrained, "pairs": pairs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
