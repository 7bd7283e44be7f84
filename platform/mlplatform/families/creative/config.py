"""creative config: adaptive-window creative agent on EnCodec latents with ratio supervision.

All durations are seconds; frames come from the codec's real frame rate (75/s at 24 kHz) at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlplatform.config import Config, ConfigError, F, OptimSection, TrainSection, section


@dataclass
class CreativeModel:
    num_pairs: int = F(3, ge=2, le=8, help="window pairs per item; >= 2 so the ratio variance exists")
    pool_frames: int = F(50, ge=1, help="temporal pooling of each clip before the selector MLP")
    selector_hidden: int = F(512, ge=4, help="selector MLP widths: pool·128·2 -> hidden -> hidden/2 -> 5·pairs")
    ratio_min: float = F(0.75, gt=0.0, help="smallest ratio (< 1 stretches: reads less than a window)")
    ratio_max: float = F(1.5, gt=0.0, help="largest ratio (> 1 compresses: reads more than a window)")
    start_margin: float = F(0.05, ge=0.0, lt=0.5,
                            help="initial starts spread over [margin, 1-margin] of the allowed range (sigmoid "
                                 "stays off its flat tails so the start keeps a gradient)")
    tonality_kernel: int = F(7, ge=1, help="depthwise kernel of the TonalityReducer; odd")
    agent_hidden: int = F(256, ge=4, help="CompositionalCreativeAgent width")
    agent_kernel: int = F(5, ge=1, help="rhythm branch temporal kernel; odd")


@dataclass
class CreativeLoss:
    agent_weight: float = F(1.0, gt=0.0, help="weight of the mean-over-pairs agent loss (never argmin)")
    diversity_weight: float = F(0.1, ge=0.0, help="weight of -(var(ratio_in)+var(ratio_tgt)) across pairs (keeps the ratios apart)")
    reconstruction_weight: float = F(0.05, ge=0.0,
                                     help="MSE(decode(output), decode(ORIGINAL uncompressed window)): what the ratios lose")
    rhythm_weight: float = F(1.0, ge=0.0, help="agent: rhythm descriptor vs the input window")
    harmony_weight: float = F(1.0, ge=0.0, help="agent: harmony descriptor vs the target window")
    timbre_weight: float = F(1.0, ge=0.0, help="agent: timbre descriptor vs the target window")
    recon_crop_s: float = F(0.0, ge=0.0, help="decode a random crop of this many seconds of each window for the "
                                              "reconstruction (0 = the whole window); same crop on both sides")
    ratio_spread_min: float = F(0.01, ge=0.0, help="guard/ratio_spread fires when val/ratio_spread stays below this")
    guard_warmup_epochs: int = F(2, ge=0, help="epochs before guard/ratio_spread is checked (ratios start at 1.0)")


@dataclass
class CreativeData:
    clip_s: float = F(24.0, gt=0.0, help="input/target clip length")
    window_s: float = F(16.0, gt=0.0, help="window the agent sees")
    n_pairs: int = F(40, ge=2, help="generated input/target pairs (ignored with data.pairs)")
    val_fraction: float = F(0.2, gt=0.0, lt=1.0, help="pairs held out for validation (at least one)")
    seed: int = F(11, help="fixes the generated songs and the train/val split")
    pairs: str = F("", help="folder with input/*.wav + target/*.wav (or a pairs.csv); empty = generate with fluidsynth")
    codec_checkpoint: str = F("", help="local EnCodec 24 kHz state dict or codec-family checkpoint; takes "
                                       "precedence; empty = data.codec decides")
    codec: Literal["trained", "random"] = F("trained", help="without a checkpoint: trained = train the codec family's "
                                                          "data.codec_preset once on this corpus (cached); random = "
                                                          "EnCodec's architecture with RANDOM weights (opt-in)")
    codec_preset: str = F("cpu", help="codec family preset trained when no checkpoint is given (debug, cpu, full)")
    codec_overrides: str = F("", help="comma-separated key=value overrides of that codec config, e.g. "
                                      "'train.epochs=2,model.n_filters=4'")
    codec_seed: int = F(0, help="seed of the random codec weights (same in every process)")
    encode_batch: int = F(4, ge=1, help="clips per Ray Data encode batch")
    root: str = F("", help="data folder; empty = <repo>/data/creative")
    cache_mb: float = F(64.0, gt=0.0, help="most MB of the latent cache's row groups a worker holds in memory (the "
                                           "cache is read lazily: memory does not grow with the corpus)")
    prefetch: int = F(2, ge=0, help="training batches read ahead in a background thread (0 = inline)")


@dataclass
class CreativeConfig(Config):
    model: CreativeModel = section(CreativeModel)
    loss: CreativeLoss = section(CreativeLoss)
    data: CreativeData = section(CreativeData)
    train: TrainSection = section(TrainSection)
    optim: OptimSection = section(OptimSection)

    def check(self) -> None:
        m, d, lo = self.model, self.data, self.loss
        if not m.ratio_min < m.ratio_max:
            raise ConfigError(f"model.ratio_min ({m.ratio_min}) must be < model.ratio_max ({m.ratio_max})")
        if d.window_s * m.ratio_max > d.clip_s + 1e-9:
            raise ConfigError(f"data.window_s·model.ratio_max = {d.window_s * m.ratio_max:g} s exceeds data.clip_s = "
                              f"{d.clip_s:g} s: a compressed window would leave the clip")
        if m.tonality_kernel % 2 == 0 or m.agent_kernel % 2 == 0:
            raise ConfigError("model.tonality_kernel and model.agent_kernel must be odd (same-length convolutions)")
        if lo.recon_crop_s > d.window_s:
            raise ConfigError(f"loss.recon_crop_s ({lo.recon_crop_s}) must be <= data.window_s ({d.window_s})")
        if lo.diversity_weight == 0 and lo.reconstruction_weight == 0:
            # the agent loss only sees already-compressed windows, so with neither term
            # nothing gives the ratios a meaningful gradient (they drift to 1.0 or to random values)
            raise ConfigError("loss.diversity_weight and loss.reconstruction_weight are both 0: nothing supervises "
                              "the compression ratios; set at least one > 0")
        from mlplatform.families.codec.config import PRESETS

        if d.codec_preset not in PRESETS:
            raise ConfigError(f"data.codec_preset: {d.codec_preset!r} is not a codec preset; choose one of "
                              f"{', '.join(PRESETS)}")
        if lo.rhythm_weight + lo.harmony_weight + lo.timbre_weight <= 0:
            raise ConfigError("loss.rhythm_weight/harmony_weight/timbre_weight: at least one must be > 0")


def debug() -> CreativeConfig:
    """Short clips (2 s, 1.2 s windows), a handful of pairs: encoding + training in well under a minute on CPU."""
    c = CreativeConfig()
    c.data.clip_s, c.data.window_s, c.data.n_pairs, c.data.val_fraction = 2.0, 1.2, 8, 0.25
    c.model.pool_frames, c.model.selector_hidden, c.model.agent_hidden = 8, 64, 32
    c.loss.recon_crop_s = 0.1
    c.data.codec_preset = "debug"  # a tiny codec trained for a few steps (tests)
    c.loss.guard_warmup_epochs = 1
    c.train.epochs, c.train.batch_size, c.train.val_batches = 8, 2, 2
    c.train.num_threads = 1  # tiny tensors: one thread avoids oversubscription stalls on a shared 2-core box
    c.optim.lr, c.optim.scheduler = 3e-3, "none"
    return c


def full() -> CreativeConfig:
    """The published sizes: 24 s clips, 16 s windows, 3 pairs, pooling to 50 frames, 512-wide selector."""
    c = CreativeConfig()
    c.train.epochs, c.train.batch_size, c.train.val_batches = 50, 8, 8
    # the reconstruction term decodes a 2 s crop of each 16 s window (same crop both sides): the frozen
    # decoder over whole windows (3 pairs x 2 sides x 16 s per item) dominated a step (docs/benchmarks.md)
    c.loss.recon_crop_s = 2.0
    c.optim.lr = 1e-4
    return c
