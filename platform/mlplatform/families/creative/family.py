"""The creative Family bundle: adaptive windows + ratio supervision.

loss = agent_weight·mean_pairs(agent) + 0.1·ratio_diversity + 0.05·reconstruction, where
ratio_diversity = -(var_pairs(ratio_in) + var_pairs(ratio_tgt)) (declared bounded, <= 0) and
reconstruction = MSE(decode(output), decode(ORIGINAL uncompressed input window at the predicted start))
through the frozen EnCodec decoder.

Selection metric: ``val/selection_loss`` = agent + reconstruction with FIXED unit weights and WITHOUT
the diversity term: the negative diversity term can be pushed down without making any output better,
and unit weights keep trials that sweep the loss weights comparable (docs/families/creative.md).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from mlplatform.families.creative import config as C
from mlplatform.families.creative import data as D
from mlplatform.families.creative.codec import Codec
from mlplatform.families.creative.losses import (agent_loss_parts, crop_pair, diversity_bounds, mean_over_pairs,
                                                  per_pair_mean, ratio_diversity_loss, reconstruction_loss)
from mlplatform.families.creative.metrics import (choice_shift, clip_spread, pair_metrics, ratio_spread,
                                                  selection_items)
from mlplatform.families.creative.model import AdaptiveWindowCreativeAgent
from mlplatform.families.creative.plots import log_plot, window_plot
from mlplatform.families.creative.pretrained import codec_for, codec_shape
from mlplatform.protocol import Family, GuardSpec, MetricSpec, Probe, StepContext, unwrap
from mlplatform.train.terms import NONNEG, LossTerms, bounded


def get_codec(cfg: C.CreativeConfig, state: dict[str, Any], device: torch.device) -> Codec:
    """The run's frozen codec (decoder of the reconstruction loss); built once per run, tagged on MLflow."""
    codec = state.get("codec")
    if codec is None:
        codec = codec_for(cfg).to(device)
        state["codec"] = codec
        logger = state.get("logger")
        if logger is not None:
            logger.set_tags({"codec.pretrained": str(codec.pretrained).lower(), "codec.identity": codec.identity,
                             "codec.source": codec.source, "codec.run_id": codec.run_id or "none"})
    return codec


def build_model(cfg: C.CreativeConfig) -> torch.nn.Module:
    m = cfg.model
    dim, frame_rate = codec_shape(cfg)  # no codec is trained or loaded just to size the model
    return AdaptiveWindowCreativeAgent(dim, int(round(cfg.data.window_s * frame_rate)), m.num_pairs, m.pool_frames,
                                       m.selector_hidden, m.ratio_min, m.ratio_max, m.start_margin,
                                       m.tonality_kernel, m.agent_hidden, m.agent_kernel)


def score_outputs(output: torch.Tensor, window_input: torch.Tensor, window_target: torch.Tensor,
                  original_input: torch.Tensor, cfg: C.CreativeConfig, codec: Codec,
                  with_recon_grad: bool = True) -> dict[str, Any]:
    """Agent parts, weighted agent loss and reconstruction per item for outputs [B, P, C, W] (the model's,
    or a trivial baseline's: the same scoring serves both)."""
    b, p, c, w = output.shape
    flat = [t.reshape(b * p, c, w) for t in (output, window_input, window_target, original_input)]
    lc = cfg.loss
    parts = agent_loss_parts(flat[0], flat[1], flat[2])
    per_item = lc.rhythm_weight * parts["rhythm"] + lc.harmony_weight * parts["harmony"] + lc.timbre_weight * parts["timbre"]
    crop = codec.frames(lc.recon_crop_s) if lc.recon_crop_s > 0 else w
    o, r = crop_pair(flat[0], flat[3], crop)
    with torch.set_grad_enabled(torch.is_grad_enabled() and with_recon_grad):
        recon = reconstruction_loss(codec.decode, o, r)  # [B·P]
    return {"parts": parts, "agent_items": per_item.view(b, p), "recon_items": recon.view(b, p)}


def forward_and_losses(model: torch.nn.Module, x_in: torch.Tensor, x_tgt: torch.Tensor, cfg: C.CreativeConfig,
                       codec: Codec, with_recon_grad: bool = True, ablate: bool = False) -> dict[str, Any]:
    """One forward of all pairs and every loss ingredient (shared by training, validation and inference)."""
    out = unwrap(model)(x_in, x_tgt, ablate=True) if ablate else model(x_in, x_tgt)
    scores = score_outputs(out["output"], out["window_input"], out["window_target"], out["original_input"], cfg,
                           codec, with_recon_grad)
    return {"out": out, **scores}


