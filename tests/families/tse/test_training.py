"""tse through the real loop: a debug run that learns, deterministic validation with the config's
weights, selection by TP SI-SDR (not val loss), --reset-optimizer resume, the over-suppression guard."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from mlplatform.families.tse.family import FAMILY
from mlplatform.protocol import DataContext
from mlplatform.registry import build_config
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.train.checkpoint import load_checkpoint
from mlplatform.train.executors import run_local
from mlplatform.train.loop import is_better, validate

TP_METRICS = ("val/si_sdr_tp", "val/si_sdri_tp", "val/rms_ratio", "val/ta_energy_db", "val/loss",
              "val/si_sdri_tp_unseen", "val/captured_gain_unseen", "val/si_sdri_tp_unseen_synth",
              "val/captured_gain_unseen_synth", "val/ceiling_irm_si_sdri_tp_unseen_synth")
COMPONENTS = ("sep", "psl", "amp", "ta_energy")
# the end-of-run scores of the best checkpoint (PESQ/STOI on the held-out sets, the mixture's beside them)
TEST_METRICS = tuple(f"test/{m}{s}" for s in ("_unseen", "_unseen_synth")
                     for m in ("pesq", "stoi", "estoi", "pesq_mixture", "stoi_mixture", "estoi_mixture"))
TEST_METRICS += tuple(f"test/si_sdri_tp{s}{k}" for s in ("_unseen", "_unseen_synth") for k in ("", "_ci_lo", "_ci_hi"))


def new_run(uri: str, name: str) -> str:
    cl = mu.client(uri)
    exp = mu.get_or_create_experiment(cl, "tse-tests")
    return cl.create_run(exp, run_name=name).info.run_id


@pytest.fixture(scope="module")
def trained(home, tmp_path_factory):
    """One debug-preset run on the generated espeak-ng corpus, logged to a real MLflow store. It selects on the
    seen speakers: debug's 12 training voices and 240 steps learn those voices, not the task (its held-out
    SI-SDRi stays near or below the mixture's, docs/families/tse.md), and these tests check the wiring."""
    tmp = tmp_path_factory.mktemp("tse-run")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    # two threads: the suite runs one test at a time, so the second core is free (66 s instead of 100)
    cfg = build_config("tse", "debug", {"train.selection_metric": "val/si_sdr_tp", "train.num_threads": 2})
    run_id = new_run(uri, "debug")
    summary, rep = run_local({"family": "tse", "cfg": cfg.to_dict(), "work_dir": str(tmp / "work"),
                              "mlflow_run_id": run_id, "tracking_uri": uri})
    return {"cfg": cfg, "summary": summary, "history": rep.history, "uri": uri, "run_id": run_id,
            "work": tmp / "work"}


def load_model(cfg, ckpt: Path):
    model = FAMILY.build_model(cfg)
    model.load_state_dict(load_checkpoint(ckpt, "tse")["model"])
    return model


def val(cfg, model):
    data = FAMILY.build_datasets(cfg, DataContext())
    return validate(FAMILY, model, data, cfg, 0, 0, FAMILY.schedule(cfg, 0), torch.device("cpu"), {})


