"""bf16 autocast: every family trains and validates under it. The GPU default (``train.amp=auto``) is
bf16, and two families crashed on their first step on an H200 (riscov: torch.complex of bf16 products;
codec: an FFT of the bf16 decoder output). PyTorch's CPU autocast refuses the same ops, so asking for
``train.amp=bf16`` on a CPU runs that path here, without a GPU."""
from __future__ import annotations

import math

import pytest
import torch

from mlplatform.registry import build_config, get_family
from mlplatform.train.executors import run_local
from mlplatform.train.setup import _amp

FAMILIES = ["riscov", "tse", "codec", "creative", "vqvae"]


def test_cpu_autocast_only_when_asked():
    cpu, cfg = torch.device("cpu"), build_config("riscov", "debug")
    assert _amp(cfg.override(["train.amp=bf16"]), cpu) == (True, torch.bfloat16)
    assert _amp(cfg.override(["train.amp=auto"]), cpu) == (False, torch.float32)  # auto: GPU only
    assert _amp(cfg.override(["train.amp=fp16"]), cpu) == (False, torch.float32)
    assert _amp(cfg.override(["train.amp=off"]), torch.device("cuda")) == (False, torch.float32)
    assert _amp(cfg.override(["train.amp=auto"]), torch.device("cuda")) == (True, torch.bfloat16)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_under_bf16_autocast(family, home, tmp_path):
    fam = get_family(family)
    cfg = build_config(family, "debug", ["train.epochs=1", "train.steps_per_epoch=2", "train.val_batches=1",
                                         "train.amp=bf16", "train.early_stop_patience=0"])
    if fam.prepare_data is not None:
        fam.prepare_data(cfg)
    summary, rep = run_local({"family": family, "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "run")})
    assert summary["steps"] == 2
    losses = [v for k, v in rep.history[0].items() if k.startswith("train/") and isinstance(v, float)]
    assert losses and all(math.isfinite(v) for v in losses)


def test_codec_spectral_losses_take_bf16():
    """On CPU the debug codec's decoder output stays float32 under autocast; on a GPU it is bf16. The
    spectral terms must take it (they compute in float32)."""
    from mlplatform.families.codec.losses import lowpass, mel_distance, multi_res_stft

    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(2, 1, 4000, generator=g).bfloat16() for _ in range(2))
    stft = multi_res_stft(y, x, (256, 512))
    mel = mel_distance(y, x, 24000)
    assert stft.dtype == torch.float32 and math.isfinite(float(stft)) and float(stft) > 0
    assert mel.shape == (2,) and bool(torch.isfinite(mel).all())
    assert lowpass(x, 24000, 4000.0).shape == x.shape
