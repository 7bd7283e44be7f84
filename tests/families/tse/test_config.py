"""tse presets, seed defaults, config errors, search space."""
from __future__ import annotations

import pytest

from mlplatform.config import ConfigError
from mlplatform.families.tse.config import TseConfig
from mlplatform.families.tse.family import FAMILY
from mlplatform.registry import build_config, get_family
from mlplatform.tune.search_space import default_path, load_search_space


def test_seed_defaults():
    c = TseConfig()
    assert (c.loss.ta_weight, c.loss.target_db, c.loss.lambda_amp, c.loss.amp_floor) == (0.1, -30.0, 1.0, 0.05)
    assert c.train.val_batches == 200 and c.train.phase2_step == 200_000
    assert (c.train.guard_rms_lo, c.train.guard_rms_hi) == (0.5, 2.0)
    assert c.data.p_ta == 0.2


@pytest.mark.parametrize("preset", ["debug", "cpu", "full"])
def test_presets_build_a_model_that_keeps_the_length(preset):
    import torch

    cfg = build_config("tse", preset)
    model = FAMILY.build_model(cfg)
    n = int(0.3 * cfg.data.sample_rate) + 3
    out = model(torch.zeros(1, n), torch.randn(1, int(0.2 * cfg.data.sample_rate)) * 0.01)
    assert out.shape == (1, n)
    if preset == "full":
        assert cfg.train.val_batches == 200 and cfg.train.phase2_step == 200_000


def test_cpu_preset_sits_between_debug_and_full_with_the_loss_defaults():
    """The cpu preset may size the model, corpus and schedule, never the loss or the guards."""
    dbg, cpu, full = (build_config("tse", p) for p in ("debug", "cpu", "full"))
    assert cpu.loss == TseConfig().loss
    assert (cpu.train.guard_rms_lo, cpu.train.guard_rms_hi) == (0.5, 2.0)
    steps = [c.train.epochs * c.train.steps_per_epoch for c in (dbg, cpu, full)]
    assert steps[0] < steps[1] < steps[2]
    assert dbg.train.val_batches <= cpu.train.val_batches < full.train.val_batches
    assert cpu.train.num_threads == 1 and cpu.data.val_speakers >= 2
    assert FAMILY.presets["cpu"]().to_dict() == cpu.to_dict()


@pytest.mark.parametrize("override, key", [
    ({"loss.ta_weight": 1.5}, "loss.ta_weight"),
    ({"data.sir_db_min": 10, "data.sir_db_max": 0}, "data.sir_db_min"),
    ({"train.steps_per_epoch": 0}, "train.steps_per_epoch"),
    ({"train.guard_rms_lo": 3.0}, "train.guard_rms_lo"),
    ({"loss.lamda_amp": 1.0}, "loss.lamda_amp"),
    ({"data.val_speakers": 1}, "data.val_speakers"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config("tse", "debug", override)


@pytest.mark.parametrize("space", ["wide", "narrow"])
def test_search_space_loads(space):
    fam = get_family("tse")
    s = load_search_space(default_path("tse"), space, build_config("tse", "debug"), "tse",
                          fam.selection_metric, fam.mode)
    assert set(s.tune_domains()) == {"loss.lambda_amp", "loss.target_db", "loss.ta_weight", "data.p_ta", "optim.lr"}
