"""Deterministic validation, scored beside the family's trivial baselines and reliance probes.

Per batch: the family's loss (same ``compute_loss``, same config: no second code path with its own
default weights: a validation loss weighted differently from training ranks checkpoints by a
different objective), its per-sample metrics, every declared baseline (the trivial
outputs the losses could drift to) and every reliance probe (the model with one mechanism switched
off). After the means: ``val/margin_<baseline>`` = model minus baseline on the run's selection metric and
``val/reliance_<probe>``, both signed so that positive is better.

Floors (baselines included) and ceilings are scored on the same batches: ``val/floor_<name>``,
``val/ceiling_<name>`` and ``val/captured_gain`` (``mlplatform.integrity.floors``, docs/integrity.md).

With ``info`` given, the per-item values of the selection metric (the model's and every floor's) come back
in ``info["per_item"]``: the loop stores the selected checkpoint's with it, and the sweep report turns them
into paired bootstrap confidence intervals (``mlplatform.tune.noise``, docs/sweep_report.md).
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import torch

from mlplatform.integrity.contracts import selection
from mlplatform.integrity.floors import gain_metrics
from mlplatform.integrity.frozen import feed, new_digest
from mlplatform.protocol import Family, StepContext
from mlplatform.rng import isolated_rng


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class _Means:
    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, t: Any) -> None:
        t = torch.as_tensor(t).detach().float().flatten()
        if t.numel():
            self.sums[key] += float(t.sum())
            self.counts[key] += t.numel()

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k] > 0}


class _Items:
    """Per-item values of one metric (the run's selection metric, without ``val/``): the model's and each
    floor's (trivial baselines count as floors, as in ``mlplatform.integrity.floors``), in batch order.
    A metric the family does not score per item (a loss term) is simply not recorded."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.values: dict[str, list[float]] = defaultdict(list)

    def add(self, who: str, key: str, t: Any) -> None:
        if key == self.metric:
            self.values[who].extend(torch.as_tensor(t).detach().float().flatten().cpu().tolist())

    def record(self, metric: str) -> dict[str, Any]:
        """``{"metric", "model": [...], "floors": {name: [...]}}``; empty lists when not scored per item."""
        floors = {k.split(":", 1)[1]: v for k, v in self.values.items()
                  if k.startswith("floor:") and len(v) == len(self.values.get("model", []))}
        return {"metric": metric, "model": list(self.values.get("model", [])), "floors": floors}


def _score_integrity(fam: Family, model: torch.nn.Module, batch: Any, terms: Any, ctx: StepContext,
                     extra: _Means, items: _Items) -> None:
    """One batch's baselines, floors, ceilings and probes into ``extra`` (and the floors' per-item values)."""
    for prefix, scorer in (("baseline", fam.baselines), ("floor", fam.floors), ("ceiling", fam.ceilings)):
        if scorer is None:
            continue
        for name, mets in scorer(model, batch, terms, ctx).items():
            for k, t in mets.items():
                extra.add(f"{prefix}_{name}_{k}", t)
                if prefix != "ceiling":
                    items.add(f"floor:{name}", k, t)
    for p in fam.probes:
        for k, t in p.run(model, batch, terms, ctx).items():
            extra.add(f"probe_{p.name}_{k}", t)


def signed(mode: str) -> float:
    return 1.0 if mode == "max" else -1.0


def derived_metrics(fam: Family, extra: dict[str, float], model_means: dict[str, float], metric: str,
                    mode: str) -> dict[str, float]:
    """``baseline_*``/``probe_*`` means plus the margins and reliances on the run's selection ``metric``
    (``train.selection_metric`` or the family's), signed by its ``mode`` so that positive is better."""
    sel = metric.removeprefix("val/")
    s = signed(mode)
    out = dict(extra)
    if sel not in model_means:
        return out
    for key, v in extra.items():
        for prefix in ("baseline_", "floor_"):  # every floor gets a margin, like the trivial baselines
            if key.startswith(prefix) and key.endswith(f"_{sel}"):
                name = key[len(prefix):-len(sel) - 1]
                out[f"margin_{name}"] = s * (model_means[sel] - v)
    for p in fam.probes:
        pv = extra.get(f"probe_{p.name}_{sel}")
        if pv is None:
            continue
        if p.versus == "model":
            out[f"reliance_{p.name}"] = s * (model_means[sel] - pv)
        else:
            bv = extra.get(f"baseline_{p.versus.removeprefix('baseline:')}_{sel}")
            if bv is not None:
                out[f"reliance_{p.name}"] = s * (pv - bv)
    return out


def validate(fam: Family, model: torch.nn.Module, data: Any, cfg: Any, epoch: int, step: int,
             schedule: dict[str, float], device: torch.device, family_state: dict,
             info: dict[str, Any] | None = None) -> dict[str, float]:
    """Validation metrics (``val/...``) under a fixed seed, caller's RNG restored; ``info["digest"]`` is
    the SHA-256 of the batches seen (the loop alarms if it ever changes) and ``info["optimised"]`` the
    loss components with a non-zero weight."""
    was_training = model.training
    model.eval()
    own, extra = _Means(), _Means()
    digest = new_digest()  # hashed as it goes: nothing extra is kept in memory
    optimised: set[str] = set()
    metric, mode = selection(fam, cfg)
    items = _Items(metric.removeprefix("val/"))
    fresh = cfg.train.val_set == "fresh"  # a set redrawn per call, on request only (docs/integrity.md)
    rng = contextlib.nullcontext() if fresh else isolated_rng(cfg.train.val_seed)
    with torch.no_grad(), rng:
        for i, batch in enumerate(data.val_batches()):
            if i >= cfg.train.val_batches:
                break
            if info is not None:
                feed(digest, batch)
            batch = to_device(batch, device)
            ctx = StepContext(cfg, epoch, step, False, schedule, device, family_state)
            terms = fam.compute_loss(model, batch, ctx)
            optimised.update(n for n, w in terms.weights().items() if w != 0)
            for k, v in terms.check(step).items():
                own.add(k, v)
            for k, t in fam.evaluate(model, batch, terms, ctx).items():
                own.add(k, t)
                items.add("model", k, t)
            if cfg.train.integrity:
                _score_integrity(fam, model, batch, terms, ctx, extra, items)
    model.train(was_training)
    means = own.means()
    out = fam.finalize_metrics(means)
    extra_means = extra.means()
    out.update(derived_metrics(fam, extra_means, out, metric, mode))
    sel = metric.removeprefix("val/")
    spec = fam.metrics.get(metric)
    gains = gain_metrics(extra_means, out.get(sel), sel, mode, spec.scale if spec else "linear", fam.gain_ceiling)
    for key in gains:  # floor_<name>/ceiling_<name> replace their raw per-metric keys on the selection metric
        out.pop(f"{key}_{sel}", None)
    out.update(gains)
    for name, met in fam.gain_sets.items():  # e.g. tse's captured gain per validation set
        mspec = fam.metrics.get(f"val/{met}")
        g = gain_metrics(extra_means, out.get(met), met, mode, mspec.scale if mspec else "linear",
                         fam.gain_ceiling).get("captured_gain")
        if g is not None:
            out[f"captured_gain_{name}"] = g
    if info is not None:
        info["digest"] = digest.hexdigest()
        info["optimised"] = sorted(optimised | {"loss"})
        info["per_item"] = items.record(metric)
    return {f"val/{k}": v for k, v in out.items()}
