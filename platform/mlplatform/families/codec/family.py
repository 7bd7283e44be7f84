"""The codec Family bundle: EnCodec's SEANet trained here (audiocraft's compression solver, without GAN).

loss = l1_weight·L1(wave) + stft_weight·multi-resolution STFT + si_snr_weight·(−SI-SNR, bounded ±80 dB)
(+ commit_weight·RVQ commitment). The −SI-SNR term is the one exception to "no negative terms": it is the
selection metric itself (scale-invariant, exactly bounded), so lowering it IS a better round trip.
Selection metric: ``val/si_snr`` (dB, max) on held-out excerpts, the round-trip quality that was
−55 to −81 dB with random weights (issue #14). Floors (no training): the random-weight codec of the
same architecture, and a band-limited copy of the input at the latent's information rate
(docs/families/codec.md). No ceiling: the identity is the only oracle, and its SI-SNR is unbounded.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from mlplatform.families.codec import config as C
from mlplatform.families.codec import data as D
from mlplatform.families.codec.losses import (SI_SNR_LIMIT_DB, l1_wave, lowpass, mel_distance, multi_res_stft, si_snr,
                                              si_snr_loss)
from mlplatform.families.codec.model import RUN_FILE, CodecNet, arch_config, build_from_arch, build_model
from mlplatform.protocol import Family, MetricSpec, Probe, StepContext, unwrap
from mlplatform.train.terms import NONNEG, LossTerms, bounded



def compute_loss(model: torch.nn.Module, batch: dict, ctx: StepContext) -> LossTerms:
    cfg: C.CodecConfig = ctx.cfg  # type: ignore[assignment]
    lc, x = cfg.loss, batch["wav"]
    out = model(x)
    y = out["recon"]
    terms = LossTerms()
    terms.add("l1", l1_wave(y, x), lc.l1_weight, NONNEG)
    if lc.stft_weight > 0 or not ctx.training:  # unweighted: skipped in training (~30% of a cpu-preset step)
        terms.add("stft", multi_res_stft(y, x, C.stft_windows(cfg)), lc.stft_weight, NONNEG)
    terms.add("neg_si_snr", si_snr_loss(y, x), lc.si_snr_weight, bounded(-SI_SNR_LIMIT_DB, SI_SNR_LIMIT_DB))
    if unwrap(model).quantizer is not None:
        terms.add("commit", out["commit"], lc.commit_weight, NONNEG)
    terms.outputs = {"recon": y.detach(), "codes": out["codes"]}
    return terms


def _code_stats(codes: torch.Tensor, size: int) -> tuple[float, float]:
    """(fraction of codebook entries used, perplexity), mean over codebooks. Shape: codes [B, T, n_q]."""
    usage, perp = [], []
    for q in range(codes.shape[-1]):
        hist = torch.bincount(codes[..., q].reshape(-1).long(), minlength=size).float()
        p = hist / hist.sum()
        usage.append(float((hist > 0).float().mean()))
        perp.append(math.exp(float(-(p[p > 0] * p[p > 0].log()).sum())))
    return sum(usage) / len(usage), sum(perp) / len(perp)


def _write_run_file(ctx: StepContext) -> None:
    """Record the MLflow run id where the loop will write this epoch's checkpoint (it keeps extra files)."""
    st = ctx.state
    logger, work = st.get("logger"), st.get("work_dir")
    if st.get("rank", 0) != 0 or not work or st.get("run_file_epoch") == ctx.epoch:
        return
    st["run_file_epoch"] = ctx.epoch
    folder = Path(work) / f"epoch_{ctx.epoch + 1:04d}"  # mlplatform.train.loop's checkpoint folder name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(json.dumps({"mlflow_run_id": getattr(logger, "run_id", "") or "",
                                               "arch": arch_config(ctx.cfg)}))


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """Per-item SI-SNR (dB), mel distance, L1; with the quantiser, codebook usage and perplexity (per batch)."""
    x, y = batch["wav"], terms.outputs["recon"]
    net: CodecNet = unwrap(model)  # type: ignore[assignment]
    m = {"si_snr": si_snr(y, x), "mel_distance": mel_distance(y, x, net.sample_rate),
         "l1_wave": (y - x).abs().mean((-2, -1))}
    codes = terms.outputs.get("codes")
    if codes is not None:
        usage, perp = _code_stats(codes, net.arch["codebook_size"])
        m["codebook_usage"] = torch.full((x.shape[0],), usage)
        m["perplexity"] = torch.full((x.shape[0],), perp)
    _write_run_file(ctx)
    return m