def test_debug_run_learns_to_extract_the_target(trained):
    hist = [h for h in trained["history"] if "val/si_sdri_tp" in h]
    assert len(hist) == trained["cfg"].train.epochs
    best = max(h["val/si_sdri_tp"] for h in hist)
    assert best > 0.0, [round(h["val/si_sdri_tp"], 3) for h in hist]
    assert trained["summary"]["best"] == pytest.approx(max(h["val/si_sdr_tp"] for h in hist))
    # both phases ran: TP only, then TP + TA
    assert {h["train/phase"] for h in hist} == {1.0, 2.0}
    for h in hist:
        for k in TP_METRICS + tuple(f"val/{c}" for c in COMPONENTS) + tuple(f"train/{c}" for c in COMPONENTS):
            assert k in h, k
        assert "guard/rms_ratio" in h
    # the same names reached MLflow, with the best checkpoint
    cl = mu.client(trained["uri"])
    run = cl.get_run(trained["run_id"])
    assert set(TP_METRICS) <= set(run.data.metrics)
    assert run.data.tags["selection_metric"] == "val/si_sdr_tp"  # the fixture's override; the family's:
    assert FAMILY.selection_metric == "val/si_sdr_tp_unseen"
    # the best checkpoint's PESQ/STOI/ESTOI and SI-SDRi interval at the end, once, beside the mixture's own
    final = trained["history"][-1]
    for k in TEST_METRICS:
        assert k in final and k in run.data.metrics, k
        assert not any(k in h for h in trained["history"][:-1]), k
    for s in ("_unseen", "_unseen_synth"):
        assert 1.0 <= final[f"test/pesq{s}"] <= 4.65 and 0.0 <= final[f"test/stoi{s}"] <= 1.0
        assert final[f"test/si_sdri_tp{s}_ci_lo"] <= final[f"test/si_sdri_tp{s}"] <= final[f"test/si_sdri_tp{s}_ci_hi"]
    assert run.data.params["loss.ta_weight"] == "0.1"
    assert any(a.path == "checkpoints/best" for a in cl.list_artifacts(trained["run_id"], "checkpoints"))


def test_a_healthy_debug_run_is_not_flagged_and_beats_its_trivial_baselines(trained):
    """No guard and no alarm but a passing divergence fires with the fixed defaults; by the end the model beats
    silence and the unprocessed mixture and the speaker condition matters (another speaker's enrollment
    extracts worse).

    The divergence alarm may fire on a dip it recovers from: on the machine CI runs on since 2026-12-07 the
    seen-speaker SI-SDR went 0.17 -> 0.11 -> -0.27 dB over validations 3-5 while psl and ta_energy fell (the
    alarm, correctly by its rule), then rose to 1.07 dB by validation 8. So a divergence alarm is allowed only
    when the run ends above every value the alarm's window saw."""
    run = mu.client(trained["uri"]).get_run(trained["run_id"])
    tags = [t for t in run.data.tags if t.startswith(("alarm.", "guard."))]
    assert not [t for t in tags if not t.startswith("alarm.divergence_")], run.data.tags
    if tags:
        sel = [e["val/si_sdr_tp"] for e in trained["history"]]
        w = trained["cfg"].train.alarm_window
        dips = [i for i in range(w - 1, len(sel)) if all(sel[j] > sel[j + 1] for j in range(i - w + 1, i))]
        assert dips and all(sel[-1] > max(sel[i - w + 1:i + 1]) for i in dips), (tags, sel)
    assert trained["summary"]["stop_reason"] == "completed"
    last = trained["history"][-1]
    assert last["val/margin_silence"] > 0 and last["val/margin_mixture"] > 0
    assert last["val/reliance_enroll_swap"] > 0
    assert len(run.data.tags["val_set.sha256"]) == 64


def test_validation_is_repeatable_and_uses_the_configured_ta_weight(trained):
    cfg = trained["cfg"]
    model = load_model(cfg, trained["work"] / "best")
    a, b = val(cfg, model), val(cfg, model)
    assert a == b  # identical metrics from two validations of one checkpoint
    for w in (0.1, 0.3):
        c = cfg.override({"loss.ta_weight": w})
        m = val(c, model)
        # val/loss is exactly the config-weighted sum of the components (no default ta_weight anywhere)
        expect = ((1 - w) * (c.loss.lambda_sisdr * m["val/sep"] + c.loss.lambda_psl * m["val/psl"])
                  + c.loss.lambda_amp * m["val/amp"] + w * m["val/ta_energy"])
        assert m["val/loss"] == pytest.approx(expect, rel=1e-5)


