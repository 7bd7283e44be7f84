"""The apples-to-apples comparison of compression strategies (``jobs/compare_compression.py``): one model
per (strategy, seed) trained as a Ray task on the same table, split, cleaning and clustering; the
floor and ceiling of each seed; per-strategy mean ± std over seeds; the winner by a paired test.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

LEVELS = (0, 1, 2)


def strategy_overrides(strategy: str, seed: int) -> list[str]:
    ratios = (["model.compression_ratios=uniform"] if strategy == "uniform" else
              ["model.compression_ratios=auto", f"model.auto_compression_strategy={strategy}"])
    return ratios + [f"train.seed={seed}"]


def train_and_evaluate(cfg_dict: dict[str, Any], run_id: str, uri: str, label: str) -> dict[str, Any]:
    """A Ray task: train one model with the platform loop (child MLflow run), then diagnose its best
    checkpoint on the whole held-out split. Returns the diagnosis plus the task's wall and CPU seconds."""
    import torch

    from mlplatform.families.vqvae.config import VqvaeConfig
    from mlplatform.families.vqvae.build import load_model
    from mlplatform.families.vqvae.diagnostics import evaluate_split
    from mlplatform.families.vqvae.family import FAMILY
    from mlplatform.train.executors import run_local

    t0, c0 = time.perf_counter(), time.process_time()
    torch.set_num_threads(max(1, VqvaeConfig.from_dict(cfg_dict).train.num_threads))
    # the device torch sees: a task given a GPU by Ray (--gpus-per-task) sees one, any other task none
    summary, _ = run_local({"family": FAMILY, "cfg": cfg_dict, "mlflow_run_id": run_id, "tracking_uri": uri,
                            "label": label, "verbose": False, "use_gpu": torch.cuda.is_available()})
    cfg, model = load_model(Path(summary["work_dir"]) / "best")
    d = evaluate_split(cfg, model, "val")
    d.update(best_epoch=summary["best_epoch"], stop_reason=summary["stop_reason"],
             device="cuda" if torch.cuda.is_available() else "cpu",  # where it trained: runs may mix both
             wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
    return d


def bounds_task(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """A Ray task: the seed's unquantised ceiling (trained once, cached) and the PCA floor on the held-out split."""
    import torch

    from mlplatform.families.vqvae import bounds, data as D
    from mlplatform.families.vqvae.config import VqvaeConfig
    from mlplatform.families.vqvae.family import FAMILY

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = VqvaeConfig.from_dict(cfg_dict)
    torch.set_num_threads(max(1, cfg.train.num_threads))
    bounds.ensure_ceiling(cfg, FAMILY, remote=False)
    x, _ = D.load_matrix(cfg)
    _, va = D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)
    out = bounds.bound_errors(cfg, torch.from_numpy(x[va]), FAMILY)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def _log_gain(model: float, floor: float, ceiling: float) -> float:
    m, f, c = (10 * math.log10(max(v, 1e-30)) for v in (model, floor, ceiling))
    return (m - f) / (c - f) if abs(c - f) > 1e-12 else float("nan")


def row_values(d: dict[str, Any], bnd: dict[str, Any]) -> dict[str, float]:
    """The per-run numbers the table aggregates."""
    mse = d["mse"]
    out = {"recon_error": d["recon_error"], "worst_mse": max(mse.values()),
           "spread": max(mse.values()) / max(min(mse.values()), 1e-12),
           "utilization": d["codebook_utilization"], "dead_codes": d["dead_codes"], "total_codes": d["total_codes"],
           "params": float(d["n_params"]),
           "captured_gain": _log_gain(d["recon_error"], bnd["floor_pca"]["recon_error"],
                                      bnd["ceiling_unquantised"]["recon_error"])}
    for lv in LEVELS:
        out[f"util_L{lv}"] = d[f"codebook_utilization_L{lv}"]
        out[f"perp_norm_L{lv}"] = d[f"perplexity_norm_L{lv}"]
        out[f"entropy_norm_L{lv}"] = d[f"entropy_norm_L{lv}"]
    return out


def aggregate(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{strategy: {key: (mean, std over seeds)}} (std with ddof=1; 0 for one seed)."""
    out = {}
    for s, rows in runs.items():
        out[s] = {k: (float(np.mean([r[k] for r in rows])),
                      float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0) for k in rows[0]}
    return out


def winner(runs: dict[str, list[dict[str, float]]], key: str = "worst_mse", alpha: float = 0.05) -> dict[str, Any]:
    """The strategy with the lowest mean ``key`` and whether it beats uniform beyond seed noise: a one-sided
    paired t-test over the seeds (same seeds, same sample: the pairing removes the data's share of the noise)."""
    from scipy.stats import ttest_rel

    means = {s: float(np.mean([r[key] for r in rows])) for s, rows in runs.items()}
    best = min(means, key=means.__getitem__)
    res: dict[str, Any] = {"best": best, "key": key, "means": means, "p_values": {}}
    u = [r[key] for r in runs.get("uniform", [])]
    for s, rows in runs.items():
        if s != "uniform" and len(u) > 1 and len(rows) == len(u):
            p = float(ttest_rel([r[key] for r in rows], u, alternative="less").pvalue)
            res["p_values"][s] = p if math.isfinite(p) else 1.0
    beats = [s for s, p in res["p_values"].items() if p < alpha and means[s] < means.get("uniform", math.inf)]
    res["significant"] = sorted(beats, key=means.__getitem__)
    res["default"] = res["significant"][0] if res["significant"] else "uniform"
    return res


def _pm(v: tuple[float, float], fmt: str = ".4f") -> str:
    return f"{v[0]:{fmt}} ± {v[1]:{fmt}}"


def _where(meta: dict[str, Any]) -> str:
    """The accelerator the tasks trained on: a results file names its device, a Ray run counts GPUs."""
    return meta.get("device") or (f"{meta['gpus']} GPUs" if meta.get("gpus") else "no GPU")


def markdown(agg: dict[str, dict[str, tuple[float, float]]], bnds: list[dict[str, Any]], win: dict[str, Any],
             meta: dict[str, Any]) -> str:
    lines = ["## Compression strategies, apples to apples", "",
             f"Seeds {meta['seeds']}, preset `{meta['preset']}`, {meta['n_val']:,} held-out rows, "
             f"{meta['categories']} categories (one clustering for every run). Wall {meta['wall_s']:.0f} s, "
             f"CPU {meta['cpu_s']:.0f} s, load (1/5/15 min) before {meta['load_before']} after {meta['load_after']}, "
             f"{meta['cpus']} CPUs, {_where(meta)}.", "",
             "| Strategy | Params | Recon error | Worst-category MSE | Spread (max/min) | Captured gain | "
             "Usage L0/L1/L2 | Perplexity/K L0/L1/L2 | Entropy/log K L0/L1/L2 | Dead codes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s, a in agg.items():
        lv = lambda k: " / ".join(f"{a[f'{k}_L{i}'][0]:.2f}" for i in LEVELS)  # noqa: E731
        lines.append(f"| {s} | {a['params'][0]:,.0f} | {_pm(a['recon_error'])} | {_pm(a['worst_mse'])} | "
                     f"{_pm(a['spread'], ',.0f')} | {_pm(a['captured_gain'], '.3f')} | {lv('util')} | "
                     f"{lv('perp_norm')} | {lv('entropy_norm')} | {a['dead_codes'][0]:.0f} ± {a['dead_codes'][1]:.0f}"
                     f" / {a['total_codes'][0]:.0f} |")
    for name in ("floor_pca", "ceiling_unquantised"):
        rec = [b[name]["recon_error"] for b in bnds]
        worst = [max(b[name]["mse"].values()) for b in bnds]
        sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
        lines.append(f"| *{name}* | | {np.mean(rec):.4f} ± {sd(rec):.4f} | {np.mean(worst):.4f} ± {sd(worst):.4f} "
                     f"| | {'0' if name.startswith('floor') else '1'} | | | | |")
    ps = ", ".join(f"{s} p={p:.3f}" for s, p in win["p_values"].items())
    verdict = (f"**{win['default']}** beats uniform on worst-category MSE beyond seed noise (one-sided paired "
               f"t-test over seeds, p < 0.05)" if win["default"] != "uniform" else
               "no strategy beats uniform on worst-category MSE beyond seed noise (one-sided paired t-test "
               "over seeds, p < 0.05)")
    lines += ["", f"Lowest mean worst-category MSE: `{win['best']}`. {verdict}. ({ps})", ""]
    return "\n".join(lines)


def plot(agg: dict[str, dict[str, tuple[float, float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(agg)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (key, title) in zip(axes, (("recon_error", "recon error"), ("worst_mse", "worst-category MSE"),
                                       ("entropy_norm_L0", "entropy / log K, L0"))):
        ax.bar(x, [agg[n][key][0] for n in names], yerr=[agg[n][key][1] for n in names], capsize=3)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(f"{title} (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
