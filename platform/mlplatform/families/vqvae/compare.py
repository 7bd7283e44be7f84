"""The apples-to-apples comparison of compression strategies (``jobs/compare_compression.py``): one model
per (strategy, seed) trained as a Ray task on the same table, split, cleaning and clustering; the
bit-matched floors, the PCA reference and the ceiling of each seed; per-strategy mean ± std over seeds;
the winner by a paired test, and each strategy against the strongest bit-matched floor by another.
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
    """A Ray task: the seed's unquantised ceiling (trained once, cached), its bit-matched floors and the PCA
    reference on the held-out split."""
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


def strongest_floor(bnd: dict[str, Any]) -> tuple[str, float]:
    """(name, held-out recon error) of the best ``floor_*`` entry of one seed's bounds."""
    fl = {k: v["recon_error"] for k, v in bnd.items() if k.startswith("floor_")}
    if not fl:
        raise ValueError(f"no floor among the bounds {sorted(bnd)}")
    name = min(fl, key=fl.__getitem__)
    return name, fl[name]


def row_values(d: dict[str, Any], bnd: dict[str, Any]) -> dict[str, float]:
    """The per-run numbers the table aggregates; ``vs_floor`` = recon error minus the strongest bit-matched
    floor's on the same rows (negative: the model beats it)."""
    mse = d["mse"]
    floor = strongest_floor(bnd)[1]
    out = {"recon_error": d["recon_error"], "vs_floor": d["recon_error"] - floor, "worst_mse": max(mse.values()),
           "spread": max(mse.values()) / max(min(mse.values()), 1e-12),
           "utilization": d["codebook_utilization"], "dead_codes": d["dead_codes"], "total_codes": d["total_codes"],
           "params": float(d["n_params"]),
           "captured_gain": _log_gain(d["recon_error"], floor, bnd["ceiling_unquantised"]["recon_error"])}
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
    res["versus_floor"] = {s: versus_floor(rows, alpha) for s, rows in runs.items()}
    return res


def versus_floor(rows: list[dict[str, float]], alpha: float = 0.05) -> dict[str, Any]:
    """Does the model beat the strongest bit-matched floor beyond seed noise? One-sided paired t-test of
    the per-seed recon error against the floor's on the same rows (``vs_floor`` < 0); p = nan for one seed."""
    from scipy.stats import ttest_1samp

    diff = [r["vs_floor"] for r in rows]
    p = float(ttest_1samp(diff, 0.0, alternative="less").pvalue) if len(diff) > 1 else float("nan")
    return {"mean_diff": float(np.mean(diff)), "p": p, "beats": bool(math.isfinite(p) and p < alpha and np.mean(diff) < 0)}


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
    lines += _bound_rows(bnds)
    ps = ", ".join(f"{s} p={p:.3f}" for s, p in win["p_values"].items())
    verdict = (f"**{win['default']}** beats uniform on worst-category MSE beyond seed noise (one-sided paired "
               f"t-test over seeds, p < 0.05)" if win["default"] != "uniform" else
               "no strategy beats uniform on worst-category MSE beyond seed noise (one-sided paired t-test "
               "over seeds, p < 0.05)")
    top = strongest_floor(bnds[0])[0]
    vf = "; ".join(f"{s} {v['mean_diff']:+.4f} (p={v['p']:.3f}{', beats it' if v['beats'] else ''})"
                   for s, v in win.get("versus_floor", {}).items())
    lines += ["", f"Lowest mean worst-category MSE: `{win['best']}`. {verdict}. ({ps})", "",
              f"Recon error minus the strongest bit-matched floor (`{top}`), mean over seeds, one-sided paired "
              f"t-test that the model is below it: {vf}.", ""]
    return "\n".join(lines)


def _bound_rows(bnds: list[dict[str, Any]]) -> list[str]:
    """Table rows of the floors, the PCA reference and the ceiling; captured gain of each against the
    strongest floor and the ceiling, seed by seed (0 for that floor, 1 for the ceiling)."""
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
    names = sorted(k for k in bnds[0] if k.startswith("floor_")) + [
        k for k in ("reference_pca", "ceiling_unquantised") if k in bnds[0]]
    lines = []
    for name in names:
        rec = [b[name]["recon_error"] for b in bnds]
        worst = [max(b[name]["mse"].values()) for b in bnds]
        gain = [_log_gain(b[name]["recon_error"], strongest_floor(b)[1], b["ceiling_unquantised"]["recon_error"])
                for b in bnds]
        lines.append(f"| *{name}* | | {np.mean(rec):.4f} ± {sd(rec):.4f} | {np.mean(worst):.4f} ± {sd(worst):.4f} "
                     f"| | {np.mean(gain):.3f} | | | | |")
    return lines


def complete_bounds(results: dict[tuple[str, int], dict[str, Any]], preset: str, overrides: list[str]) -> list[int]:
    """Add the bit-matched floors to a results file's bounds written before they existed (its ``floor_pca``
    becomes ``reference_pca``), computed here on the same held-out rows; the seeds completed. Refuses
    (``ValueError``) when the PCA recomputed here differs from the file's: then the table is not the same."""
    import torch

    from mlplatform.families.vqvae import bounds, data as D
    from mlplatform.registry import build_config

    done = []
    for (kind, seed), bnd in results.items():
        if kind != "bounds" or any(k.startswith("floor_") and k != "floor_pca" for k in bnd):
            continue
        cfg = build_config("vqvae", preset, list(overrides) + [f"train.seed={seed}"])
        D.prepare_data(cfg)
        x, _ = D.load_matrix(cfg)
        xv = torch.from_numpy(x[D.split_indices(len(x), cfg.data.val_frac, cfg.data.seed)[1]])
        here = bounds.errors_of(cfg, xv, {"reference_pca": bounds.pca_reconstruct(cfg, xv),
                                          **{f"floor_{k}": v for k, v in bounds.bit_matched_reconstruct(cfg, xv).items()}})
        old = bnd.pop("floor_pca", None) or bnd["reference_pca"]
        if abs(here["reference_pca"]["recon_error"] - old["recon_error"]) > 1e-4 * max(old["recon_error"], 1e-12):
            raise ValueError(f"seed {seed}: the PCA here gives {here['reference_pca']['recon_error']:.6f}, the file "
                             f"{old['recon_error']:.6f}: not the table the results were measured on")
        bnd.update({k: v for k, v in here.items() if k != "reference_pca"}, reference_pca=old)
        done.append(seed)
    return done


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