def floor_bandwidth_hz(net: CodecNet) -> float:
    """The bandwidth whose Nyquist rate carries as many numbers per second as the latent (or the codes).

    Continuous: D·frame_rate reals/s -> D·frame_rate/2 Hz (128·75/2 = 4800 Hz). Quantised: bitrate bits/s
    as 8-bit samples -> bitrate/16 Hz (6 kbit/s -> 375 Hz).
    """
    if net.quantizer is None:
        return net.arch["dimension"] * net.frame_rate / 2
    return net.bitrate / 16


def random_codec(net: CodecNet, state: dict[str, Any]) -> CodecNet:
    if "random_codec" not in state:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            state["random_codec"] = build_from_arch(net.arch).to(next(net.parameters()).device).eval()
    return state["random_codec"]


def _scores(y: torch.Tensor, x: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    return {"si_snr": si_snr(y, x), "mel_distance": mel_distance(y, x, sample_rate)}


def baselines(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Trivial solutions: silence (what L1 drives a small codec to first) and the random-weight codec
    (issue #14's starting point). Every baseline counts as a floor too."""
    net: CodecNet = unwrap(model)  # type: ignore[assignment]
    x = batch["wav"]
    with torch.no_grad():
        rnd = random_codec(net, ctx.state)(x)["recon"]
    return {"silence": _scores(torch.zeros_like(x), x, net.sample_rate), "random_codec": _scores(rnd, x, net.sample_rate)}


def floors(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """A band-limited copy of the input at the latent's information rate (the baselines count as floors too)."""
    net: CodecNet = unwrap(model)  # type: ignore[assignment]
    x = batch["wav"]
    band = lowpass(x, net.sample_rate, floor_bandwidth_hz(net))
    return {"bandlimited": _scores(band, x, net.sample_rate)}


def probe_zero_latent(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """The decoder fed zeros instead of the latent: does the output depend on what the encoder sent?"""
    net: CodecNet = unwrap(model)  # type: ignore[assignment]
    x = batch["wav"]
    z = net.encode(x)
    return {"si_snr": si_snr(net.decoder(torch.zeros_like(z))[..., : x.shape[-1]], x)}


METRICS = {
    "val/si_snr": MetricSpec("max", "scale-invariant SNR (dB) of the round trip on held-out excerpts", scale="db"),
    "val/mel_distance": MetricSpec("min", "mean |log10 mel| distance of the round trip (80 mels)"),
    "val/l1_wave": MetricSpec("min", "mean absolute sample error of the round trip"),
    # with model.quantizer=rvq also val/codebook_usage (fraction of entries used on a validation batch) and
    # val/perplexity (exp entropy of the codes, mean over codebooks); not declared here because the
    # contract requires every declared metric on every run, and the continuous bottleneck has no codes
    "val/loss": MetricSpec("min", "weighted training loss", exploitable=(
        "its weights are what a sweep varies: lowering a weight lowers it without a better codec")),
}

FAMILY = Family(
    inputs=("wav",),
    name="codec",
    config_cls=C.CodecConfig,
    presets=C.PRESETS,
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    selection_metric="val/si_snr",
    mode="max",
    prepare_data=D.prepare_data,
    overfit=("val/si_snr", ">", 0.0, ("train.epochs=10",)),
    metrics=METRICS,
    objectives=("val/si_snr:max", "val/mel_distance:min"),  # waveform vs perceptual (mel) fidelity
    baselines=baselines,
    floors=floors,
    probes=(Probe("zero_latent", probe_zero_latent, versus="model",
                  meaning="the decoder fed zeros instead of the latent scores as well: the round trip does not go "
                          "through the bottleneck"),),
    description="EnCodec's SEANet architecture trained here, so creative gets latents that encode the music",
)
