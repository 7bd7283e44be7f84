#!/usr/bin/env python
"""Run a trained creative agent on one input/target pair and write the decoded result.

  python jobs/infer.py --family creative --checkpoint runs/.../best --input a.wav --target b.wav \\
      --mode best --out out.wav

Modes (the logic is mlplatform.families.creative.infer):
  best      per item, the pair with the lowest agent loss
  ensemble  the mean of all pairs' output latents
  pair:N    pair N (0-based)
The wavs are read with soundfile, mixed to mono, resampled to 24 kHz and cut to the trained clip length
(data.clip_s); the output latent is decoded through EnCodec (the checkpoint's codec unless --codec-checkpoint).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors


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

    import soundfile as sf

    from mlplatform.families.creative.infer import infer

    res = infer(args.checkpoint, args.input, args.target, args.mode, args.codec_checkpoint)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, res.audio, res.sample_rate)
    print(json.dumps({"out": args.out, "mode": args.mode, "seconds": round(len(res.audio) / res.sample_rate, 3),
                      "codec_pretrained": res.codec_pretrained, "pairs": res.pairs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
