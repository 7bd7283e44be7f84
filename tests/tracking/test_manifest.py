"""manifest.json on every training run, and jobs/rerun.py reproducing a run from it bit for bit on CPU."""
import json
import subprocess
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

import rerun  # jobs/rerun.py
import train  # jobs/train.py
from mlplatform.tracking import manifest

SMALL = ["--set", "train.epochs=2", "--set", "data.n_train=1024", "--set", "train.val_batches=2"]


def _manifest(cl, run_id):
    with tempfile.TemporaryDirectory() as d:
        return json.loads(Path(cl.download_artifacts(run_id, manifest.FILE, d)).read_text())


def test_run_manifest_then_rerun_is_bitwise_identical(ray_session, mlflow_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    assert train.main(["--family", "riscov", "--preset", "debug", "--name", "orig",
                       "--storage-path", str(tmp_path / "ray"), "--set", "optim.lr=2e-3", *SMALL]) == 0
    cl = MlflowClient(mlflow_uri)
    exp = cl.get_experiment_by_name("riscov").experiment_id
    (orig,) = cl.search_runs([exp])
    man = _manifest(cl, orig.info.run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert man["kind"] == "train" and man["family"] == "riscov" and man["preset"] == "debug"
    assert man["git"]["commit"] == head and isinstance(man["git"]["dirty"], bool)
    assert man["source_sha256"] == manifest.source_digest()
    assert man["config"]["optim"]["lr"] == 2e-3 and man["overrides"][0] == "optim.lr=2e-3"
    assert man["seeds"]["train.seed"] == man["config"]["train"]["seed"]
    assert man["frozen_val"]["sha256"] == orig.data.tags["val_set.sha256"]
    assert man["data"]["fingerprint"] and all(man["versions"][p] for p in ("torch", "ray", "mlflow", "optuna"))
    assert man["device"]["torch_device"] == "cpu" and man["device"]["world_size"] == 1
    assert len(orig.data.tags["weights.sha256"]) == 64

    out = tmp_path / "verdict.json"
    assert rerun.main([orig.info.run_id, "--storage-path", str(tmp_path / "ray"), "--json-out", str(out)]) == 0
    v = json.loads(out.read_text())
    assert v["weights_identical"] and v["frozen_set_identical"] and v["inside_interval"]
    assert v["paired_diff"] == {"mean": 0.0, "ci_lo": 0.0, "ci_hi": 0.0}
    new = cl.get_run(v["rerun_id"])
    assert new.data.tags["rerun_of"] == orig.info.run_id and new.data.params["optim.lr"] == "0.002"
    assert "REPRODUCED" in capsys.readouterr().out


def test_verdict_says_not_reproduced_when_weights_and_metric_move():
    items = {"metric": "val/nmse_blend", "model": [0.10, 0.11, 0.09, 0.10, 0.12, 0.08]}
    moved = {"metric": "val/nmse_blend", "model": [v + 0.05 for v in items["model"]]}
    man = {"frozen_val": {"sha256": "a"}}
    v = rerun.verdict({"weights.sha256": "x"}, {"weights.sha256": "y"}, items, moved, man, man)
    assert not v["weights_identical"] and v["inside_interval"] is False and not v["reproduced"]
    assert v["paired_diff"]["ci_lo"] > 0
    assert "NOT reproduced" in rerun.render(v)[-1]
    same = rerun.verdict({"weights.sha256": "x"}, {"weights.sha256": "y"}, items, items, man, man)
    assert same["reproduced"] and not same["weights_identical"]  # the metric alone can reproduce it


def test_rerun_refuses_unknown_run_in_one_line(mlflow_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    assert rerun.main(["0123456789abcdef"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no MLflow run 0123456789abcdef")


def test_git_state_outside_a_repository(tmp_path):
    st = manifest.git_state(tmp_path)
    assert st["commit"] is None and "no git repository" in st["reason"]