def test_selection_keeps_better_tp_si_sdr_over_lower_val_loss(trained):
    """The seed's "best" checkpoint was the most suppressed one. Checkpoint B is A made quieter (decoder
    x0.1: low TA energy, hence a lower val loss) and leakier (mask bias +0.5: worse TP SI-SDR)."""
    cfg = trained["cfg"].override({"loss.lambda_amp": 0.0, "loss.lambda_psl": 0.0, "data.mix_level_db": -10.0})
    a = load_model(cfg, trained["work"] / "best")
    b = load_model(cfg, trained["work"] / "best")
    with torch.no_grad():
        b.decoder.weight.mul_(0.1)
        b.mask[1].bias.add_(0.5)
    ma, mb = val(cfg, a), val(cfg, b)
    assert mb["val/loss"] < ma["val/loss"]
    assert mb["val/si_sdr_tp"] < ma["val/si_sdr_tp"]
    # the family selects on the same TP-only SI-SDR of the held-out speakers (the debug model is below the
    # mixture there, where leaking more of it helps: the fixture selects on the seen speakers, as here)
    assert FAMILY.selection_metric == "val/si_sdr_tp_unseen" and FAMILY.mode == "max"
    for metric, order in itertools.product((trained["cfg"].train.selection_metric,), ((ma, mb), (mb, ma))):
        best = None
        kept = None
        for m in order:
            if is_better(m[metric], best, FAMILY.mode):
                best, kept = m[metric], m
        assert kept is ma, metric
    assert is_better(mb["val/loss"], ma["val/loss"], "min")  # what selecting by val loss would have kept


def _last_ckpt(work: Path) -> Path:
    return sorted(work.glob("epoch_*"))[-1]


@pytest.mark.parametrize("reset", [True, False])
def test_resume_restores_weights_and_step_with_fresh_adam_moments(trained, tmp_path, reset):
    ckpt = _last_ckpt(trained["work"])
    before = load_checkpoint(ckpt, "tse")
    steps0 = before["loop"]["step"]
    cfg = trained["cfg"].override({"train.epochs": before["loop"]["epoch"] + 1, "train.val_batches": 1,
                                   "optim.lr": 1e-9})
    summary, _ = run_local({"family": "tse", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "w"),
                            "resume_from": str(ckpt), "reset_optimizer": reset})
    spe = cfg.train.steps_per_epoch
    assert summary["steps"] == steps0 + spe  # the step counter continues (phase stays right)
    after = load_checkpoint(_last_ckpt(tmp_path / "w"), "tse")
    adam_steps = {float(s["step"]) for s in after["optimizer"]["state"].values()}
    assert adam_steps == ({float(spe)} if reset else {float(steps0 + spe)})
    if reset:
        # weights are the checkpoint's (lr ~0), not a fresh initialisation
        fresh = FAMILY.build_model(cfg).state_dict()
        for k, v in before["model"].items():
            assert torch.allclose(after["model"][k], v, atol=1e-5), k
        assert any(not torch.allclose(fresh[k], v) for k, v in before["model"].items())


def test_over_suppression_guard_flags_the_run_and_stops_a_trial(home, tmp_path):
    spec = FAMILY.guards(build_config("tse", "debug"))
    assert [(g.metric, g.lo, g.hi) for g in spec] == [("val/rms_ratio", 0.5, 2.0)]
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run_id = new_run(uri, "guard")
    # bounds no real output meets make the guard fire at the first validation
    cfg = build_config("tse", "debug", {"train.epochs": 3, "train.steps_per_epoch": 2, "train.val_batches": 1,
                                        "train.guard_rms_lo": 50.0, "train.guard_rms_hi": 100.0,
                                        "train.guard_patience": 1, "train.guard_action": "stop"})
    summary, rep = run_local({"family": "tse", "cfg": cfg.to_dict(), "work_dir": str(tmp_path / "w"),
                              "mlflow_run_id": run_id, "tracking_uri": uri})
    assert summary["epochs"] == 1
    assert summary["stop_reason"].startswith("guard:rms_ratio")
    assert rep.history[-1]["guard/rms_ratio"] == 1
    run = mu.client(uri).get_run(run_id)
    assert run.data.tags["flagged"] == "true" and "val/rms_ratio" in run.data.tags["guard.rms_ratio"]
    assert run.info.status == "KILLED"
