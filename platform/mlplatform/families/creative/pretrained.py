"""Which codec ``creative`` encodes with, and training the ``codec`` family's preset once when none is given.

Precedence: ``data.codec_checkpoint`` (the user's EnCodec state dict or a codec-family checkpoint) >
``data.codec=trained`` (default: the codec family's ``data.codec_preset`` trained ONCE on this corpus,
as a Ray task, cached under ``<root>/codec/<fingerprint>/`` by a fingerprint of the corpus and the codec
config, like the latent cache) > ``data.codec=random`` (explicit opt-in: EnCodec's architecture with
random weights, tagged ``codec.pretrained=false``). The trained codec's MLflow run (experiment ``codec``)
is tagged on every creative run that uses it (``codec.run_id``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.config import ConfigError
from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up

CODEC_CACHE_VERSION = "creative-trained-codec-1"


def _preset_config(cfg: Any) -> Any:
    """The codec preset + data.codec_overrides (no corpus paths: nothing is rendered or read)."""
    from mlplatform.families.codec.config import PRESETS

    d = cfg.data
    overrides = [kv.strip() for kv in d.codec_overrides.split(",") if kv.strip()]
    try:
        return PRESETS[d.codec_preset]().override(overrides)
    except ConfigError as e:
        raise ConfigError(f"data.codec_overrides: {e}") from None


def codec_shape(cfg: Any) -> tuple[int, float]:
    """(latent dim, frame rate) of the codec this config will use, without training or loading weights
    where possible (building a creative model must not train a codec)."""
    d = cfg.data
    if d.codec_checkpoint:
        from mlplatform.families.creative.codec import load_codec

        codec = load_codec(d.codec_checkpoint, d.codec_seed, quiet=True)
        return codec.dim, codec.frame_rate
    if d.codec == "random":
        return 128, 75.0  # EnCodec 24 kHz: 128-dim latent, hop 320
    from mlplatform.families.codec.model import arch_config

    arch = arch_config(_preset_config(cfg))
    hop = 1
    for r in arch["ratios"]:
        hop *= r
    return int(arch["dimension"]), arch["sample_rate"] / hop


def codec_config(cfg: Any) -> Any:
    """The codec family config trained for this creative config: its preset + overrides, on this corpus."""
    from mlplatform.families.creative import corpus as D

    d = cfg.data
    c = _preset_config(cfg)
    if d.pairs:
        p = Path(d.pairs)
        wavs = str(p.parent if p.is_file() else p)
    else:
        wavs = str(D.make_corpus(cfg))  # the creative corpus itself (input/ and target/ songs)
    c = c.override({"data.wavs": wavs, "data.clip_s": min(c.data.clip_s, d.clip_s),
                    "data.root": str(D.data_root(cfg) / "codec-data")})
    c.data.segment_s = min(c.data.segment_s, c.data.clip_s)
    c.data.val_s = min(c.data.val_s, c.data.clip_s)
    return c


def trained_dir(cfg: Any) -> tuple[Path, Any]:
    from mlplatform.families.codec.data import source_files
    from mlplatform.families.creative import corpus as D

    ccfg = codec_config(cfg)
    _, ident = source_files(ccfg)
    key = {"codec_config": ccfg.to_dict(), "source": ident}
    return D.data_root(cfg) / "codec" / cache.fingerprint(key, CODEC_CACHE_VERSION), ccfg


def _train(ccfg_dict: dict[str, Any], out: str, tracking_uri: str | None) -> dict[str, Any]:
    """Train the codec with the shared loop (in this process: a Ray task or the driver); keep its best."""
    import shutil
    import time

    from mlplatform.tracking import mlflow_utils as mu
    from mlplatform.families.codec.family import FAMILY as CODEC
    from mlplatform.train.executors import run_local

    cl = mu.client(tracking_uri)
    run = cl.create_run(mu.get_or_create_experiment(cl, "codec"), run_name=f"codec-for-creative-{Path(out).name}",
                        tags={"family": "codec", "trained_for": "creative"})
    t0 = time.perf_counter()
    work = Path(out) / "work"
    res, rep = run_local({"family": CODEC, "cfg": ccfg_dict, "work_dir": str(work), "verbose": True,
                          "mlflow_run_id": run.info.run_id, "tracking_uri": tracking_uri, "label": "codec"})
    for f in (work / "best").iterdir():
        shutil.copy2(f, Path(out) / f.name)
    shutil.rmtree(work, ignore_errors=True)
    return {"mlflow_run_id": run.info.run_id, "best_si_snr_db": res["best"], "best_epoch": res["best_epoch"],
            "steps": res["steps"], "train_seconds": round(time.perf_counter() - t0, 1),
            "curve_si_snr_db": [round(h.get("val/si_snr", float("nan")), 2) for h in rep.history]}


def ensure_trained(cfg: Any) -> Path:
    """The trained codec's checkpoint (``state.pt``), training it once if the cache lacks it."""
    ray = ray_if_up()  # None: build here (Ray not started or not installed)

    from mlplatform.tracking import mlflow_utils as mu

    folder, ccfg = trained_dir(cfg)

    def build(tmp: Path) -> dict[str, Any]:
        tmp.mkdir(parents=True, exist_ok=True)
        how = "a Ray task" if ray is not None else "this process"
        print(f"[data] no codec checkpoint given: training the codec family's '{cfg.data.codec_preset}' preset on "
              f"this corpus once ({how}) -> {folder}", flush=True)
        uri = mu.resolve_tracking_uri()
        if ray is not None:
            info = ray.get(ray.remote(num_cpus=1)(_train).remote(ccfg.to_dict(), str(tmp), uri))
        else:
            info = _train(ccfg.to_dict(), str(tmp), uri)
        return {"family": "creative", "kind": "trained_codec", "codec_preset": cfg.data.codec_preset,
                "codec_config": ccfg.to_dict(), **info}

    man = cache.build_once(folder, build)
    if not man.get("mlflow_run_id") and not (folder / "state.pt").is_file():
        raise ConfigError(f"data.codec: the trained codec cache {folder} is incomplete; delete it and retry")
    return folder / "state.pt"


def resolve_checkpoint(cfg: Any) -> str:
    """The codec checkpoint path creative loads ('' = random weights, only with data.codec=random)."""
    d = cfg.data
    if d.codec_checkpoint:
        return d.codec_checkpoint
    if d.codec == "random":
        return ""
    return str(ensure_trained(cfg))


def codec_for(cfg: Any, *, quiet: bool = False) -> Any:
    """The run's frozen codec, resolved by the precedence above."""
    from mlplatform.families.creative.codec import load_codec

    return load_codec(resolve_checkpoint(cfg), cfg.data.codec_seed, quiet=quiet)
