"""The sweep's own copy of Tune's snapshot (mlplatform.tune.snapshot): it holds one consistent snapshot
(the callbacks' file of the same snapshot as the trials and the searcher), and ``repair`` puts it, or an
older session's snapshot, in place of a cut-off one. The kill itself is tests/tune/test_resume.py."""
import json
import pickle
import zipfile
from types import SimpleNamespace

import pytest

from mlplatform.tune.snapshot import BACKUP_FILE, SnapshotError, StateBackup, repair, session_of, unreadable

S1, S2 = "2026-12-07_23-08-40", "2026-12-07_23-30-02"


def write_snapshot(folder, session, n, with_callbacks=True):
    """Tune's files of snapshot ``n`` of a session, as Tune writes them (the callbacks' file last)."""
    (folder / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": ["t"] * n, "n": n}))
    (folder / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"n": n}))
    (folder / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": n}))
    if with_callbacks:
        (folder / f"callback-states-{session}.pkl").write_bytes(pickle.dumps({0: {"rungs": n}}))


def cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_session_names_and_readability():
    assert session_of(f"experiment_state-{S1}.json") == S1
    assert session_of(f"search_gen_state-{S1}.json") == S1
    assert session_of(f"basic-variant-state-{S1}.json") == S1  # the confirmation grid's generator
    assert session_of("tuner.pkl") is None and session_of("experiment_state-.json") is None
    whole = pickle.dumps({"a": list(range(100))})
    assert unreadable("searcher-state-x.pkl", whole) is None
    assert unreadable("searcher-state-x.pkl", whole[:-1]) is not None  # only the STOP opcode missing
    assert unreadable("searcher-state-x.pkl", whole[: len(whole) // 2]) is not None
    assert unreadable("experiment_state-x.json", b'{"a": [1, 2') is not None
    assert unreadable("experiment_state-x.json", b'{"a": [1, 2]}') is None


def test_backup_holds_one_consistent_snapshot(tmp_path):
    staging, sweep = tmp_path / "staging", tmp_path / "sweep"
    staging.mkdir(), sweep.mkdir()
    cb = StateBackup(str(sweep))
    cb.on_step_begin(0, [SimpleNamespace(storage=SimpleNamespace(experiment_driver_staging_path=str(staging)))])
    for n in (1, 2, 3):
        # Tune: experiment state and searcher, then every callback's get_state, then the callbacks' file
        write_snapshot(staging, S1, n, with_callbacks=False)
        assert cb.get_state() is None  # nothing of ours in Tune's callbacks' file
        (staging / f"callback-states-{S1}.pkl").write_bytes(pickle.dumps({0: {"rungs": n}}))
        if n == 1:
            assert not (sweep / BACKUP_FILE).exists()  # the callbacks' file of snapshot 1 is not written yet
    with zipfile.ZipFile(sweep / BACKUP_FILE) as z:
        got = {n: z.read(n) for n in z.namelist() if n != "taken_at"}
    assert json.loads(got[f"experiment_state-{S1}.json"])["n"] == 2  # snapshot 2, whole: ...
    assert pickle.loads(got[f"searcher-state-{S1}.pkl"]) == {"n": 2}
    assert pickle.loads(got[f"search_gen_state-{S1}.json"]) == {"counter": 2}
    assert pickle.loads(got[f"callback-states-{S1}.pkl"]) == {0: {"rungs": 2}}  # ... with its own rungs
    # what Tune pickles into tuner.pkl carries no session's paths or bytes
    assert pickle.loads(pickle.dumps(cb)).__dict__ == {"sweep_dir": str(sweep), "_staging": None, "_pending": None}


def test_repair_restores_the_backup_of_a_cut_off_snapshot(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    cb = StateBackup(str(tmp_path))
    cb._staging = str(staging)
    for n in (1, 2):
        write_snapshot(staging, S1, n, with_callbacks=False)
        cb.get_state()
        (staging / f"callback-states-{S1}.pkl").write_bytes(pickle.dumps({0: {"rungs": n}}))
    write_snapshot(tmp_path, S1, 2)
    assert repair(tmp_path) is None  # whole: left alone
    cut(tmp_path / f"experiment_state-{S1}.json")
    said = repair(tmp_path)
    assert "JSONDecodeError" in said and "snapshot before it" in said
    assert json.loads((tmp_path / f"experiment_state-{S1}.json").read_text())["n"] == 1
    assert pickle.loads((tmp_path / f"callback-states-{S1}.pkl").read_bytes()) == {0: {"rungs": 1}}


def test_repair_falls_back_to_the_previous_session_and_else_refuses(tmp_path):
    write_snapshot(tmp_path, S1, 5)
    write_snapshot(tmp_path, S2, 7)  # a resume of S1, killed while its first copy was cut off
    cut(tmp_path / f"searcher-state-{S2}.pkl")
    said = repair(tmp_path)
    assert f"searcher-state-{S2}.pkl" in said and f"an earlier session's snapshot ({S1})" in said
    assert not list(tmp_path.glob(f"*{S2}*"))  # Tune picks the newest session: S1 now
    cut(tmp_path / f"experiment_state-{S1}.json")
    with pytest.raises(SnapshotError, match="cannot be resumed"):
        repair(tmp_path)
    empty = tmp_path / "no-state"
    empty.mkdir()
    assert repair(empty) is None  # no snapshot at all: Tune's own restore says so
