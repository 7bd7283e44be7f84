"""Top-k confirmation: the two-level bootstrap on known matrices, and a real sweep that confirms its winner."""
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import hpo  # jobs/hpo.py
from mlplatform.tune.confirm import CONFIRM_SEED0, pick
from mlplatform.tune.confirm_stats import confirm


def test_a_clearly_better_config_wins_with_p_best_near_one():
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 1.0, (1, 64))  # per-item difficulty, shared by every config and seed
    good = base + 0.0 + rng.normal(0, 0.05, (3, 64))
    bad = base + 0.5 + rng.normal(0, 0.05, (3, 64))
    res = confirm({"good": good, "bad": bad}, mode="min")
    assert res.winner == "good" and res.runner_up == "bad"
    assert res.p_best["good"] > 0.99 and res.diff[2] < 0  # winner minus runner-up: below 0 in min mode
    assert res.seeds == 3 and res.items == 64 and len(res.seed_means["good"]) == 3
    assert confirm({"good": good, "bad": bad}, mode="max").winner == "bad"


def test_identical_configs_are_a_coin_toss_and_their_interval_holds_zero():
    rng = np.random.default_rng(1)
    v = rng.normal(0, 1, (3, 50))
    res = confirm({"a": v, "b": v.copy()}, mode="max")
    assert res.diff[1] <= 0 <= res.diff[2]
    assert res.p_best["a"] + res.p_best["b"] == pytest.approx(1.0)


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(2)
    items = rng.normal(0, 1, (1, 80))
    calm = {"a": items + 0.2 + np.zeros((3, 1)), "b": items + np.zeros((3, 1))}
    shaky = {"a": items + 0.2 + np.array([[-1.0], [0.0], [1.6]]), "b": items + np.zeros((3, 1))}
    w_calm = np.subtract(*confirm(calm, "max").diff[2:0:-1])
    w_shaky = np.subtract(*confirm(shaky, "max").diff[2:0:-1])
    assert w_shaky > 3 * w_calm  # seeds drawn with replacement carry the seed-to-seed spread


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same"):
        confirm({"a": np.zeros((3, 5)), "b": np.zeros((2, 5))}, "min")
    with pytest.raises(ValueError, match="finite"):
        confirm({"a": np.full((2, 5), np.nan)}, "min")


def test_pick_keeps_the_top_k_and_the_tied():
    rows = [{"trial_id": t} for t in "abcdef"]
    assert [r["trial_id"] for r in pick(rows, 2, ["a", "e"])] == ["a", "b", "e"]