def compute_loss(model: torch.nn.Module, batch: dict, ctx: StepContext) -> LossTerms:
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    lc, st = cfg.loss, ctx.state
    codec = get_codec(cfg, st, ctx.device)
    f = forward_and_losses(model, batch["input"], batch["target"], cfg, codec,
                           with_recon_grad=lc.reconstruction_weight != 0)
    out = f["out"]
    b, p = out["ratio_input"].shape
    pair_losses = per_pair_mean(f["agent_items"].reshape(-1), b, p)
    agent = mean_over_pairs(pair_losses)  # the mean, never argmin: every pair gets gradients
    diversity = ratio_diversity_loss(out["ratio_input"], out["ratio_target"])
    recon = f["recon_items"].mean()
    terms = LossTerms()
    terms.add("agent", agent, lc.agent_weight)
    terms.add("ratio_diversity", diversity, lc.diversity_weight,
              bounded(*diversity_bounds(cfg.model.ratio_min, cfg.model.ratio_max, p)))
    terms.add("reconstruction", recon, lc.reconstruction_weight)
    for name, v in f["parts"].items():
        terms.add(f"agent_{name}", v.mean().detach(), 0.0)
    for i in range(p):
        terms.add(f"agent_pair{i}", pair_losses[i].detach(), 0.0, NONNEG)
    # logged, not optimised: the across-pair and the across-clip spread of the selector's choices, side by side
    # (train/ only: validation's per-item val/ratio_spread and val/clip_spread come from evaluate)
    pairs_spread = ratio_spread(out).mean().detach()
    clips_spread = clip_spread(out, cfg.model.ratio_min, cfg.model.ratio_max).mean().detach()
    if ctx.training:
        terms.add("ratio_spread", pairs_spread, 0.0, NONNEG)
        terms.add("clip_spread", clips_spread, 0.0, NONNEG)
    terms.outputs = {"out": out, "agent_items": f["agent_items"].detach(), "recon_items": f["recon_items"].detach()}
    if ctx.training and st.get("rank", 0) == 0:
        acc = st.setdefault("ratio_supervision", {})
        if acc.get("epoch") != ctx.epoch:
            acc.clear()
            acc.update(epoch=ctx.epoch, n=0, diversity=0.0, reconstruction=0.0, ratio_spread=0.0, clip_spread=0.0)
        acc["n"] += 1
        acc["diversity"] += float(diversity.detach())
        acc["reconstruction"] += float(recon.detach())
        acc["ratio_spread"] += float(pairs_spread)
        acc["clip_spread"] += float(clips_spread)
    return terms


def _print_ratio_supervision(st: dict[str, Any], epoch: int) -> None:
    """The ratio-supervision epoch summary (printed once per epoch, from the training epoch's means)."""
    acc = st.get("ratio_supervision")
    if not acc or acc.get("epoch") != epoch or acc.get("printed") or not acc["n"]:
        return
    print(f"[creative] epoch {epoch + 1} Ratio Supervision:\n"
          f"  Ratio Diversity:   {acc['diversity'] / acc['n']:.6f}\n"
          f"  Reconstruction:    {acc['reconstruction'] / acc['n']:.6f}\n"
          f"  Spread (pairs):    {acc['ratio_spread'] / acc['n']:.6f}\n"
          f"  Spread (clips):    {acc['clip_spread'] / acc['n']:.6f}", flush=True)
    acc["printed"] = True


