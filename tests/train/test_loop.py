"""The shared loop: exact resume, deterministic validation, --reset-optimizer, loss bounds, stopping."""
from pathlib import Path

import pytest
import torch

from mlplatform.config import ConfigError
from mlplatform.registry import build_config, get_family
from mlplatform.train.checkpoint import CheckpointError, load_checkpoint
from mlplatform.train.executors import LocalReporter, run_local
from mlplatform.train.loop import run_training
from mlplatform.train.terms import NONNEG, LossBoundError, LossTerms, bounded

SMALL = ["data.n_train=512", "data.n_val=128", "data.n_test=64", "train.batch_size=32", "train.val_batches=4",
         "model.hidden=32"]


def run(tmp: Path, overrides, **opts):
    cfg = build_config("riscov", "debug", SMALL + list(overrides))
    return run_local({"family": "riscov", "cfg": cfg.to_dict(), "work_dir": str(tmp), "verbose": False, **opts})


def final_state(work: Path) -> dict:
    last = sorted(Path(work).glob("epoch_*"))[-1]
    return load_checkpoint(last, "riscov")


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


class Killed(Exception):
    pass


class DiesAfter(LocalReporter):
    """A reporter whose process 'dies' right after the n-th epoch's checkpoint was reported."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if len(self.history) == self.n:
            raise Killed()


def interrupted(tmp: Path, overrides, after: int) -> Path:
    cfg = build_config("riscov", "debug", SMALL + list(overrides))
    with pytest.raises(Killed):
        run_training({"family": "riscov", "cfg": cfg.to_dict(), "work_dir": str(tmp), "verbose": False},
                     DiesAfter(after))
    return sorted(tmp.glob("epoch_*"))[-1]


def test_resume_reproduces_uninterrupted_run_bitwise(home, tmp_path):
    ov = ["train.epochs=4", "model.dropout=0.1", "train.beta_jitter=0.02"]  # dropout: RNG must be restored too
    full, _ = run(tmp_path / "full", ov)
    ck = interrupted(tmp_path / "half", ov, after=2)
    resumed, rep = run(tmp_path / "resumed", ov, resume_from=str(ck))
    assert [m["epoch"] for m in rep.history] == [3, 4]
    a, b = final_state(tmp_path / "full"), final_state(tmp_path / "resumed")
    assert_same_weights(a["model"], b["model"])
    assert a["loop"]["step"] == b["loop"]["step"]
    assert full["metrics"]["val/nmse_blend"] == resumed["metrics"]["val/nmse_blend"]


def test_validation_does_not_change_the_training_trajectory(home, tmp_path):
    run(tmp_path / "often", ["train.epochs=3", "train.val_every=1", "model.dropout=0.1"])
    run(tmp_path / "rarely", ["train.epochs=3", "train.val_every=50", "model.dropout=0.1"])
    assert_same_weights(final_state(tmp_path / "often")["model"], final_state(tmp_path / "rarely")["model"])


def test_two_validations_of_one_checkpoint_are_identical(home, tmp_path):
    from mlplatform.protocol import DataContext
    from mlplatform.train.loop import validate

    run(tmp_path / "w", ["train.epochs=1"])
    cfg = build_config("riscov", "debug", SMALL + ["train.epochs=1"])
    fam = get_family("riscov")
    model = fam.build_model(cfg)
    model.load_state_dict(final_state(tmp_path / "w")["model"])
    data = fam.build_datasets(cfg, DataContext())
    torch.manual_seed(1)
    m1 = validate(fam, model, data, cfg, 0, 0, fam.schedule(cfg, 0), torch.device("cpu"), {"verbose": False})
    before = torch.get_rng_state()
    m2 = validate(fam, model, data, cfg, 0, 0, fam.schedule(cfg, 0), torch.device("cpu"), {"verbose": False})
    assert m1 == m2
    assert torch.equal(before, torch.get_rng_state())  # training RNG restored


def test_reset_optimizer_keeps_weights_and_step_but_not_moments(home, tmp_path):
    ov = ["train.epochs=3"]
    ck = interrupted(tmp_path / "a", ov, after=2)
    saved = load_checkpoint(ck, "riscov")
    per_epoch = saved["loop"]["step"] // 2
    _, rep = run(tmp_path / "b", ov, resume_from=str(ck), reset_optimizer=True)
    after = final_state(tmp_path / "b")
    assert rep.history[0]["epoch"] == 3  # epoch and step restored
    assert after["loop"]["step"] == saved["loop"]["step"] + per_epoch
    adam = next(iter(after["optimizer"]["state"].values()))
    assert int(adam["step"]) == per_epoch  # fresh Adam: only this epoch's steps
    run(tmp_path / "c", ov, resume_from=str(ck))
    adam_kept = next(iter(final_state(tmp_path / "c")["optimizer"]["state"].values()))
    assert int(adam_kept["step"]) == 3 * per_epoch  # restored Adam carries on


def test_checkpoint_from_another_family_is_refused(home, tmp_path):
    run(tmp_path / "a", ["train.epochs=1"])
    ck = sorted((tmp_path / "a").glob("epoch_*"))[-1]
    with pytest.raises(CheckpointError, match="belongs to family 'riscov', not 'tse'"):
        load_checkpoint(ck, "tse")
    bad = tmp_path / "junk"
    bad.mkdir()
    (bad / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(bad)


def test_nan_loss_is_caught_with_component_step_and_value(home, tmp_path):
    with pytest.raises(LossBoundError) as e:
        run(tmp_path / "nan", ["train.epochs=2", "train.inject_nan_at_step=5"])
    msg = str(e.value)
    assert "nmse_blend" in msg and "at step 5" in msg and "nan" in msg


def test_loss_terms_bounds_and_weights():
    t = LossTerms()
    t.add("a", torch.tensor(2.0, requires_grad=True), 0.5)
    t.add("b", torch.tensor(-0.05), 0.1, bounded(-1, 0))
    t.add("c", torch.tensor(3.0, requires_grad=True), 0.0)
    assert not t.terms["c"].value.requires_grad  # weight 0: logged, never back-propagated
    assert float(t.total.detach()) == pytest.approx(0.5 * 2.0 + 0.1 * -0.05)
    assert t.check(7)["loss"] == pytest.approx(0.995)
    neg = LossTerms().add("energy", torch.tensor(-3.0), 0.1, NONNEG)
    with pytest.raises(LossBoundError, match="'energy' violates its declared bound nonneg at step 9: value=-3.0"):
        neg.check(9)
    with pytest.raises(ValueError, match="scalar"):
        LossTerms().add("v", torch.ones(3), 1.0)


def test_early_stop_patience_and_guards(home, tmp_path):
    # lr so small nothing improves: patience 2 stops the run early
    s, rep = run(tmp_path / "p", ["train.epochs=10", "train.early_stop_patience=2", "optim.lr=1e-9"])
    assert s["stop_reason"].startswith("early_stop") and len(rep.history) < 10
    # a guard that is always violated fires after guard_patience validations and stops the run
    import dataclasses

    from mlplatform.protocol import GuardSpec
    from mlplatform.registry import registered
    fam = get_family("riscov")
    patched = dataclasses.replace(fam, name="riscov_guarded",
                                  guards=lambda cfg: [GuardSpec("test_guard", "val/nmse_blend", hi=-1.0,
                                                                reason="always violated")])
    cfg = build_config("riscov", "debug", SMALL + ["train.epochs=6", "train.guard_patience=2",
                                                  "train.guard_action=stop"])
    with registered(patched):
        s, rep = run_local({"family": "riscov_guarded", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "g"),
                            "verbose": False})
    with pytest.raises(ConfigError, match="unknown family 'riscov_guarded'"):
        get_family("riscov_guarded")  # gone after the block
    assert s["stop_reason"].startswith("guard:test_guard") and len(rep.history) == 2
    assert rep.history[-1]["guard/test_guard"] == 2
