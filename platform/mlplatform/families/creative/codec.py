"""EnCodec (24 kHz) wrapper: waveform <-> continuous pre-quantisation latents ``[B, 128, T]``.

Nothing is downloaded. ``load_codec(checkpoint)`` loads real weights from a local file with
``torch.load(..., weights_only=True)``; without one, the *real* architecture
(``EncodecModel.encodec_model_24khz(pretrained=False)``) is built with random weights drawn from a fixed
seed, so every process (Ray Data encoders, training workers, inference) builds the identical codec,
and a loud warning says the latents are not those of a trained codec (callers tag MLflow runs
``codec.pretrained=false``).

The frame rate comes from the model (``sample_rate / prod(encoder.ratios)`` = 75 frames/s), and all
durations are converted with :meth:`Codec.frames` / :meth:`Codec.samples` at run time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlplatform.config import ConfigError
from mlplatform.data.torchaudio_compat import import_encodec

_LOG = logging.getLogger(__name__)
RANDOM_WEIGHTS_WARNING = ("EnCodec: no --codec-checkpoint given; using the REAL 24 kHz architecture with RANDOM "
                          "weights (seed {seed}). Latents and decoded audio are NOT those of a trained codec "
                          "(MLflow tag codec.pretrained=false).")
_CACHE: dict[tuple[str, int], "Codec"] = {}


def file_digest(path: str | Path, limit: int = 1 << 20) -> str:
    """Cheap identity of a file: size + sha256 of its first MiB (for cache fingerprints)."""
    p = Path(path)
    h = hashlib.sha256(str(p.stat().st_size).encode())
    with open(p, "rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()[:16]


class Codec(nn.Module):
    """A frozen EnCodec 24 kHz model used as an encoder/decoder of continuous latents."""

    def __init__(self, model: nn.Module, pretrained: bool, identity: str, source: str = "", run_id: str = ""):
        super().__init__()
        self.model = model
        self.pretrained = pretrained
        self.identity = identity  # goes into cache fingerprints: other weights -> other cache
        self.source = source or ("random" if not pretrained else "encodec_state_dict")  # MLflow tag codec.source
        self.run_id = run_id  # the codec family's MLflow run that trained the weights (tag codec.run_id)
        self.sample_rate = int(model.sample_rate)
        self.hop = int(math.prod(model.encoder.ratios))
        self.frame_rate = self.sample_rate / self.hop  # 75.0 for the 24 kHz model
        self.dim = int(model.encoder.dimension)
        self.freeze()

    def freeze(self) -> "Codec":
        """Frozen for good: no parameter trains, and ``train()`` cannot switch it out of eval mode."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        nn.Module.train(self, False)  # the wrapper and every submodule
        return self

    def train(self, mode: bool = True) -> "Codec":  # noqa: D401 - keep eval mode whatever the caller asks
        return super().train(False)

    # -- durations -------------------------------------------------------------------------------
    def frames(self, seconds: float) -> int:
        """Latent frames of ``seconds`` of audio (75 frames/s at 24 kHz)."""
        return int(round(seconds * self.frame_rate))

    def samples(self, seconds: float) -> int:
        """Waveform samples of ``seconds`` rounded to whole latent frames (so encode gives frames(s))."""
        return self.frames(seconds) * self.hop

    # -- transforms ------------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Continuous pre-quantisation latents. Shape: [B, 1, N] or [B, N] waveform -> [B, 128, ceil(N/hop)]."""
        if wav.dim() == 2:
            wav = wav[:, None]
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a mono waveform [B, 1, N] or [B, N], got {tuple(wav.shape)}")
        return self.model.encoder(wav)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Waveform from continuous latents (no quantisation). Shape: [B, 128, T] -> [B, 1, T·hop]."""
        if latents.dim() != 3 or latents.shape[1] != self.dim:
            raise ValueError(f"expected latents [B, {self.dim}, T], got {tuple(latents.shape)}")
        if not (torch.is_grad_enabled() and latents.requires_grad):
            return self.model.decoder(latents)
        # gradients flow through the frozen decoder to the selector: cuDNN's LSTM backward refuses a
        # forward run in eval mode ("cudnn RNN backward can only be called in training mode", seen on an
        # H200). The decoder's LSTMs have no dropout, so train mode computes the same output.
        lstms = [m for m in self.model.decoder.modules() if isinstance(m, nn.LSTM) and not m.training]
        if any(m.dropout for m in lstms):
            raise RuntimeError("codec decoder LSTM has dropout: train mode would change its output")
        for m in lstms:
            m.training = True
        try:
            return self.model.decoder(latents)
        finally:
            for m in lstms:
                m.training = False


def _build_model(seed: int) -> nn.Module:
    enc = import_encodec()
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", FutureWarning)  # weight_norm deprecation, 15 per build
        torch.manual_seed(seed)  # random weights, but the same ones in every process
        return enc.EncodecModel.encodec_model_24khz(pretrained=False)


def load_codec(checkpoint: str = "", seed: int = 0, *, cache: bool = True, quiet: bool = False) -> Codec:
    """The 24 kHz codec: real weights from ``checkpoint`` (a local state-dict file), else random weights.

    Raises ConfigError (one line) when the checkpoint is missing or does not fit the architecture.
    Results are cached per process (a Ray worker encodes many batches with one build).
    """
    key = (str(Path(checkpoint).resolve()) if checkpoint else "", int(seed))
    if cache and key in _CACHE:
        return _CACHE[key]
    if checkpoint:
        codec = _from_file(Path(checkpoint), seed)
    else:
        model = _build_model(seed)
        if not quiet:
            msg = RANDOM_WEIGHTS_WARNING.format(seed=seed)
            _LOG.warning(msg)
            print(f"WARNING: {msg}", flush=True)
        codec = Codec(model, pretrained=False, identity=f"random:{seed}")
    if cache:
        _CACHE[key] = codec
    return codec


def _trained_here(payload: dict[str, Any], path: Path) -> Codec:
    """A checkpoint of the ``codec`` family: its architecture config is stored beside the weights."""
    from mlplatform.families.codec.model import RUN_FILE, arch_config_from_dict, build_from_arch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = build_from_arch(arch_config_from_dict(payload["config"]))
    model.load_state_dict(payload["model"])
    side = path.parent / RUN_FILE
    run_id = json.loads(side.read_text()).get("mlflow_run_id", "") if side.is_file() else ""
    return Codec(model, pretrained=True, identity=f"codec:{file_digest(path)}", source="codec_family", run_id=run_id)


def _from_file(p: Path, seed: int) -> Codec:
    """A local file: a ``codec``-family checkpoint (folder or state.pt) or an EnCodec 24 kHz state dict."""
    if p.is_dir():
        p = p / "state.pt"
    if not p.is_file():
        raise ConfigError(f"data.codec_checkpoint: {p} does not exist (give a local EnCodec 24 kHz state-dict "
                          f"file, e.g. encodec_24khz-d7cc33bc.th, or a checkpoint of the codec family)")
    try:
        state: Any = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and state.get("family") == "codec" and "config" in state:
            return _trained_here(state, p)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        model = _build_model(seed)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - foreign/corrupt file: one line, no traceback
        raise ConfigError(f"data.codec_checkpoint: {p} is not an EnCodec 24 kHz state dict nor a codec-family "
                          f"checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:140]})") from None
    return Codec(model, pretrained=True, identity=f"file:{file_digest(p)}")
