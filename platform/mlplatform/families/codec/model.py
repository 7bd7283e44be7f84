"""The codec: EnCodec's own SEANet encoder/decoder (``encodec.modules``), optional residual VQ.

``CodecNet.encode`` gives the continuous pre-quantisation latents ``[B, D, T]`` (T = N / 320 at 24 kHz),
the representation ``creative`` consumes; ``forward`` runs encoder -> (quantiser) -> decoder.
:func:`arch_config` is the part of the family config that fixes the architecture; a checkpoint holds it
next to the weights so :func:`build_from_arch` rebuilds the matching model (``creative``'s loader uses it).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from mlplatform.data.torchaudio_compat import import_encodec
from mlplatform.families.codec.config import RATIOS, SAMPLE_RATE

RUN_FILE = "codec_run.json"  # beside state.pt: the MLflow run that trained these weights (creative tags it)
ARCH_KEYS = ("init", "dimension", "n_filters", "n_residual_layers", "lstm", "norm", "quantizer", "n_q", "codebook_size",
             "kmeans_init", "dead_code_threshold")


def arch_config(cfg: Any) -> dict[str, Any]:
    """What fixes the architecture: model.* keys + sample rate + ratios (stored beside the weights)."""
    return {**{k: getattr(cfg.model, k) for k in ARCH_KEYS}, "sample_rate": SAMPLE_RATE, "ratios": list(RATIOS)}


def arch_config_from_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same from a resolved config dict (a checkpoint's ``config``)."""
    model = {"init": "torch", **cfg["model"]}
    return {**{k: model[k] for k in ARCH_KEYS}, "sample_rate": SAMPLE_RATE, "ratios": list(RATIOS)}


class CodecNet(nn.Module):
    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        import_encodec()  # encodec imports torchaudio: through the compat shim (docs/stack.md)
        from encodec.modules import SEANetDecoder, SEANetEncoder

        self.arch = dict(arch)
        self.sample_rate = int(arch["sample_rate"])
        kw = dict(dimension=arch["dimension"], n_filters=arch["n_filters"], ratios=list(arch["ratios"]),
                  n_residual_layers=arch["n_residual_layers"], lstm=arch["lstm"], norm=arch["norm"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # weight_norm deprecation, one per conv
            self.encoder = SEANetEncoder(**kw)
            self.decoder = SEANetDecoder(**kw)
        if arch["init"] == "unit_gain":
            unit_gain_init_(self.encoder)
            unit_gain_init_(self.decoder)
        self.hop = int(math.prod(arch["ratios"]))
        self.frame_rate = self.sample_rate / self.hop
        self.quantizer = None
        if arch["quantizer"] == "rvq":
            from vector_quantize_pytorch import ResidualVQ

            self.quantizer = ResidualVQ(dim=arch["dimension"], num_quantizers=arch["n_q"],
                                        codebook_size=arch["codebook_size"], kmeans_init=arch["kmeans_init"],
                                        kmeans_iters=10, threshold_ema_dead_code=arch["dead_code_threshold"],
                                        decay=0.99, commitment_weight=1.0)

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes (0 for the continuous bottleneck)."""
        if self.quantizer is None:
            return 0.0
        return self.arch["n_q"] * math.log2(self.arch["codebook_size"]) * self.frame_rate

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Continuous latents. Shape: [B, 1, N] -> [B, D, ceil(N / hop)]."""
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a mono waveform [B, 1, N], got {tuple(wav.shape)}")
        return self.encoder(wav)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(quantised latents [B, D, T], commitment loss (scalar), codes [B, T, n_q] or None)."""
        if self.quantizer is None:
            return z, z.new_zeros(()), None
        zq, codes, commit = self.quantizer(z.transpose(1, 2))
        return zq.transpose(1, 2), commit.sum(), codes

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Shape: [B, 1, N] -> ``recon`` [B, 1, N] (trimmed to N), ``z``/``zq`` [B, D, T], ``codes`` [B, T, n_q]."""
        z = self.encode(wav)
        zq, commit, codes = self.quantize(z)
        y = self.decoder(zq)[..., : wav.shape[-1]]
        return {"recon": y, "z": z, "zq": zq, "commit": commit, "codes": codes}


def unit_gain_init_(module: nn.Module) -> None:
    """Every convolution drawn with std 1/sqrt(fan_in) (fan_in = in·k/stride for transposed ones), biases 0.

    Why: with torch's default init (kaiming-uniform, a=sqrt(5)) each of SEANet's ~20 stacked convolutions
    scales the signal by about 0.58, the round trip starts near silence and training on CPU sat at
    −50 dB SI-SNR for hundreds of steps; with unit gain a one-batch overfit reached +8.5 dB in 50 steps
    where the default init had −19 dB (docs/families/codec.md).
    """
    for m in module.modules():
        if not isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            continue
        k = m.kernel_size[0]
        fan = m.in_channels * k / m.stride[0] if isinstance(m, nn.ConvTranspose1d) else m.in_channels * k / m.groups
        with torch.no_grad():
            w = torch.randn_like(m.weight_v if hasattr(m, "weight_v") else m.weight) / math.sqrt(fan)
            if hasattr(m, "weight_v"):  # weight_norm: w = g · v / |v|
                m.weight_v.copy_(w)
                m.weight_g.copy_(w.flatten(1).norm(dim=1).view_as(m.weight_g))
            else:
                m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()


def build_from_arch(arch: dict[str, Any]) -> CodecNet:
    missing = [k for k in (*ARCH_KEYS, "sample_rate", "ratios") if k not in arch]
    if missing:
        raise ValueError(f"codec architecture config lacks {', '.join(missing)}")
    return CodecNet(arch)


def build_model(cfg: Any) -> CodecNet:
    return build_from_arch(arch_config(cfg))
