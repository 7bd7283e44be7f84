"""The loop's typed values: run options cross process boundaries by pickle, the run state is saved as
plain containers (``weights_only`` loads), margins follow the run's selection metric."""
import pickle
from types import SimpleNamespace

import pytest
import torch

from mlplatform.registry import build_config, get_family
from mlplatform.train.options import RunOptions
from mlplatform.train.state import RunState
from mlplatform.train.validation import derived_metrics


def test_run_options_pickle_and_coerce():
    cfg = build_config("riscov", "debug", ["train.epochs=3"])
    opts = RunOptions(family=get_family("riscov"), cfg=cfg, verbose=False)
    back = pickle.loads(pickle.dumps(opts))  # what Ray does with train_loop_config and with_parameters
    assert back == opts and back.cfg.train.epochs == 3
    assert RunOptions.coerce(opts) is opts
    from_dict = RunOptions.coerce({"family": "riscov", "cfg": cfg.to_dict(), "verbose": False})
    assert from_dict == opts  # a family name resolves through the registry to the same bundle
    with pytest.raises(TypeError, match="unknown run option"):
        RunOptions.coerce({"family": "riscov", "cfg": cfg, "epochs": 3})


def test_run_state_payload_is_plain_and_round_trips(tmp_path):
    s = RunState(epoch=2, step=40, best=0.25, best_epoch=1, bad_vals=1)
    s.monitor["guards"]["rms"] = 2
    s.monitor["flagged"].append("guard:rms")
    torch.save({"loop": s.to_payload()}, tmp_path / "s.pt")
    back = RunState.from_payload(torch.load(tmp_path / "s.pt", weights_only=True)["loop"])
    assert back == s
    assert set(s.to_payload()) >= {"epoch", "step", "best", "best_epoch", "bad_vals", "guards", "val_digest"}
    back.forget_selection()
    assert (back.epoch, back.step, back.best, back.best_epoch, back.monitor["flagged"]) == (2, 40, None, -1, [])


def test_select_tracks_the_best_and_patience():
    s = RunState()
    assert s.select(1.0, 0, "min") and not s.select(2.0, 1, "min") and s.bad_vals == 1
    assert not s.select(float("nan"), 2, "min") and s.bad_vals == 2 and s.best_epoch == 0


def test_margins_use_the_runs_selection_metric():
    fam = SimpleNamespace(probes=[])
    extra = {"baseline_zero_nmse": 1.0, "baseline_zero_snr": 2.0}
    means = {"nmse": 0.5, "snr": 5.0}
    assert derived_metrics(fam, extra, means, "val/nmse", "min")["margin_zero"] == pytest.approx(0.5)
    assert derived_metrics(fam, extra, means, "val/snr", "max")["margin_zero"] == pytest.approx(3.0)
