"""Exploit alarms and guards, evaluated after every validation.

An optimiser will win a loss by cheating when it can (docs/integrity.md and the family pages under
docs/families/ tell each family's case). The monitor flags a run (and, with
``train.guard_action=stop``, as in sweeps, stops it with the reason in Tune and MLflow) when:

- **guard/<name>**: a family's collapse signal (rms ratio, ratio spread, codebook utilisation) stays
  outside its band for ``train.guard_patience`` validations;
- **alarm/divergence_<component>**: an optimised loss component kept falling over the last
  ``train.alarm_window`` validations while the selection metric, or a baseline margin, kept getting
  worse (by more than ``train.alarm_metric_tol`` relative) — the loss is being won, not the task;
- **alarm/reliance_<probe>**: a reliance probe shows the network (or a mechanism) contributes nothing
  (``val/reliance_<probe>`` <= ``train.alarm_min_reliance``) for ``train.guard_patience`` validations;
- **alarm/selector_collapse**: a family that logs ``val/clip_spread`` (the across-item spread of choices the
  model makes from its input, e.g. creative's window starts and ratios) keeps it at or below
  ``train.alarm_min_clip_spread`` for ``train.guard_patience`` validations: the choices ignore the input;
- **alarm/val_set_changed**: the validation batches' hash changed between calls (trials and epochs
  would be compared on different items, as with a set redrawn at every call).

All state lives in the loop's checkpointed dict, so a resumed run alarms exactly as the original.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlplatform.protocol import Family, GuardSpec

# best_floors: the floors' values on the selection metric at the best checkpoint (for alarm:below_floor)
STATE_KEYS = {"guards": dict, "flagged": list, "history": dict, "alarm_counts": dict, "val_digest": str,
              "best_floors": dict}


@dataclass(frozen=True)
class Event:
    name: str  # guard:<name> or alarm:<name>
    message: str


def fresh_state() -> dict[str, Any]:
    return {k: t() for k, t in STATE_KEYS.items()}


def _monotone(xs: list[float], down: bool) -> bool:
    return all((b < a) if down else (b > a) for a, b in zip(xs, xs[1:]))


class Monitor:
    def __init__(self, fam: Family, cfg: Any, guards: list[GuardSpec], metric: str, mode: str):
        self.fam, self.cfg, self.guards, self.metric, self.mode = fam, cfg, guards, metric, mode

    def update(self, state: dict[str, Any], metrics: dict[str, Any], epoch: int, digest: str | None,
               optimised: list[str]) -> list[Event]:
        """Record this validation, write ``guard/*``/``alarm/*`` counters into ``metrics``; return the events
        that fired now (each fires once per run)."""
        for k, t in STATE_KEYS.items():
            state.setdefault(k, t())
        t = self.cfg.train
        fired: list[Event] = []

        def count(name: str, hit: bool, patience: int, message: str, kind: str = "alarm") -> None:
            table = state["guards"] if kind == "guard" else state["alarm_counts"]
            cnt = table.get(name, 0) + 1 if hit else 0
            table[name] = cnt
            metrics[f"{kind}/{name}"] = cnt
            key = f"{kind}:{name}"
            if cnt >= patience and key not in state["flagged"]:
                state["flagged"].append(key)
                fired.append(Event(key, message))

        for g in self.guards:
            if g.metric in metrics:
                v = metrics[g.metric]
                count(g.name, g.violated(v), t.guard_patience,
                      f"{g.metric}={v:.4g} outside [{g.lo}, {g.hi}] for {t.guard_patience} validations: {g.reason}",
                      kind="guard")
        if not t.alarms:
            return fired
        if digest is not None:
            old = state["val_digest"]
            changed = bool(old) and old != digest
            count("val_set_changed", changed, 1,
                  f"the validation batches changed between validations (sha256 {old[:12]} -> {digest[:12]}): "
                  "epochs and trials are compared on different items; use train.val_set=frozen")
            state["val_digest"] = old or digest
        if epoch + 1 <= t.alarm_warmup_epochs:
            return fired
        self._divergence(state, metrics, optimised, count)
        for p in self.fam.probes:
            key = f"val/reliance_{p.name}"
            if p.collapse and key in metrics:
                v = metrics[key]
                count(f"reliance_{p.name}", v <= t.alarm_min_reliance, t.guard_patience,
                      f"{key}={v:.4g} <= {t.alarm_min_reliance} for {t.guard_patience} validations: "
                      f"{p.meaning or 'the probed mechanism contributes nothing'}")
        spread = metrics.get("val/clip_spread")
        if isinstance(spread, (int, float)) and t.alarm_min_clip_spread > 0:
            count("selector_collapse", spread <= t.alarm_min_clip_spread, t.guard_patience,
                  f"val/clip_spread={spread:.4g} <= {t.alarm_min_clip_spread} for {t.guard_patience} validations: "
                  "the model makes (nearly) the same choices for every item, whatever its input")
        return fired

    def _divergence(self, state: dict[str, Any], metrics: dict[str, Any], optimised: list[str], count: Any) -> None:
        t = self.cfg.train
        hist: dict[str, list[float]] = state["history"]
        w = t.alarm_window
        watched = {f"val/{c}" for c in optimised} | {self.metric}
        watched |= {k for k in metrics if k.startswith("val/margin_")}
        for k in sorted(watched):
            if isinstance(metrics.get(k), (int, float)):
                hist[k] = (hist.get(k, []) + [float(metrics[k])])[-w:]
        worse: list[str] = []
        for k, mode in [(self.metric, self.mode)] + [(k, "max") for k in sorted(hist) if k.startswith("val/margin_")]:
            h = hist.get(k, [])
            if len(h) == w and _monotone(h, down=(mode == "max")):
                scale = max(abs(h[0]), 1e-12)
                if abs(h[-1] - h[0]) > t.alarm_metric_tol * scale:
                    worse.append(f"{k} {h[0]:.4g} -> {h[-1]:.4g}")
        for c in optimised:
            k = f"val/{c}"
            h = hist.get(k, [])
            falling = len(h) == w and _monotone(h, down=True)
            count(f"divergence_{c}", falling and bool(worse), t.alarm_patience,
                  f"loss component {c} fell {h[0]:.4g} -> {h[-1]:.4g} over {w} validations while "
                  f"{'; '.join(worse)} got worse: the loss is being won, not the task" if h else "")