def test_sweep_confirms_its_top_trials_with_new_seeds(ray_session, mlflow_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    out = tmp_path / "summary.json"
    rc = hpo.main(["--n_trials", "3", "--epochs_per_trial", "2", "--preset", "debug", "--name", "t-confirm",
                   "--storage-path", str(tmp_path / "ray"), "--set", "data.n_train=1024",
                   "--set", "train.val_batches=2", "--confirm-top", "2", "--confirm-seeds", "2",
                   "--register", "t-winner", "--json-out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "[confirm] retraining the" in printed and "confirmed    " in printed
    c = json.loads(out.read_text())["confirm"]
    cl = MlflowClient(mlflow_uri)
    exp = cl.get_experiment_by_name("riscov").experiment_id
    parent = cl.get_run(json.loads(out.read_text())["parent_run_id"])
    kids = [r for r in cl.search_runs([exp]) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    conf = [r for r in kids if r.data.tags.get("confirm") == "true"]
    n_conf = len(c["means"])
    assert n_conf >= 2 and len(conf) == 2 * n_conf and len(kids) == 3 + len(conf)
    assert {r.data.tags["confirm_seed"] for r in conf} == {str(CONFIRM_SEED0), str(CONFIRM_SEED0 + 1)}
    assert all(r.data.params["train.seed"] in (str(CONFIRM_SEED0), str(CONFIRM_SEED0 + 1)) for r in conf)
    assert all(r.info.status in ("FINISHED", "KILLED") for r in conf)
    m = parent.data.metrics
    for key in ("confirm/mean", "confirm/ci_lo", "confirm/ci_hi", "confirm/p_best", "confirm/compute_frac"):
        assert key in m, key
    assert parent.data.tags["confirm/winner_trial"] == c["winner_trial"] and parent.info.status == "FINISHED"
    # the confirmed mean is the winner's mean over its seeds' per-item values
    assert m["confirm/mean"] == pytest.approx(c["means"][c["winner_trial"]])
    assert m["confirm/ci_lo"] <= m["confirm/diff"] <= m["confirm/ci_hi"]
    # the report: confirmation runs are not trials; a section (and its plot) shows them
    from mlplatform.tune.report.build import load_sweep

    data = load_sweep(cl, parent.info.run_id)
    assert len(data.trials) == 3 and len(data.confirm_runs) == len(conf)
    report = (tmp_path / "ray" / "t-confirm" / "report" / "report.md").read_text()
    assert "## Confirmed with new seeds" in report and "confirmation.png" in report
    assert report.count("**winner**") == 1
    # time to quality: every epoch logged its cost; the report puts best-so-far against cumulative compute
    trial = data.trials[0]
    for key in ("sys/epoch_wall_s", "sys/epoch_cpu_s", "sys/epoch_gpu_s"):
        assert len(cl.get_metric_history(trial.run_id, key)) == 2, key
    assert cl.get_metric_history(trial.run_id, "sys/epoch_gpu_s")[0].value == 0.0  # no GPU here
    assert "## Time to quality" in report and "time_to_quality.png" in report
    pm = cl.get_run(parent.info.run_id).data.metrics
    assert pm["sweep/compute_cpu_s"] > 0 and 0 < pm["sweep/compute_to_quality"] <= pm["sweep/compute_cpu_s"]
    check_registered(cl, json.loads(out.read_text()), c, conf, mlflow_uri)


def check_registered(cl, summary, c, conf, uri):
    """--register: the confirmed winner's best new-seed run, as version 1 of the model, loads by name with the
    manifest as metadata, and predicts what the run's own checkpoint predicts."""
    import mlflow
    import torch

    from mlplatform.registry import get_family
    from mlplatform.tracking.models import load_registered
    from mlplatform.train.checkpoint import load_checkpoint

    reg = summary["registered"]
    assert reg["name"] == "t-winner" and reg["version"] == "1"
    seeds = c["seed_means"][c["winner_trial"]]
    want_seed = str(CONFIRM_SEED0 + seeds.index(min(seeds)))  # riscov: lower is better
    src = next(r for r in conf if r.data.tags["confirm_of"] == c["winner_trial"] and r.data.tags["confirm_seed"] == want_seed)
    assert reg["run_id"] == src.info.run_id
    assert cl.get_run(summary["parent_run_id"]).data.tags["registered_model"] == "t-winner"
    mv = cl.get_model_version("t-winner", "1")
    assert reg["model_id"] in mv.source  # the version points at the LoggedModel
    logged = cl.get_logged_model(reg["model_id"])
    assert logged.source_run_id == src.info.run_id and logged.tags["family"] == "riscov"
    info = mlflow.models.get_model_info("models:/t-winner/1")
    assert info.metadata["manifest"]["config"]["train"]["seed"] == int(want_seed)
    wrapped = load_registered("t-winner", tracking_uri=uri)
    ckpt = load_checkpoint(cl.download_artifacts(src.info.run_id, "checkpoints/best"))
    own = get_family("riscov").build_model(wrapped.cfg)
    own.load_state_dict(ckpt["model"])
    own.eval()
    r_samp = torch.randn(4, wrapped.cfg.data.n_elements, wrapped.cfg.data.n_elements, dtype=torch.complex64)
    r_samp = r_samp @ r_samp.conj().transpose(-1, -2)  # sample covariances are Hermitian PSD
    with torch.no_grad():
        want = own(r_samp).numpy()
    got = wrapped.predict(None, {"r_samp": r_samp.numpy()})
    assert got.shape == want.shape and (got == want).all()


def test_time_to_quality_enters_the_interval_at_the_first_good_enough_point():
    from mlplatform.tune.report.compute import first_within

    curve = {"x": [1.0, 2.0, 3.0, 4.0], "best": [None, 0.5, 0.3, 0.2]}
    assert first_within(curve, 0.18, 0.31, "min") == 3.0
    assert first_within(curve, 0.18, 0.25, "min") == 4.0
    assert first_within(curve, 0.6, 0.7, "max") is None
