"""codec config: EnCodec's SEANet encoder/decoder (24 kHz, hop 320, 128-dim latent) trained here.

Presets: ``debug`` (tests: a tiny codec, seconds), ``cpu`` (2 shared CPU cores, <= 15 min, held-out
SI-SNR >= 10 dB; docs/families/codec.md), ``full`` (EnCodec 24 kHz widths, for GPUs).
All durations are seconds; samples and frames come from the sample rate and the hop at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlplatform.config import Config, ConfigError, F, OptimSection, TrainSection, section

SAMPLE_RATE = 24_000
RATIOS = (8, 5, 4, 2)  # EnCodec 24 kHz: hop 320 -> 75 latent frames/s


@dataclass
class CodecModel:
    init: Literal["unit_gain", "torch"] = F("unit_gain", help="conv init: unit_gain = std 1/sqrt(fan_in) (the round "
                                                             "trip starts at full scale; torch = PyTorch default)")
    dimension: int = F(128, ge=1, help="latent channels (EnCodec 24 kHz: 128; creative reads it from the codec)")
    n_filters: int = F(32, ge=1, help="SEANet base width (EnCodec: 32; channels double at each of the 4 downsamplings)")
    n_residual_layers: int = F(1, ge=0, le=4, help="SEANet residual blocks per resolution")
    lstm: int = F(2, ge=0, le=4, help="LSTM layers at the latent (EnCodec: 2; 0 = none, cheaper on CPU)")
    norm: Literal["weight_norm", "none"] = F("weight_norm", help="convolution normalisation (EnCodec: weight_norm)")
    quantizer: Literal["none", "rvq"] = F("none", help="none: continuous bottleneck (what creative consumes); "
                                                      "rvq: residual vector quantiser (bitrate sweeps)")
    n_q: int = F(8, ge=1, le=32, help="RVQ codebooks (bitrate = n_q·log2(codebook_size)·75 bit/s)")
    codebook_size: int = F(1024, ge=2, help="entries per RVQ codebook")
    kmeans_init: bool = F(True, help="RVQ codebooks initialised by k-means on the first batch")
    dead_code_threshold: float = F(2.0, ge=0.0, help="EMA usage below which an RVQ code is revived from the batch")


@dataclass
class CodecLoss:
    l1_weight: float = F(1.0, ge=0.0, help="waveform L1 (what SI-SNR rewards: the phase)")
    stft_weight: float = F(1.0, ge=0.0, help="multi-resolution STFT loss (linear + log magnitude)")
    stft_windows: str = F("256,512,1024,2048", help="comma-separated STFT window lengths (samples, hop = window/4)")
    si_snr_weight: float = F(0.0, ge=0.0, help="−SI-SNR (dB, bounded ±80): the phase-sensitive term that makes a "
                                              "small codec learn the waveform in minutes (docs/families/codec.md)")
    commit_weight: float = F(1.0, ge=0.0, help="RVQ commitment loss (only with model.quantizer=rvq)")


@dataclass
class CodecData:
    wavs: str = F("", help="folder of audio files (recursive .wav/.flac, any rate: resampled to 24 kHz); "
                          "empty = generate music with fluidsynth")
    n_clips: int = F(48, ge=2, help="generated clips (ignored with data.wavs)")
    clip_s: float = F(8.0, gt=0.0, help="generated clip length; from data.wavs the first clip_s of each file")
    segment_s: float = F(0.5, gt=0.0, help="training crop length (random crops of the training clips)")
    val_clips: int = F(6, ge=1, help="clips held out for validation (whole clips of val_s)")
    val_s: float = F(2.0, gt=0.0, help="held-out excerpt length scored by validation")
    seed: int = F(5, help="fixes the generated songs and the train/val split")
    root: str = F("", help="data folder; empty = <repo>/data/codec")


@dataclass
class CodecConfig(Config):
    model: CodecModel = section(CodecModel)
    loss: CodecLoss = section(CodecLoss)
    data: CodecData = section(CodecData)
    train: TrainSection = section(TrainSection)
    optim: OptimSection = section(OptimSection)

    def check(self) -> None:
        d, lo = self.data, self.loss
        if d.segment_s > d.clip_s or d.val_s > d.clip_s:
            raise ConfigError(f"data.segment_s ({d.segment_s}) and data.val_s ({d.val_s}) must be <= data.clip_s "
                              f"({d.clip_s})")
        if d.val_clips >= d.n_clips and not d.wavs:
            raise ConfigError(f"data.val_clips ({d.val_clips}) must be < data.n_clips ({d.n_clips})")
        try:
            wins = stft_windows(self)
        except ValueError:
            raise ConfigError(f"loss.stft_windows: {lo.stft_windows!r} is not a comma-separated list of "
                              f"integers >= 16") from None
        if lo.stft_weight > 0 and max(wins) > int(d.segment_s * SAMPLE_RATE):
            raise ConfigError(f"loss.stft_windows: largest window {max(wins)} exceeds data.segment_s "
                              f"({int(d.segment_s * SAMPLE_RATE)} samples)")
        if lo.l1_weight + lo.stft_weight + lo.si_snr_weight <= 0:
            raise ConfigError("loss.l1_weight and loss.stft_weight are both 0: nothing reconstructs the audio")


def stft_windows(cfg: CodecConfig) -> tuple[int, ...]:
    wins = tuple(int(w) for w in cfg.loss.stft_windows.split(",") if w.strip())
    if not wins or min(wins) < 16:
        raise ValueError(cfg.loss.stft_windows)
    return wins


def debug() -> CodecConfig:
    """Tests: a tiny codec (n_filters 4, no LSTM) on 8 short clips; trains in seconds, encodes nothing well."""
    c = CodecConfig()
    c.model.n_filters, c.model.lstm, c.model.n_q, c.model.codebook_size = 4, 0, 2, 64
    c.data.n_clips, c.data.clip_s, c.data.segment_s, c.data.val_clips, c.data.val_s = 8, 2.0, 0.25, 2, 1.0
    c.loss.stft_windows = "256,512,1024"
    c.train.epochs, c.train.steps_per_epoch, c.train.batch_size, c.train.val_batches = 2, 4, 4, 1
    c.train.num_threads = 1
    c.optim.lr, c.optim.scheduler = 3e-3, "none"
    return c


def cpu() -> CodecConfig:
    """2 shared CPU cores, <= 15 min: n_filters 8, no LSTM, one thread (docs/families/codec.md: why)."""
    c = CodecConfig()
    c.model.n_filters, c.model.lstm, c.model.norm = 8, 0, "none"
    # the STFT term costs ~30% of a step (0.43 vs 0.31 s CPU) but without it the held-out mel distance
    # was 1.52 after 360 steps (0.45-0.5 with it): kept, the codec must encode what creative listens to
    c.loss.l1_weight, c.loss.stft_weight, c.loss.si_snr_weight = 10.0, 0.3, 1.0
    # 1 s crops x 4 (the same audio per step as 0.5 s x 8): 11.35/11.87/11.80 dB over 3 seeds vs 9.16/9.30/9.35
    # (docs/families/codec.md, "Screened on a GPU"); 0.75 s x 6 and 2 s x 2 were no better than 0.5 s x 8
    c.data.n_clips, c.data.clip_s, c.data.segment_s, c.data.val_clips, c.data.val_s = 48, 8.0, 1.0, 6, 2.0
    c.train.epochs, c.train.steps_per_epoch, c.train.batch_size, c.train.val_batches = 30, 60, 4, 1
    c.train.num_threads = 1  # 2 threads on a loaded 2-core box ran 10x slower per step (measured)
    c.optim.lr, c.optim.scheduler, c.optim.min_lr_ratio = 3e-3, "cosine", 0.1
    c.optim.schedule_unit, c.optim.warmup = "step", 60  # cosine per optimizer step after a 60-step warm-up
    return c


def full() -> CodecConfig:
    """EnCodec 24 kHz widths (n_filters 32, 2 LSTM layers, 14.8 M params with the decoder), for GPUs."""
    c = CodecConfig()
    c.data.n_clips, c.data.clip_s, c.data.segment_s, c.data.val_clips, c.data.val_s = 400, 24.0, 1.0, 16, 4.0
    c.train.epochs, c.train.steps_per_epoch, c.train.batch_size, c.train.val_batches = 100, 1000, 16, 2
    c.optim.lr = 3e-4
    return c


PRESETS = {"debug": debug, "cpu": cpu, "full": full}
