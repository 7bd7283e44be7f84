"""creative's corpus: input/target song pairs generated with a small MIDI writer and rendered by fluidsynth
(Ray tasks when Ray is up) into ``<root>/corpus/<fingerprint>/{input,target}/pair_XXXXX.wav``; the
codec trained for creative (``pretrained.py``) learns on the same songs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.data import cache
from mlplatform.data.cache import ray_if_up
from mlplatform.families.creative import music
from mlplatform.paths import repo_root

CORPUS_VERSION = "creative-fluidsynth-1"
SAMPLE_RATE = 24_000  # the EnCodec 24 kHz model's rate; checked against the codec when encoding


def data_root(cfg: Any) -> Path:
    return Path(cfg.data.root) if cfg.data.root else repo_root() / "data" / "creative"


def corpus_key(cfg: Any) -> dict[str, Any]:
    d = cfg.data
    return {"clip_s": d.clip_s, "n_pairs": d.n_pairs, "seed": d.seed, "sample_rate": SAMPLE_RATE}


def _render_pair(i: int, clip_s: float, seed: int, out: str) -> dict[str, Any]:
    name = f"pair_{i:05d}"
    meta = {"name": name}
    for side, k in (("input", 0), ("target", 1)):
        (Path(out) / side).mkdir(parents=True, exist_ok=True)
        meta[side] = music.render_clip(Path(out) / side / f"{name}.wav", clip_s, SAMPLE_RATE,
                                       seed * 1_000_003 + 2 * i + k)
    return meta


def make_corpus(cfg: Any) -> Path:
    """Render the generated corpus once (Ray tasks when Ray is up) and return its folder."""
    ray = ray_if_up()  # None: build here (Ray not started or not installed)

    folder = data_root(cfg) / "corpus" / cache.fingerprint(corpus_key(cfg), CORPUS_VERSION)
    d = cfg.data

    def build(tmp: Path) -> dict[str, Any]:
        how = "Ray tasks" if ray is not None else "local steps"
        print(f"[data] rendering {d.n_pairs} input/target pairs of {d.clip_s:g} s with fluidsynth ({how}) -> {folder}",
              flush=True)
        if ray is not None:
            task = ray.remote(num_cpus=1)(_render_pair)
            metas = ray.get([task.remote(i, d.clip_s, d.seed, str(tmp)) for i in range(d.n_pairs)])
        else:
            metas = [_render_pair(i, d.clip_s, d.seed, str(tmp)) for i in range(d.n_pairs)]
        return {"family": "creative", "kind": "corpus", "generator": CORPUS_VERSION, "config": corpus_key(cfg),
                "soundfont": music.find_soundfont(), "pairs": metas}

    cache.build_once(folder, build)
    return folder
