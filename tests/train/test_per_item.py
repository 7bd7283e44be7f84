"""The selected checkpoint keeps its selection metric per validation item (model and floors), so a sweep can
put confidence intervals on its ranking (mlplatform.tune.noise)."""
import json
import math

import torch

from mlplatform.protocol import DataContext
from mlplatform.registry import build_config, get_family
from mlplatform.train.checkpoint import PER_ITEM_FILE, load_checkpoint
from mlplatform.train.executors import run_local
from mlplatform.train.validation import validate

SMALL = ["data.n_train=256", "data.n_val=96", "train.batch_size=32", "train.val_batches=3", "model.hidden=32",
         "train.epochs=2"]


def test_best_checkpoint_keeps_per_item_values_that_average_to_its_metric(home, tmp_path):
    cfg = build_config("riscov", "debug", SMALL)
    summary, rep = run_local({"family": "riscov", "cfg": cfg.to_dict(), "work_dir": str(tmp_path), "verbose": False})
    rec = json.loads((tmp_path / "best" / PER_ITEM_FILE).read_text())
    assert rec["metric"] == "val/nmse_blend" and rec["epoch"] == summary["best_epoch"]
    assert len(rec["model"]) == 96  # 3 batches of 32 items
    assert math.isclose(sum(rec["model"]) / len(rec["model"]), summary["best"], rel_tol=1e-5)
    # floors (trivial baselines count as floors) on the same items; ceilings are not floors
    assert {"toeplitz", "ledoit_wolf", "forward_backward", "samp", "trace"} <= set(rec["floors"])
    assert "oracle_doa" not in rec["floors"]
    assert all(len(v) == 96 for v in rec["floors"].values())
    best_epoch = [m for m in rep.history if m["epoch"] == summary["best_epoch"]][0]
    toe = sum(rec["floors"]["toeplitz"]) / 96
    assert math.isclose(toe, best_epoch["val/floor_toeplitz"], rel_tol=1e-5)
    assert len(rec["digest"]) == 64  # the SHA-256 of the batches: two records pair only on the same items
    assert load_checkpoint(tmp_path / "best", "riscov")["loop"]["best"] == summary["best"]


def test_validate_reports_per_item_values_only_when_asked(home):
    cfg = build_config("riscov", "debug", SMALL)
    fam = get_family("riscov")
    model, data = fam.build_model(cfg), fam.build_datasets(cfg, DataContext())
    info: dict = {}
    args = (fam, model, data, cfg, 0, 0, fam.schedule(cfg, 0), torch.device("cpu"), {"verbose": False})
    means = validate(*args, info)
    assert math.isclose(sum(info["per_item"]["model"]) / 96, means["val/nmse_blend"], rel_tol=1e-5)
    assert validate(*args) == means  # the same numbers without the record
