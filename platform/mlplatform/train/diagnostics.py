"""Sanity checks to pass before spending a sweep, for any family: the one-batch gradient litmus (here) and
the overfit test (``jobs/overfit.py``). A model that cannot lower its loss on one frozen batch, or whose
gradients are zero or not finite, has a wiring bug no hyperparameter will fix."""
from __future__ import annotations

import math
from typing import Any

import torch

from mlplatform.protocol import DataContext, Family, StepContext
from mlplatform.rng import seed_everything
from mlplatform.train.setup import build_optimizer
from mlplatform.train.validation import to_device


def gradient_litmus(fam: Family, cfg: Any, steps: int = 5, min_drop: float = 0.2) -> tuple[bool, list[dict], str]:
    """Freeze one batch, take ``steps`` optimiser steps (with the family's litmus schedule, e.g. β
    warming up 0 → beta_final), and pass only if the loss falls by ``min_drop`` and every step's
    gradient norm is finite and non-zero, and every trainable tensor received a gradient. Each row
    holds the step's ``schedule``: every value of the family's schedule, whatever it names."""
    seed_everything(cfg.train.seed)
    model = fam.build_model(cfg)
    data = fam.build_datasets(cfg, DataContext())
    batch = to_device(next(iter(data.train_batches(0))), torch.device("cpu"))
    opt = build_optimizer(cfg, model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    got_grad = {n: False for n in params}
    rows: list[dict] = []
    state: dict[str, Any] = {"rank": 0}
    for i in range(steps):
        sched = fam.litmus_schedule(cfg, i, steps) if fam.litmus_schedule else fam.schedule(cfg, 0)
        terms = fam.compute_loss(model, batch, StepContext(cfg, 0, i, True, sched, torch.device("cpu"), state))
        terms.check(i)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        norms = []
        for n, p in params.items():
            if p.grad is not None:
                g = float(p.grad.norm())
                norms.append(g)
                got_grad[n] = got_grad[n] or (math.isfinite(g) and g > 0)
        total_norm = math.sqrt(sum(g * g for g in norms)) if norms else 0.0
        rows.append({"step": i + 1, "schedule": {k: float(v) for k, v in sched.items()},
                     "loss": float(terms.total.detach()), "avg_grad_norm": sum(norms) / max(1, len(norms)),
                     "grad_norm": total_norm})
        opt.step()
    first, last = rows[0]["loss"], rows[-1]["loss"]
    drop = (first - last) / abs(first) if first else 0.0
    bad_norm = [r["step"] for r in rows if not (math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0)]
    no_grad = [n for n, ok in got_grad.items() if not ok]
    if bad_norm:
        return False, rows, f"gradient norm zero or not finite at step(s) {bad_norm}"
    if no_grad:
        return False, rows, f"{len(no_grad)} parameter tensor(s) never received a gradient: {', '.join(no_grad[:5])}"
    if drop < min_drop:
        return False, rows, f"loss fell only {100 * drop:.1f}% (need {100 * min_drop:.0f}%)"
    return True, rows, f"loss fell {100 * drop:.1f}%"
