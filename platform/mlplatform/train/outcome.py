"""How a run (or a sweep's trial, or a sweep) ended: a typed value made where the stop happens.

The loop, the sweep driver's callbacks and the jobs each build an :class:`Outcome`; it is rendered to
the ``stop_reason`` text (MLflow tag, Tune result, terminal) only at that edge, and :func:`parse_reason`
is the one way back from that text (the sweep report reads old and new tags from MLflow with it).

Rendered forms (the tag values are unchanged from earlier versions of the platform)::

    completed                      early_stop: <detail>          pruned by ASHA <detail>
    guard:<name>: <detail>         alarm:<name>: <detail>         loss_guard: <detail>
    error[: <detail>]              interrupted <detail>           <detail>; superseded on resume
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["completed", "early_stop", "pruned", "guard", "alarm", "loss_guard", "failed",
               "interrupted", "superseded", "other"]
KINDS: tuple[Kind, ...] = ("completed", "early_stop", "pruned", "guard", "alarm", "loss_guard", "failed",
                           "interrupted", "superseded", "other")

# the MLflow run status each ending implies (a stop by the platform's own rules is KILLED, a crash FAILED)
STATUS: dict[str, str] = {"completed": "FINISHED", "early_stop": "FINISHED", "pruned": "KILLED",
                          "guard": "KILLED", "alarm": "KILLED", "loss_guard": "FAILED", "failed": "FAILED",
                          "interrupted": "KILLED", "superseded": "KILLED", "other": "FINISHED"}

# text prefix of each kind; guard and alarm carry a mechanism name after the colon
_PREFIX: dict[str, str] = {"early_stop": "early_stop: ", "pruned": "pruned by ASHA ", "loss_guard": "loss_guard: ",
                           "failed": "error: ", "interrupted": "interrupted "}


@dataclass(frozen=True)
class Outcome:
    """``kind`` from :data:`KINDS`; ``name`` the guard/alarm that fired; ``detail`` free text for people."""

    kind: Kind
    detail: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}; one of {', '.join(KINDS)}")

    @property
    def status(self) -> str:
        """The MLflow run status this ending implies."""
        return STATUS[self.kind]

    @property
    def stops_early(self) -> bool:
        return self.kind != "completed"

    def render(self) -> str:
        """The ``stop_reason`` text (MLflow tag, Tune result, terminal)."""
        if self.kind in ("guard", "alarm"):
            return f"{self.kind}:{self.name}: {self.detail}"
        if self.kind == "completed":
            return "completed"
        if self.kind == "other":
            return self.detail
        if self.kind == "superseded":
            return f"{self.detail}; superseded on resume" if self.detail else "superseded on resume"
        return _PREFIX[self.kind] + self.detail if self.detail else _PREFIX[self.kind].rstrip(": ")

    def __str__(self) -> str:
        return self.render()


COMPLETED = Outcome("completed")


def parse_reason(text: str | None) -> Outcome | None:
    """The :class:`Outcome` a ``stop_reason`` text renders; ``None`` for no text (no reason recorded)."""
    r = (text or "").strip()
    if not r:
        return None
    if r == "completed":
        return COMPLETED
    for kind in ("guard", "alarm"):
        if r.startswith(f"{kind}:"):
            _, name, detail = (r.split(":", 2) + ["", ""])[:3]
            return Outcome(kind, detail.strip(), name.strip())  # type: ignore[arg-type]
    if r.endswith("superseded on resume"):
        return Outcome("superseded", r[:-len("superseded on resume")].rstrip("; "))
    for kind, prefix in _PREFIX.items():
        head = prefix.rstrip(": ")
        if r.startswith(head):
            return Outcome(kind, r[len(head):].lstrip(": ").strip())  # type: ignore[arg-type]
    if r.startswith("pruned"):  # written by hand or by an older driver
        return Outcome("pruned", r[len("pruned"):].strip())
    return Outcome("other", r)


def from_error(exc: BaseException, limit: int = 400) -> Outcome:
    """A run or trial that raised: ``loss_guard`` when a declared loss bound was violated (found by type,
    through Ray's wrappers), else ``failed`` with the error's last line (at most ``limit`` characters)."""
    from mlplatform.train.terms import LossBoundError

    cause = find_cause(exc, LossBoundError)
    if cause is not None:
        return Outcome("loss_guard", str(cause))
    stuck = find_cause(exc, BaseException, name="WorkerGroupStartupTimeoutError")
    if stuck is not None:  # Ray's text goes on with three "potential causes": the first sentence is the reason
        return Outcome("failed", "workers could not be started: " + str(stuck).split(". Potential causes")[0][:limit])
    text = str(exc).strip()
    return Outcome("failed", text.splitlines()[-1][:limit] if text else type(exc).__name__)


def find_cause(exc: BaseException | None, kind: type, name: str = "") -> BaseException | None:
    """The first exception of type ``kind`` (and class ``name``, when given: Ray's classes without
    importing Ray) in ``exc``'s chain: ``__cause__``/``__context__``, Ray's ``RayTaskError.cause``, Ray
    Train's ``WorkerGroupError.worker_failures`` and ``ControllerError.controller_failure``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind) and (not name or type(e).__name__ == name):
            return e
        todo += [getattr(e, "cause", None), getattr(e, "controller_failure", None), e.__cause__, e.__context__]
        failures = getattr(e, "worker_failures", None)
        if isinstance(failures, dict):
            todo += [f for f in failures.values() if isinstance(f, BaseException)]
    return None
