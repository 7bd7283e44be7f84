"""The exploit-alarm logic on hand-made validation histories (the loop feeds it the real ones)."""
from __future__ import annotations

from mlplatform.integrity.monitor import Monitor, fresh_state
from mlplatform.registry import build_config, get_family


def monitor(family: str = "riscov", overrides=()):
    fam = get_family(family)
    cfg = build_config(family, "debug", list(overrides))
    return Monitor(fam, cfg, fam.guards(cfg), fam.selection_metric, fam.mode), fresh_state()


def feed(mon, state, rows, digest="d0", optimised=("nmse_blend", "loss"), start=0):
    fired = []
    for epoch, row in enumerate(rows, start):
        fired += [e.name for e in mon.update(state, dict(row), epoch, digest, list(optimised))]
    return fired


def test_a_component_falling_while_the_selection_metric_worsens_fires_divergence():
    mon, st = monitor("tse", ["train.alarm_warmup_epochs=0"])
    rows = [{"val/ta_energy": 5.0 - i, "val/si_sdr_tp_unseen": 3.0 - 0.5 * i, "val/loss": 40.0} for i in range(4)]
    fired = feed(mon, st, rows, optimised=("ta_energy", "loss"))
    assert fired == ["alarm:divergence_ta_energy"]  # fires once (at the 3rd validation), never for 'loss'
    assert st["flagged"] == ["alarm:divergence_ta_energy"]


def test_no_divergence_when_the_metric_improves_or_during_warmup():
    mon, st = monitor("tse", ["train.alarm_warmup_epochs=0"])
    rows = [{"val/ta_energy": 5.0 - i, "val/si_sdr_tp_unseen": 1.0 + i, "val/loss": 40.0 - i} for i in range(6)]
    assert feed(mon, st, rows, optimised=("ta_energy", "loss")) == []
    mon, st = monitor("tse", ["train.alarm_warmup_epochs=10"])
    rows = [{"val/ta_energy": 5.0 - i, "val/si_sdr_tp_unseen": 3.0 - 0.5 * i} for i in range(6)]
    assert feed(mon, st, rows, optimised=("ta_energy",)) == []


def test_a_worsening_baseline_margin_counts_like_the_metric():
    mon, st = monitor("tse", ["train.alarm_warmup_epochs=0"])
    rows = [{"val/ta_energy": 5.0 - i, "val/si_sdr_tp_unseen": 2.0, "val/margin_silence": 1.0 - 0.3 * i} for i in range(3)]
    assert feed(mon, st, rows, optimised=("ta_energy",)) == ["alarm:divergence_ta_energy"]


def test_a_changed_validation_set_fires_at_once_and_only_once():
    mon, st = monitor()
    assert mon.update(st, {"val/nmse_blend": 0.1}, 0, "aaa", ["loss"]) == []
    assert mon.update(st, {"val/nmse_blend": 0.1}, 1, "aaa", ["loss"]) == []
    ev = mon.update(st, {"val/nmse_blend": 0.1}, 2, "bbb", ["loss"])
    assert [e.name for e in ev] == ["alarm:val_set_changed"] and "aaa" in ev[0].message
    assert mon.update(st, {"val/nmse_blend": 0.1}, 3, "ccc", ["loss"]) == []  # flagged once per run


def test_reliance_collapse_needs_guard_patience_validations_after_warmup():
    mon, st = monitor(overrides=["train.guard_patience=3", "train.alarm_warmup_epochs=1"])
    rows = [{"val/nmse_blend": 0.1, "val/reliance_beta0": -0.2}] * 3
    assert feed(mon, st, rows) == []  # epoch 0 is warmup; epochs 1, 2 count 2 < 3
    assert feed(mon, st, [{"val/nmse_blend": 0.1, "val/reliance_beta0": -0.2}], start=3) == ["alarm:reliance_beta0"]
    mon, st = monitor(overrides=["train.guard_patience=2", "train.alarm_warmup_epochs=0"])
    rows = [{"val/nmse_blend": 0.1, "val/reliance_beta0": v} for v in (-0.1, 0.05, -0.1, 0.02)]
    assert feed(mon, st, rows) == []  # never two in a row


def test_alarms_off_keeps_guards_only():
    mon, st = monitor("tse", ["train.alarms=false", "train.guard_patience=1", "train.alarm_warmup_epochs=0"])
    rows = [{"val/rms_ratio": 0.01, "val/ta_energy": 5.0 - i, "val/si_sdr_tp_unseen": 3.0 - i} for i in range(4)]
    assert feed(mon, st, rows, digest="x", optimised=("ta_energy",)) == ["guard:rms_ratio"]


def test_selector_collapse_fires_when_the_across_item_spread_stays_low_after_warmup():
    mon, st = monitor("creative", ["train.guard_patience=2", "train.alarm_warmup_epochs=1",
                                   "train.alarm_min_clip_spread=0.001"])
    rows = [{"val/selection_loss": 1.0, "val/clip_spread": v} for v in (0.0, 0.0005, 0.002, 0.0001)]
    assert feed(mon, st, rows, optimised=("agent",)) == []  # warmup, 1 low, reset, 1 low
    ev = mon.update(st, {"val/selection_loss": 1.0, "val/clip_spread": 0.0}, 4, "d0", ["agent"])
    assert [e.name for e in ev] == ["alarm:selector_collapse"] and "val/clip_spread=0" in ev[0].message
    mon, st = monitor("creative", ["train.guard_patience=1", "train.alarm_warmup_epochs=0",
                                   "train.alarm_min_clip_spread=0"])  # 0 = off
    assert feed(mon, st, [{"val/selection_loss": 1.0, "val/clip_spread": 0.0}] * 3, optimised=("agent",)) == []