def evaluate(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """Per-item validation metrics, including every pair's window (frames and seconds), ratios, tonality."""
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    st = ctx.state
    codec = get_codec(cfg, st, ctx.device)
    out, agent, recon = terms.outputs["out"], terms.outputs["agent_items"], terms.outputs["recon_items"]
    spread = ratio_spread(out)
    clips = clip_spread(out, cfg.model.ratio_min, cfg.model.ratio_max)
    m: dict[str, torch.Tensor] = {"agent": agent.mean(1), "reconstruction": recon.mean(1),
                                  "selection_loss": selection_items(agent, recon), "ratio_spread": spread,
                                  "clip_spread": clips}
    if ctx.epoch >= cfg.loss.guard_warmup_epochs:
        m["ratio_spread_checked"] = spread  # what guard/ratio_spread watches (ratios all start at 1.0)
    fr = codec.frame_rate
    m.update(pair_metrics(out, fr))
    if st.get("rank", 0) == 0 and st.get("plotted_epoch") != ctx.epoch:
        st["plotted_epoch"] = ctx.epoch
        _print_ratio_supervision(st, ctx.epoch)
        folder = Path(st.get("work_dir") or st.setdefault("plot_dir", tempfile.mkdtemp(prefix="mlp-creative-")))
        path = window_plot(folder / "plots" / f"window_selection_epoch{ctx.epoch + 1:03d}.png",
                           batch["input"][0], batch["target"][0], {k: v[0] for k, v in out.items() if v.dim() == 2},
                           unwrap(model).window_frames, fr, title=f"window selection, epoch {ctx.epoch + 1}")
        st["last_plot"] = str(path)
        log_plot(st, path)
    return m


def baselines(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """Passthrough of the (compressed) input window and of the target window, scored like the model."""
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    codec = get_codec(cfg, ctx.state, ctx.device)
    out = terms.outputs["out"]
    res = {}
    for name, key in (("passthrough_input", "window_input"), ("passthrough_target", "window_target")):
        f = score_outputs(out[key], out["window_input"], out["window_target"], out["original_input"], cfg, codec)
        res[name] = {"selection_loss": selection_items(f["agent_items"], f["recon_items"])}
    return res


def floors(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
    """The unmoved initial selector: this architecture at the run's own seeded initialisation
    (``train.seed``, as ``setup_run`` builds it), never trained, scored like the model on the same pairs. The
    copy-input and copy-target baselines (:func:`baselines`) are floors too."""
    from mlplatform.rng import isolated_rng

    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    st = ctx.state
    init = st.get("initial_selector")
    if init is None:
        with isolated_rng(cfg.train.seed):
            init = build_model(cfg).to(ctx.device).eval()
        st["initial_selector"] = init
    f = forward_and_losses(init, batch["input"], batch["target"], cfg, get_codec(cfg, st, ctx.device))
    return {"initial_selector": {"selection_loss": selection_items(f["agent_items"], f["recon_items"])}}


def probe_fixed_windows(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """Ratios forced to 1.0 and tonality to 0: what do the adaptive windows contribute?"""
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    f = forward_and_losses(model, batch["input"], batch["target"], cfg, get_codec(cfg, ctx.state, ctx.device),
                           ablate=True)
    return {"selection_loss": selection_items(f["agent_items"], f["recon_items"])}


def probe_silent_input(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """The input clip replaced by the codec's latents of silence: do the selector's choices move?"""
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    codec = get_codec(cfg, ctx.state, ctx.device)
    x_in = batch["input"]
    silence = codec.encode(x_in.new_zeros(x_in.shape[0], 1, x_in.shape[-1] * codec.hop))
    f = forward_and_losses(model, silence, batch["target"], cfg, codec)
    return {"selection_loss": selection_items(f["agent_items"], f["recon_items"]),
            **choice_shift(f["out"], terms.outputs["out"])}


def probe_shuffled_clips(model: torch.nn.Module, batch: dict, terms: LossTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
    """Each item's input clip swapped with another item's (a roll of the batch): do the choices follow the clip?"""
    cfg: C.CreativeConfig = ctx.cfg  # type: ignore[assignment]
    f = forward_and_losses(model, batch["input"].roll(1, 0), batch["target"], cfg, get_codec(cfg, ctx.state, ctx.device))
    return {"selection_loss": selection_items(f["agent_items"], f["recon_items"]),
            **choice_shift(f["out"], terms.outputs["out"])}


METRICS = {
    "val/selection_loss": MetricSpec("min", "agent + reconstruction per item, fixed unit weights, no diversity term"),
    "val/agent": MetricSpec("min", "weighted rhythm/harmony/timbre agent loss, mean over pairs"),
    "val/reconstruction": MetricSpec("min", "MSE of decode(output) vs decode(uncompressed input window)"),
    "val/ratio_spread": MetricSpec("max", "std of the ratios across pairs (0 = every pair compresses alike)"),
    "val/clip_spread": MetricSpec("max", "mean distance of each clip's starts/ratios from the batch mean "
                                         "(0 = the selector picks the same windows whatever the clip)"),
    "val/ratio_diversity": MetricSpec("min", "-(var ratio_in + var ratio_tgt) across pairs", exploitable=(
        "pushing the ratios apart lowers it without any output getting better (the over-diversified case)")),
    "val/loss": MetricSpec("min", "weighted training loss", exploitable=(
        "it contains the negative ratio-diversity term and weights a sweep varies")),
}


def guards(cfg: C.CreativeConfig) -> list[GuardSpec]:
    """Ratio collapse across pairs. A selector that ignores its input (``val/clip_spread`` near 0, the same
    windows for every clip) is the platform's ``alarm:selector_collapse`` (``train.alarm_min_clip_spread``)."""
    return [GuardSpec("ratio_spread", "val/ratio_spread_checked", lo=cfg.loss.ratio_spread_min,
                      reason="ratios collapsed: the pairs use (nearly) the same compression ratio; "
                             "raise loss.diversity_weight")]


FAMILY = Family(
    inputs=("x_in", "x_tgt"),
    name="creative",
    config_cls=C.CreativeConfig,
    presets={"debug": C.debug, "full": C.full},
    build_model=build_model,
    build_datasets=D.build_datasets,
    compute_loss=compute_loss,
    evaluate=evaluate,
    selection_metric="val/selection_loss",
    mode="min",
    prepare_data=D.prepare_data,
    guards=guards,
    metrics=METRICS,
    objectives=("val/selection_loss:min", "val/ratio_spread:max"),  # fit vs adaptive (non-collapsed) ratios
    baselines=baselines,
    floors=floors,  # with the baselines: copy-input, copy-target and the unmoved initial selector
    probes=(Probe("fixed_windows", probe_fixed_windows, versus="model", collapse=False,
                  meaning="with ratios 1.0 and no tonality reduction the outputs score the same: the adaptive "
                          "windows contribute nothing"),
            Probe("silent_input", probe_silent_input, versus="model", collapse=False,
                  meaning="the input clip replaced by silence scores the same and moves no window: the "
                          "selector does not read the input"),
            Probe("shuffled_clips", probe_shuffled_clips, versus="model", collapse=False,
                  meaning="input clips swapped between items score the same and move no window"),),
    description="adaptive-window creative agent on EnCodec latents, with ratio supervision",
)
