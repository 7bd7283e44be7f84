"""``LossTerms``: named loss components with weights and declared bounds.

Every family's ``compute_loss`` returns one. The shared loop logs every component, checks every
declared bound and finiteness each step, and raises :class:`LossBoundError` naming the component,
the step and the value. Declaring bounds is how a loss exploit becomes loud: a term declared
non-negative can never again reward the optimiser for going below zero (the tse story of a negative
energy term rewarding silence is told in docs/families/tse.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Bound:
    lo: float = -math.inf
    hi: float = math.inf

    def contains(self, v: float, tol: float = 1e-6) -> bool:
        return (self.lo - tol) <= v <= (self.hi + tol)

    def __str__(self) -> str:
        if self.lo == 0.0 and self.hi == math.inf:
            return "nonneg"
        return f"bounded({self.lo}, {self.hi})"


NONNEG = Bound(0.0, math.inf)
FINITE = Bound()


def bounded(lo: float, hi: float) -> Bound:
    return Bound(float(lo), float(hi))


class LossBoundError(RuntimeError):
    """A loss component was non-finite or outside its declared bound."""

    def __init__(self, component: str, step: int, value: float, bound: Bound):
        self.component, self.step, self.value, self.bound = component, step, value, bound
        kind = "is not finite" if not math.isfinite(value) else f"violates its declared bound {bound}"
        super().__init__(f"loss component '{component}' {kind} at step {step}: value={value!r}")

    def __reduce__(self) -> tuple:
        # rebuilt from its fields, so it crosses Ray (worker -> driver) as itself: the sweep driver
        # classifies a failed trial by this type, not by its text
        return (type(self), (self.component, self.step, self.value, self.bound))


@dataclass
class Term:
    value: torch.Tensor  # scalar
    weight: float
    bound: Bound


@dataclass
class LossTerms:
    """Named, weighted, bounded components. ``total`` is the weighted sum of the weighted ones.

    A component with weight 0 is detached (computed, logged, checked, never back-propagated).
    ``outputs`` carries tensors the family's validation metrics need, so validation does one forward.
    """

    terms: dict[str, Term] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: torch.Tensor, weight: float, bound: Bound = NONNEG) -> "LossTerms":
        if name in self.terms:
            raise ValueError(f"loss component '{name}' added twice")
        if value.dim() != 0:
            raise ValueError(f"loss component '{name}' must be a scalar, got shape {tuple(value.shape)}")
        if weight == 0:
            value = value.detach()
        self.terms[name] = Term(value, float(weight), bound)
        return self

    @property
    def total(self) -> torch.Tensor:
        parts = [t.weight * t.value for t in self.terms.values() if t.weight != 0]
        if not parts:
            raise ValueError("LossTerms has no component with a non-zero weight: nothing to optimise")
        return torch.stack([p.float() for p in parts]).sum()

    def check(self, step: int) -> dict[str, float]:
        """Check finiteness and bounds of every component and of the total; return the float values."""
        vals = {}
        for name, t in self.terms.items():
            v = float(t.value.detach())
            if not math.isfinite(v) or not t.bound.contains(v):
                raise LossBoundError(name, step, v, t.bound)
            vals[name] = v
        tot = float(self.total.detach())
        if not math.isfinite(tot):
            raise LossBoundError("total", step, tot, FINITE)
        vals["loss"] = tot
        return vals

    def weights(self) -> dict[str, float]:
        return {n: t.weight for n, t in self.terms.items()}
