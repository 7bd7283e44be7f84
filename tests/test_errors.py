"""Every bad input in docs/errors.md, through the real job's main(): exit code 2, one line on stderr, and
nothing already written is touched (checkpoints, data caches, the MLflow store and its runs).

A populated MLPLATFORM_HOME is made once by a real short riscov run (its data cache, an MLflow run with
metrics and a best-checkpoint artifact, checkpoints on disk); before and after each case every file is
hashed and every run's status and metrics are read back. Cases that fail before Ray run with Ray's
``init_ray`` replaced by a tripwire, so "before any Ray work" is checked, not assumed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlplatform.registry import build_config
from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tracking.server import free_port
from mlplatform.train.checkpoint import load_checkpoint
from mlplatform.train.executors import run_local

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "train.batch_size=32", "train.val_batches=2",
         "model.hidden=32", "train.epochs=2"]
SPACE = "family: {fam}\nmetric: val/nmse_blend\nmode: min\nspaces:\n  wide:\n    {key}: {dom}\n"

# (id, job, args, extra env, fragment of the one error line). {home}, {inputs}, {ckpt}, {port} are filled in.
BEFORE_RAY = [
    ("unknown-family", "train", "--family nope", {}, "unknown family 'nope'; choose one of codec, creative, riscov, tse, vqvae"),
    ("unknown-preset", "train", "--family riscov --preset huge", {}, "unknown preset 'huge' for family riscov; choose one of debug, full"),
    ("unknown-key", "hpo", "--set loss.lam_cvo=1", {}, "unknown config key 'loss.lam_cvo'"),
    ("wrong-type", "train", "--family riscov --set train.epochs=abc", {}, "train.epochs: 'abc' is not an int"),
    ("out-of-range", "train", "--family riscov --set optim.lr=-1", {}, "optim.lr: -1.0 is out of range; allowed (0.0, 1.0]"),
    ("bad-choice", "train", "--family riscov --set train.guard_action=explode", {}, "train.guard_action: 'explode' is not allowed; choose one of 'flag', 'stop'"),
    ("override-syntax", "hpo", "--set loss.lam_cov", {}, "override 'loss.lam_cov' is not of the form key=value"),
    ("cross-field", "hpo", "--set loss.lam_cov=0", {}, "loss.lam_cov: 0.0 must be > 0"),
    ("num-workers", "train", "--family riscov --num-workers 0", {}, "--num-workers must be >= 1, got 0"),
    ("run-does-not-fit", "train", "--family riscov --gpus-per-worker 64", {}, "the run needs 64 GPUs but the cluster has"),
    ("reset-optimizer-alone", "train", "--family riscov --reset-optimizer", {}, "--reset-optimizer needs --resume CHECKPOINT"),
    ("resume-no-name", "train", "--family riscov --resume", {}, "--resume without a checkpoint continues a named run: give --name NAME"),
    ("ckpt-missing", "train", "--family riscov --resume {inputs}/nope", {}, "checkpoint {inputs}/nope not found (expected a folder with state.pt)"),
    ("ckpt-other-family", "train", "--family tse --resume {ckpt}", {}, "belongs to family 'riscov', not 'tse'"),
    ("ckpt-other-version", "train", "--family riscov --resume {inputs}/v99", {}, "has format version 99; this platform reads version 1"),
    ("ckpt-corrupt", "train", "--family riscov --resume {inputs}/garbage", {}, "cannot be read safely"),
    ("ckpt-pickled-code", "train", "--family riscov --resume {inputs}/pickled", {}, "cannot be read safely (UnpicklingError: Weights only load failed"),
    ("ckpt-not-ours", "train", "--family riscov --resume {inputs}/foreign", {}, "is not an mlplatform checkpoint"),
    ("space-unknown-name", "hpo", "--space tiny", {}, "no space named 'tiny'; choose one of"),
    ("space-file-missing", "hpo", "--space-file {inputs}/none.yaml", {}, "search space file {inputs}/none.yaml not found"),
    ("space-malformed-yaml", "hpo", "--space-file {inputs}/malformed.yaml", {}, "malformed YAML"),
    ("space-other-family", "hpo", "--space-file {inputs}/tse.yaml", {}, "is for family 'tse', not 'riscov'"),
    ("space-unknown-key", "hpo", "--space-file {inputs}/badkey.yaml", {}, "spaces.wide: unknown config key 'loss.nope'"),
    ("space-bad-bounds", "hpo", "--space-file {inputs}/badlog.yaml", {}, "loguniform needs low > 0"),
    ("n-trials", "hpo", "--n_trials 0", {}, "--n_trials must be >= 1, got 0"),
    ("gpus-per-worker", "hpo", "--gpus-per-worker -1", {}, "--gpus-per-worker must be >= 0, got -1.0"),
    ("resume-unknown-sweep", "hpo", "--resume nope --storage-path {home}/ray_results", {}, "--resume: no sweep named nope in {home}/ray_results"),
    ("resume-no-sweep", "hpo", "--resume --storage-path {inputs}/empty", {}, "--resume: no sweep of family riscov found in {inputs}/empty"),
    ("storage-unwritable-train", "train", "--family riscov --storage-path {inputs}/afile/ray", {}, "--storage-path {inputs}/afile/ray is not usable: a parent is a file, not a folder"),
    ("storage-unwritable-hpo", "hpo", "--storage-path {inputs}/afile/ray", {}, "--storage-path {inputs}/afile/ray is not usable: a parent is a file, not a folder"),
    ("json-out-unwritable", "hpo", "--json-out {inputs}/afile/summary.json", {}, "--json-out folder {inputs}/afile is not usable: exists and is not a folder"),
    ("register-bad-name", "hpo", "--register bad/name", {}, "--register: model name 'bad/name': use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"),
    ("tracking-unreachable", "hpo", "", {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, "MLflow tracking server http://127.0.0.1:{port} is unreachable"),
    ("tracking-not-a-db", "train", "--family riscov", {"MLFLOW_TRACKING_URI": "sqlite:///{inputs}/notadb.db"}, "MLflow store {inputs}/notadb.db is not a readable SQLite database"),
    ("prepare-corpus-missing", "prepare_data", "--family tse --corpus {inputs}/nope", {}, "--corpus {inputs}/nope: no such folder"),
    ("table-missing", "analyze_compression", "--data {inputs}/none.parquet", {}, "{inputs}/none.parquet: feature table not found"),
    ("strategy", "analyze_compression", "--strategy bogus", {}, "--strategy 'bogus': choose one of variance, dimensionality, information, balanced or all"),
    ("diagnose-family", "diagnose", "--family riscov --checkpoint {ckpt}", {}, "--family riscov: diagnostics exist for vqvae only"),
    ("infer-family", "infer", "--family riscov --checkpoint {ckpt} --input a.wav --target b.wav --out o.wav", {}, "jobs/infer.py supports only the creative family"),
]
# Input paths inside a family's config are checked by the family's data step, which runs after Ray starts.
AFTER_RAY = [
    ("table-path-missing", "train", "--family vqvae --preset debug --set data.table={inputs}/none.parquet", {}, "data.table: {inputs}/none.parquet does not exist"),
    ("table-empty-file", "analyze_compression", "--data {inputs}/empty.parquet --no-mlflow", {}, "{inputs}/empty.parquet: empty file (0 bytes)"),
    ("table-text-column", "analyze_compression", "--data {inputs}/text.parquet --no-mlflow", {}, "column 'city' is not numeric"),
    ("table-inf-column", "analyze_compression", "--data {inputs}/inf.parquet --no-mlflow", {}, "column 'b' contains inf values"),
    ("corpus-path-missing", "train", "--family tse --preset debug --set data.corpus={inputs}/nope", {}, "data.corpus: '{inputs}/nope' is not a folder"),
]
CASES = BEFORE_RAY + AFTER_RAY


def make_inputs(inputs: Path, ckpt: Path) -> None:
    """The bad inputs themselves, each a real file of the kind a user could hand over."""
    inputs.mkdir()
    (inputs / "empty").mkdir()
    (inputs / "afile").write_text("a file where a folder is expected")
    (inputs / "notadb.db").write_text("not an sqlite database")
    (inputs / "empty.parquet").write_bytes(b"")
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "city": ["x", "y", "z"]}).to_parquet(inputs / "text.parquet")
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, float("inf"), 0.0]}).to_parquet(inputs / "inf.parquet")
    (inputs / "malformed.yaml").write_text("family: riscov\nspaces: [")
    (inputs / "tse.yaml").write_text(SPACE.format(fam="tse", key="loss.ta_weight", dom="{type: uniform, low: 0.1, high: 1}"))
    (inputs / "badkey.yaml").write_text(SPACE.format(fam="riscov", key="loss.nope", dom="{type: uniform, low: 0, high: 1}"))
    (inputs / "badlog.yaml").write_text(SPACE.format(fam="riscov", key="loss.lam_cov_pred", dom="{type: loguniform, low: 0, high: 1}"))
    payload = load_checkpoint(ckpt, "riscov")
    for name, obj in {"v99": {**payload, "format_version": 99}, "foreign": {"weights": torch.zeros(3)},
                      "pickled": {**payload, "extra": argparse.Namespace(cmd="code a pickle would run")}}.items():
        (inputs / name).mkdir()
        torch.save(obj, inputs / name / "state.pt")
    (inputs / "garbage").mkdir()
    (inputs / "garbage" / "state.pt").write_bytes(b"\x80\x04 truncated" * 10)


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A home with a real run in it: data cache, MLflow store + artifacts, checkpoints, a ray_results folder."""
    root = tmp_path_factory.mktemp("errors")
    home, inputs = root / "home", root / "inputs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPLATFORM_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = mu.resolve_tracking_uri()
        mu.check_tracking(uri)
        cl = MlflowClient(uri)
        run_id = cl.create_run(mu.get_or_create_experiment(cl, "riscov"), run_name="keep-me").info.run_id
        cfg = build_config("riscov", "debug", SMALL)
        summary, _ = run_local({"family": "riscov", "cfg": cfg.to_dict(), "mlflow_run_id": run_id, "tracking_uri": uri,
                                "work_dir": str(home / "checkpoints" / "keep-me"), "verbose": False})
        (home / "ray_results").mkdir()
    ckpt = sorted((home / "checkpoints" / "keep-me").glob("epoch_*"))[-1]
    make_inputs(inputs, ckpt)
    assert cl.get_run(run_id).info.status == "FINISHED" and (home / "data" / "riscov").is_dir()
    return {"home": home, "inputs": inputs, "ckpt": ckpt, "uri": uri}


