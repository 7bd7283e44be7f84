"""``hpo.py --plan``: what a sweep will cost and whether its validation set can rank it, before any Ray work.

Three parts, printed as lines:
- **ASHA's rungs**: asynchronous successive halving promotes about 1/rf of the trials at each rung
  (``grace``, ``grace·rf``, ... below ``max_t``), so the expected trials reaching each rung and the expected
  epochs follow from the flags alone (an upper bound where early stopping or guards end trials sooner).
- **A timing probe**: two configs drawn from the search space (seeded) train for one epoch each, in this
  process, with the sweep's base config (no MLflow, no Ray); the measured epoch time, the expected epochs
  and the concurrency the local machine allows give the estimated wall time.
- **Can the frozen set separate them?** The two probes are scored on the same frozen validation items; when
  the paired 95% interval of their difference contains 0, the set cannot separate effects of the size the
  space produces after one epoch (ASHA's first decisions come at ``grace`` epochs): it says so, with the
  half-width, and what to raise.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PROBE_SEED = 0
PER_TRIAL_OVERHEAD_S = 2.0  # a trial slot's start and end under Tune (docs/benchmarks.md, section 2: 1.9 s)


def asha_rungs(n_trials: int, max_t: int, grace: int, rf: int) -> list[tuple[int, float]]:
    """``[(epoch, expected trials reaching it)]``: every trial reaches ``grace``; 1/rf of them each next rung;
    the survivors of the last rung run to ``max_t``."""
    rungs, t, k = [], max(1, min(grace, max_t)), 0
    while t < max_t:
        rungs.append((t, n_trials / rf ** k))
        t, k = t * rf, k + 1
    rungs.append((max_t, n_trials / rf ** k))
    return rungs


def expected_epochs(rungs: list[tuple[int, float]]) -> float:
    """Epochs the trials train in all: the trials that reach rung i train from rung i-1 up to it."""
    total, prev = 0.0, 0
    for t, n in rungs:
        total += n * (t - prev)
        prev = t
    return total


def draw(space: Any, rng: np.random.Generator) -> dict[str, Any]:
    """One config of the search space (uniform, log-uniform, int, choice), seeded."""
    out: dict[str, Any] = {}
    for key, s in space.params.items():
        t = s["type"]
        if t == "uniform":
            out[key] = float(rng.uniform(s["low"], s["high"]))
        elif t == "loguniform":
            out[key] = float(math.exp(rng.uniform(math.log(s["low"]), math.log(s["high"]))))
        elif t == "int":
            out[key] = int(rng.integers(s["low"], s["high"] + 1))
        else:
            out[key] = list(s["values"])[int(rng.integers(len(s["values"])))]
    return out


def probe(fam: Any, base: Any, params: dict[str, Any]) -> dict[str, Any]:
    """One epoch of ``base`` with ``params`` in this process: its wall time and per-item validation values."""
    from mlplatform.train.checkpoint import PER_ITEM_FILE
    from mlplatform.train.executors import run_local
    from mlplatform.train.options import RunOptions

    cfg = base.override({**params, "train.epochs": 1, "train.final_eval": False})
    with tempfile.TemporaryDirectory(prefix="mlp-plan-") as d:
        t0 = time.perf_counter()
        run_local(RunOptions(family=fam, cfg=cfg, verbose=False, work_dir=d, executor="plan-probe"))
        wall = time.perf_counter() - t0
        f = Path(d) / "best" / PER_ITEM_FILE
        items = json.loads(f.read_text()).get("model", []) if f.exists() else []
    return {"wall_s": wall, "items": items}


def separation(a: list[float], b: list[float]) -> dict[str, float] | None:
    """The paired difference ``b - a`` on the same items and its 95% bootstrap interval."""
    from mlplatform.tune.noise import bootstrap_mean

    if not a or len(a) != len(b):
        return None
    iv = bootstrap_mean(np.asarray(b, float) - np.asarray(a, float))
    return {"diff": iv.mean, "lo": iv.lo, "hi": iv.hi, "half_width": (iv.hi - iv.lo) / 2, "items": len(a)}


def plan_lines(spec: Any, checked: Any, concurrency: int) -> Iterator[str]:
    """The whole plan as printable lines, each as soon as it is known (the probes take a while)."""
    fam, base, space = checked
    rf, grace, max_t = spec.reduction_factor, spec.grace_period, spec.epochs_per_trial
    fifo = spec.scheduler != "asha" or bool(spec.objectives)
    rungs = [(max_t, float(spec.n_trials))] if fifo else asha_rungs(spec.n_trials, max_t, grace, rf)
    epochs = expected_epochs(rungs)
    yield (f"[plan] {spec.n_trials} trials of {fam.name} ({spec.preset} preset), {max_t} epochs max, "
             + ("no ASHA (every trial runs its epochs)" if fifo else f"ASHA grace {grace}, reduction factor {rf}"))
    for t, n in rungs:
        yield f"[plan]   rung at epoch {t:>3}: ~{n:.1f} trials"
    if fam.prepare_data is not None:
        fam.prepare_data(base)  # the sweep would make it once anyway (cached by fingerprint)
    rng = np.random.default_rng(PROBE_SEED)
    a_params, b_params = draw(space, rng), draw(space, rng)
    yield (f"[plan] timing probe: one epoch each of two configs drawn from space '{space.name}' ...")
    a, b = probe(fam, base, a_params), probe(fam, base, b_params)
    epoch_s = (a["wall_s"] + b["wall_s"]) / 2  # includes the set-up of a run: an upper bound per epoch
    confirm_runs = spec.confirm_top * spec.confirm_seeds if spec.confirm_top else 0
    wall = (epochs * epoch_s + spec.n_trials * PER_TRIAL_OVERHEAD_S) / max(1, concurrency)
    conf_wall = confirm_runs * (max_t * epoch_s + PER_TRIAL_OVERHEAD_S) / max(1, concurrency)
    yield (f"[plan] expected {epochs:.0f} trial epochs at ~{epoch_s:.2f} s each (probe), {concurrency} at a "
                 f"time: ~{wall / 60:.1f} min of sweep"
                 + (f", plus ~{conf_wall / 60:.1f} min for the confirmation ({confirm_runs} runs of {max_t} epochs)"
                    if confirm_runs else ""))
    sep = separation(a["items"], b["items"])
    if sep is None:
        yield ("[plan] the probes left no per-item values: no check of the validation set's resolution")
    elif sep["lo"] <= 0.0 <= sep["hi"]:
        yield (f"[plan] WARNING: two configs of the space differ by {sep['diff']:+.3g} after one epoch, within "
                     f"the paired 95% interval [{sep['lo']:.3g}, {sep['hi']:.3g}] (half-width {sep['half_width']:.3g}) "
                     f"of the {sep['items']} frozen items: the intervals cannot separate effects of this size; "
                     "raise train.val_batches (more items) or widen the space")
    else:
        yield (f"[plan] validation set: two configs of the space differ by {sep['diff']:+.3g} after one epoch, "
                     f"interval [{sep['lo']:.3g}, {sep['hi']:.3g}] on {sep['items']} items: separable")
