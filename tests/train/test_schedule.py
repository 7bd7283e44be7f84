"""The LR schedule: per epoch (the default, unchanged) or per optimizer step, with linear warmup; Adam betas."""
from __future__ import annotations

import math

import pytest
import torch

from mlplatform.config import ConfigError
from mlplatform.registry import build_config
from mlplatform.train.executors import run_local
from mlplatform.train.setup import build_optimizer, build_scheduler, lr_factor

SMALL = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "train.batch_size=32", "train.val_batches=1",
         "model.hidden=16", "train.epochs=3", "train.steps_per_epoch=4", "optim.lr=0.01", "optim.min_lr_ratio=0.1"]


def cfg_with(*overrides):
    return build_config("riscov", "debug", SMALL + list(overrides))


def test_step_unit_warms_up_linearly_then_follows_a_cosine_over_every_optimizer_step():
    cfg = cfg_with("optim.schedule_unit=step", "optim.warmup=3")  # 12 steps: 3 warm-up, 9 of cosine
    f = [lr_factor(cfg, t) for t in range(13)]
    assert f[:3] == pytest.approx([0.25, 0.5, 0.75])
    assert f[3] == pytest.approx(1.0) and f[12] == pytest.approx(0.1)
    assert f[3 + 9 // 2] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    assert all(a > b for a, b in zip(f[3:], f[4:]))
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.01 * x for x in f[:12]])


def test_epoch_unit_without_warmup_is_the_former_cosine_and_none_is_constant():
    cfg = cfg_with()
    model = torch.nn.Linear(2, 1)
    assert isinstance(build_scheduler(cfg, build_optimizer(cfg, model)), torch.optim.lr_scheduler.CosineAnnealingLR)
    assert build_scheduler(cfg_with("optim.scheduler=none"), build_optimizer(cfg, model)) is None
    warm = cfg_with("optim.scheduler=none", "optim.warmup=2")  # warm-up alone, per epoch
    assert [lr_factor(warm, t) for t in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


def test_adam_betas_reach_the_optimizer():
    cfg = cfg_with("optim.beta1=0.5", "optim.beta2=0.9")
    assert build_optimizer(cfg, torch.nn.Linear(2, 1)).param_groups[0]["betas"] == (0.5, 0.9)


def test_step_unit_needs_a_fixed_number_of_steps_per_epoch():
    with pytest.raises(ConfigError, match="steps_per_epoch > 0"):
        cfg_with("optim.schedule_unit=step", "train.steps_per_epoch=0")


def test_the_loop_steps_the_schedule_per_optimizer_step(tmp_path):
    cfg = cfg_with("optim.schedule_unit=step", "optim.warmup=2")
    _, rep = run_local({"family": "riscov", "cfg": cfg.to_dict(), "work_dir": str(tmp_path), "verbose": False})
    # sys/lr is read after each epoch's 4 steps: the factor after 4, 8 and 12 scheduler steps
    assert [m["sys/lr"] for m in rep.history] == pytest.approx([0.01 * lr_factor(cfg, t) for t in (4, 8, 12)])