def snapshot(p: dict) -> dict:
    files = {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest()
             for d in (p["home"], p["inputs"]) for f in sorted(d.rglob("*")) if f.is_file()}
    cl = MlflowClient(p["uri"])
    runs = {r.info.run_id: (r.info.status, sorted(r.data.metrics.items()),
                            [a.path for a in cl.list_artifacts(r.info.run_id, "checkpoints/best")])
            for r in cl.search_runs([e.experiment_id for e in cl.search_experiments()])}
    return {"files": files, "runs": runs}


def run_case(case, populated, monkeypatch, capsys) -> tuple[int, str, str]:
    _, job, args, env, fragment = case
    fill = {"home": populated["home"], "inputs": populated["inputs"], "ckpt": populated["ckpt"], "port": free_port()}
    monkeypatch.setenv("MLPLATFORM_HOME", str(populated["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(**fill))
    main = importlib.import_module(job).main
    capsys.readouterr()
    rc = main(args.format(**fill).split())
    out, err = capsys.readouterr()
    return rc, err, fragment.format(**fill)


def check(rc: int, err: str, fragment: str, strict: bool) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: ") and fragment in lines[-1], err
    if strict:  # nothing else on stderr at all
        assert len(lines) == 1, err


@pytest.mark.parametrize("case", BEFORE_RAY, ids=[c[0] for c in BEFORE_RAY])
def test_bad_input_before_ray(case, populated, monkeypatch, capsys):
    def tripwire(*a, **k):
        raise AssertionError("Ray was started for an input that is known to be bad before Ray")

    monkeypatch.setattr("mlplatform.raycluster.init_ray", tripwire)
    before = snapshot(populated)
    rc, err, fragment = run_case(case, populated, monkeypatch, capsys)
    check(rc, err, fragment, strict=True)
    assert snapshot(populated) == before


@pytest.mark.parametrize("case", AFTER_RAY, ids=[c[0] for c in AFTER_RAY])
def test_bad_input_found_by_the_data_step(case, ray_session, populated, monkeypatch, capsys):
    before = snapshot(populated)
    rc, err, fragment = run_case(case, populated, monkeypatch, capsys)
    check(rc, err, fragment, strict=False)
    assert snapshot(populated) == before


def test_docs_table_lists_every_case():
    """docs/errors.md is the user's copy of this table: one row per case id, with the message fragment."""
    doc = (REPO / "docs" / "errors.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|.*$", doc, re.M)}
    assert sorted(rows) == sorted(c[0] for c in CASES)
    for cid, _, _, _, fragment in CASES:
        static = re.split(r"\{[a-z]+\}", fragment)  # the doc writes placeholders for temp paths and ports
        assert all(part in rows[cid] for part in static if part.strip()), (cid, fragment)
    assert len(rows) >= 15


def test_one_line_unwraps_ray_task_errors_and_strips_colour_and_newlines():
    from ray.exceptions import RayTaskError

    from mlplatform.cli import one_line
    from mlplatform.config import ConfigError

    inner = ConfigError("data.table: /x does not exist\n  (give a \x1b[1mParquet\x1b[0m file)")
    wrapped = RayTaskError("prepare_data", "Traceback (most recent call last):\n  File ...\nConfigError: ...", inner)
    assert one_line(inner) == "data.table: /x does not exist (give a Parquet file)"
    assert one_line(wrapped) == "data.table: /x does not exist (give a Parquet file)"
