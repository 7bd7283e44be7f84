"""Golden loss curves (torchtitan's ``tests/assets/losses`` habit): a short fixed run of a debug preset must
reproduce its stored per-epoch curve, so a silent change in training (a loss weight, the lr, the schedule,
the data, the model) fails here even when every other test still passes.

Each curve lives in ``tests/assets/losses/<name>.json`` with the preset, the overrides and the resolved config
it was recorded with. After a change that is MEANT to move the curve (a better model, a new default),
regenerate and commit the file with the change:

    MLP_UPDATE_GOLDEN=1 pytest tests/train/test_golden.py

Tolerance: relative 2e-4 per value. Two runs on one CPU are bitwise equal (one thread, fixed seeds). Measured
when the file was first recorded: lam_cov_pred 0.05 -> 0.0505 moves train/loss by 5e-4 relative, lr 2e-3 ->
2.02e-3 moves every value by 3e-3 to 4e-3, the diagonal NMSE term times 1.01 moves val/nmse_blend by 7e-4 to
2e-3: each fails here. The run takes about 6 s on one core.
"""
from __future__ import annotations

import json
import math
import os
import platform as stdlib_platform
from pathlib import Path

import pytest
import torch

from mlplatform.registry import build_config
from mlplatform.train.executors import run_local

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "losses"
UPDATE = os.environ.get("MLP_UPDATE_GOLDEN") == "1"
REGENERATE = "MLP_UPDATE_GOLDEN=1 pytest tests/train/test_golden.py"
RTOL, ATOL = 2e-4, 1e-8

# name -> (family, preset, overrides, metrics compared per epoch)
GOLDEN = {
    "riscov_debug": ("riscov", "debug",
                     ["train.epochs=5", "data.n_train=512", "data.n_val=128", "data.n_test=64", "train.batch_size=32",
                      "train.val_batches=2", "train.num_threads=1"],
                     ["train/loss", "val/nmse_blend", "val/nmse_pred"]),
}


def record(name: str, work: Path) -> dict:
    family, preset, overrides, metrics = GOLDEN[name]
    cfg = build_config(family, preset, overrides)
    threads = torch.get_num_threads()
    try:
        _, rep = run_local({"family": family, "cfg": cfg.to_dict(), "work_dir": str(work), "verbose": False})
    finally:
        torch.set_num_threads(threads)  # the loop applies train.num_threads to this process
    return {"family": family, "preset": preset, "overrides": overrides, "metrics": metrics,
            "rtol": RTOL, "atol": ATOL, "regenerate": REGENERATE, "resolved_config": cfg.to_dict(),
            "recorded_with": {"torch": torch.__version__, "python": stdlib_platform.python_version(),
                              "machine": stdlib_platform.machine()},
            "curve": [{"epoch": int(h["epoch"]), **{m: float(h[m]) for m in metrics}} for h in rep.history]}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_debug_run_reproduces_its_golden_loss_curve(name, home, tmp_path):
    path = ASSETS / f"{name}.json"
    got = record(name, tmp_path / "run")
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"wrote {path.relative_to(ASSETS.parents[2])}: commit it with the change that moved the curve")
    assert path.is_file(), f"no golden curve {path.name}; record it with: {REGENERATE}"
    want = json.loads(path.read_text())
    hint = f"if the change is intended, regenerate and commit the file: {REGENERATE}"
    assert want["overrides"] == got["overrides"] and want["metrics"] == got["metrics"], \
        f"{path.name} was recorded with other overrides/metrics than GOLDEN[{name!r}]; {hint}"
    old, new = _flat(want["resolved_config"]), _flat(got["resolved_config"])
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))
    config_note = ("; the resolved config changed since it was recorded: "
                   + ", ".join(f"{k} {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed)
                   if changed else "")
    assert [p["epoch"] for p in got["curve"]] == [p["epoch"] for p in want["curve"]], \
        f"{name}: epochs differ from {path.name}{config_note}; {hint}"
    bad = [f"epoch {w['epoch']} {m}: {g[m]:.7g} vs golden {w[m]:.7g} ({(g[m] - w[m]) / abs(w[m]):+.2e} rel)"
           for w, g in zip(want["curve"], got["curve"]) for m in want["metrics"]
           if not math.isclose(g[m], w[m], rel_tol=want["rtol"], abs_tol=want["atol"])]
    assert not bad, (f"{name} left its golden curve {path.name} (rtol {want['rtol']:g}): " + "; ".join(bad[:6])
                     + config_note + f"; {hint}")
