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
    p.add_argument("--all-modes", action="store_true",
                   help="write <out stem>_best.wav, _ensemble.wav and _pair0.wav (the three inference modes) "
                        "and a window plot instead of one --mode")
    p.add_argument("--mlflow", action="store_true",
                   help="log the wavs and the window plot as artifacts of a new run in experiment "
                        "'creative-infer' (tags codec.pretrained/source/run_id)")
    args = p.parse_args(argv)
    if args.family != "creative":
        raise UsageError(f"--family {args.family}: jobs/infer.py supports only the creative family")

    import soundfile as sf

    from mlplatform.families.creative.infer import infer

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    modes = {"best": "best", "ensemble": "ensemble", "pair0": "pair:0"} if args.all_modes else {"": args.mode}
    files, res = [], None
    for tag, mode in modes.items():
        res = infer(args.checkpoint, args.input, args.target, mode, args.codec_checkpoint)
        path = out.with_name(f"{out.stem}_{tag}{out.suffix}") if tag else out
        sf.write(path, res.audio, res.sample_rate)
        files.append(str(path))
    assert res is not None
    if args.all_modes or args.mlflow:
        from mlplatform.families.creative.plots import window_plot

        files.append(str(window_plot(out.with_name(f"{out.stem}_windows.png"), res.latents[0], res.latents[1],
                                     res.params, res.window_frames, res.frame_rate, title="inference windows")))
    if args.mlflow:
        from mlplatform.tracking import mlflow_utils as mu

        cl = mu.client()
        run = cl.create_run(mu.get_or_create_experiment(cl, "creative-infer"), run_name=f"infer-{out.stem}",
                            tags={"family": "creative", "checkpoint": str(args.checkpoint),
                                  "codec.pretrained": str(res.codec_pretrained).lower(),
                                  "codec.source": res.codec_source, "codec.run_id": res.codec_run_id or "none"})
        for f in files:
            cl.log_artifact(run.info.run_id, f, "inference")
        cl.set_terminated(run.info.run_id)
        print(f"[infer] logged {len(files)} artifacts to MLflow run {run.info.run_id}", flush=True)
    print(json.dumps({"out": files, "mode": list(modes.values()), "seconds": round(len(res.audio) / res.sample_rate, 3),
                      "codec_pretrained": res.codec_pretrained, "codec_source": res.codec_source,
                      "pairs": res.pairs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
