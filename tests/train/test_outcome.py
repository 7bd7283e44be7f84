"""Typed outcomes: every kind renders to the ``stop_reason`` text and parses back to itself; tags written
by earlier versions parse to the same kinds; a loss-bound failure is recognised by its type."""
import pickle
from types import SimpleNamespace

import pytest

from mlplatform.train.outcome import KINDS, STATUS, Outcome, find_cause, from_error, parse_reason
from mlplatform.train.terms import NONNEG, LossBoundError
from mlplatform.tune.callbacks import SweepProgress, trial_error
from mlplatform.tune.outcomes import OUTCOMES, outcome


def _example(kind: str) -> Outcome:
    if kind == "completed":
        return Outcome("completed")
    return Outcome(kind, "x fell 0.5 -> 0.1: look", "rms_ratio" if kind in ("guard", "alarm") else "")


@pytest.mark.parametrize("kind", KINDS)
def test_render_parse_round_trip(kind):
    o = _example(kind)
    assert parse_reason(o.render()) == o
    assert o.status == STATUS[kind] and outcome(o.render(), o.status) in OUTCOMES


@pytest.mark.parametrize("text,kind,name", [
    ("completed", "completed", ""),
    ("early_stop: no improvement in 3 validations", "early_stop", ""),
    ("guard:rms_ratio: val/rms_ratio=0.01 outside [0.1, 10]", "guard", "rms_ratio"),
    ("alarm:reliance_beta0: val/reliance_beta0=0 <= 0", "alarm", "reliance_beta0"),
    ("loss_guard: loss component 'loss' is not finite at step 3: value=nan", "loss_guard", ""),
    ("pruned by ASHA after epoch 2", "pruned", ""),
    ("error: boom", "failed", ""),
    ("error", "failed", ""),
    ("interrupted (continue with --resume)", "interrupted", ""),
    ("driver died before the sweep state recorded this trial; superseded on resume", "superseded", ""),
    ("something else", "other", ""),
])
def test_old_tags_parse(text, kind, name):
    o = parse_reason(text)
    assert o.kind == kind and o.name == name and o.render() == text
    assert parse_reason("") is None and parse_reason(None) is None


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown outcome kind"):
        Outcome("stopped")  # type: ignore[arg-type]


class _RayLikeError(Exception):
    """Stands in for Ray's wrappers: the original exception kept as an attribute, text that never names it."""

    def __init__(self, cause=None, worker_failures=None):
        super().__init__("the trial raised (see the worker log)")
        self.cause, self.worker_failures = cause, worker_failures


def test_loss_bound_error_is_classified_by_type_not_text():
    err = LossBoundError("loss_nmse", 3, float("nan"), NONNEG)
    assert pickle.loads(pickle.dumps(err)).component == "loss_nmse"  # crosses Ray as itself
    assert from_error(_RayLikeError(cause=err)) == Outcome("loss_guard", str(err))
    assert find_cause(_RayLikeError(worker_failures={0: _RayLikeError(cause=err)}), LossBoundError) is err
    # the text alone decides nothing: an error that merely names the class is a plain failure
    assert from_error(RuntimeError("LossBoundError")).kind == "failed"


def test_progress_counts_a_loss_bound_trial_from_its_pickled_error(tmp_path, capsys):
    err_file = tmp_path / "error.txt"
    err_file.write_text("Failure # 1\nthe trial raised (see the worker log)\n")
    err = LossBoundError("loss", 3, float("inf"), NONNEG)
    bad = SimpleNamespace(trial_id="t1", error_file=str(err_file), get_pickled_error=lambda: _RayLikeError(cause=err))
    other = SimpleNamespace(trial_id="t2", error_file=str(err_file), get_pickled_error=lambda: None)
    assert trial_error(bad).kind == "loss_guard" and trial_error(other).kind == "failed"
    p = SweepProgress("val/x", "min", n_trials=2, max_concurrent=1)
    p.on_trial_error(0, [bad, other], bad)
    p.on_trial_error(0, [bad, other], other)
    assert p.done == {"t1": "loss_guard", "t2": "failed"}
    assert "1 LOSS-GUARD, 1 FAILED" in capsys.readouterr().out.strip().splitlines()[-1]
