"""A sweep snapshot that a kill cannot cut off: a second, atomic copy of Tune's state, used on resume.

Tune writes its experiment snapshot (``experiment_state-<session>.json`` with every trial, the searcher's
``searcher-state-*.pkl`` and ``search_gen_state-*.json``, the callbacks' ``callback-states-*.pkl``) to a
staging folder on the driver, then a background thread copies that folder to the sweep's storage with
pyarrow, file by file, in place. A driver killed during the copy leaves a truncated file in storage
(measured: ``experiment_state`` cut at 262,144 of its 364,358 bytes). ``Tuner.restore`` then logs "Failed to
restore the run state", starts the experiment over without its search space and dies with "no search
space has been defined": the sweep cannot be resumed at all.

:class:`StateBackup` keeps a copy that is whole or absent. Tune asks every callback for its state in the
middle of each snapshot, after the experiment state and the searcher were written to staging and before
the callbacks' file is; so at snapshot *n* the staging folder holds the experiment and searcher files of
*n* and the callbacks' file of *n - 1*. The callback keeps the first three in memory and, at snapshot
*n + 1*, writes them with the callbacks' file of *n* (one consistent snapshot, ASHA's rungs included) to
one zip beside the sweep, by ``os.replace``: a kill leaves the previous zip.

:func:`repair` runs before ``Tuner.restore``: when the newest snapshot in storage does not read back, it
puts the zip's snapshot (one snapshot older) in its place, or the newest older session's snapshot that
reads, and says so; when none does, the resume stops with one line instead of Tune's restart.
"""
from __future__ import annotations

import fnmatch
import io
import json
import os
import pickletools
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from ray.tune import Callback

from mlplatform.train.checkpoint import CheckpointError

BACKUP_FILE = "mlplatform_snapshot.zip"
EXPERIMENT = "experiment_state-{}.json"
# the searcher's, the search generator's and the grid generator's (pickles despite their names) and the
# callbacks' files
PICKLES = ("searcher-state-{}.pkl", "search_gen_state-{}.json", "basic-variant-state-{}.json",
           "callback-states-{}.pkl")


class SnapshotError(CheckpointError):
    """No snapshot of the sweep reads back: it cannot be resumed (a one-line error for the job)."""


def session_of(name: str) -> str | None:
    """The session part of a Tune state file's name (``experiment_state-2026-12-07_23-08-40.json`` ->
    ``2026-12-07_23-08-40``); None for any other file."""
    for tmpl in (EXPERIMENT, *PICKLES):
        head, tail = tmpl.split("{}")
        if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
            return name[len(head):len(name) - len(tail)]
    return None


def unreadable(name: str, data: bytes) -> str | None:
    """Why a state file's bytes do not read back (None when they do). The pickles are only parsed
    (``pickletools``, which executes nothing) up to their STOP opcode: a truncated file has none."""
    try:
        if fnmatch.fnmatch(name, EXPERIMENT.format("*")):
            json.loads(data)
        else:
            ops = list(pickletools.genops(io.BytesIO(data)))
            if not ops or ops[-1][0].name != "STOP":
                return "no STOP opcode"
    except Exception as e:  # noqa: BLE001 - any parse failure means the file is cut off or damaged
        return f"{type(e).__name__}: {str(e)[:120]}"
    return None


def session_files(folder: Path, session: str) -> dict[str, Path]:
    """The state files of one session in ``folder`` (the experiment state first, when present)."""
    names = [t.format(session) for t in (EXPERIMENT, *PICKLES)]
    return {n: folder / n for n in names if (folder / n).is_file()}


def check(files: dict[str, bytes]) -> str | None:
    """Why a session's snapshot cannot be restored (None when it can)."""
    if not any(fnmatch.fnmatch(n, EXPERIMENT.format("*")) for n in files):
        return "no experiment state"
    for name, data in files.items():
        why = unreadable(name, data)
        if why:
            return f"{name}: {why} ({len(data):,} bytes)"
    return None


class StateBackup(Callback):
    """Writes the previous complete Tune snapshot to ``<sweep dir>/mlplatform_snapshot.zip`` at every
    snapshot (see the module docstring). Stateless for Tune: ``get_state`` returns None."""

    def __init__(self, sweep_dir: str) -> None:
        self.sweep_dir = sweep_dir
        self._staging: str | None = None
        self._pending: dict[str, bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: no session's paths or bytes
        return {"sweep_dir": self.sweep_dir, "_staging": None, "_pending": None}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._staging is None and trials:
            self._staging = trials[0].storage.experiment_driver_staging_path

    def get_state(self) -> dict | None:
        if self._staging is not None:
            try:
                self._rotate(Path(self._staging))
            except OSError as e:  # a full disk must not stop the sweep; the resume falls back further
                print(f"[sweep] could not back up the sweep snapshot ({e})", flush=True)
        return None

    def _rotate(self, staging: Path) -> None:
        sessions = sorted(s for p in staging.glob(EXPERIMENT.format("*")) if (s := session_of(p.name)))
        if not sessions:
            return
        now = {n: p.read_bytes() for n, p in session_files(staging, sessions[-1]).items()}
        callbacks = {n: d for n, d in now.items() if n.startswith("callback-states-")}
        if self._pending and check({**self._pending, **callbacks}) is None:
            write_zip(Path(self.sweep_dir) / BACKUP_FILE, {**self._pending, **callbacks})
        # this snapshot's callbacks' file is written after this call: keep the rest for the next one
        self._pending = {n: d for n, d in now.items() if not n.startswith("callback-states-")}


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    """``files`` as one zip at ``path``, whole or not at all (a temporary name, then ``os.replace``)."""
    tmp = path.with_name(f".{uuid.uuid4().hex}-{path.name}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("taken_at", str(time.time()))
        for name, data in files.items():
            z.writestr(name, data)
    os.replace(tmp, path)


def read_zip(path: Path) -> tuple[dict[str, bytes], float | None]:
    """The state files in a backup zip and when they were taken ({} and None when it is unreadable)."""
    try:
        with zipfile.ZipFile(path) as z:
            files = {n: z.read(n) for n in z.namelist() if session_of(n)}
            taken = float(z.read("taken_at")) if "taken_at" in z.namelist() else None
        return files, taken
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return {}, None


def repair(sweep_dir: Path) -> str | None:
    """Make the newest snapshot in ``sweep_dir`` one that reads back, before ``Tuner.restore``: the newest
    session's files when they read; else the backup zip's snapshot of that session; else the newest older
    session whose files read (the newer sessions' files are removed, so Tune picks it). Returns what was
    done (None when nothing was needed, or when there is no snapshot at all: Tune says so); raises
    :class:`SnapshotError` when nothing reads back. Local storage only (a URI's files are not here)."""
    sessions = sorted({s for p in sweep_dir.iterdir() if (s := session_of(p.name))}, reverse=True)
    if not sessions:
        return None
    backup, taken = read_zip(sweep_dir / BACKUP_FILE)
    reasons = []
    for i, session in enumerate(sessions):
        files = session_files(sweep_dir, session)
        why = check({n: p.read_bytes() for n, p in files.items()})
        if why is None:
            if i == 0:
                return None
            _remove_sessions(sweep_dir, sessions[:i])
            return f"{reasons[0]}; resuming from an earlier session's snapshot ({session})"
        reasons.append(why)
        mine = {n: d for n, d in backup.items() if session_of(n) == session}
        if mine and check(mine) is None:
            _remove_sessions(sweep_dir, sessions[:i + 1])
            for name, data in mine.items():
                (sweep_dir / name).write_bytes(data)
            when = time.strftime("%H:%M:%S", time.localtime(taken)) if taken else "?"
            return f"{reasons[0]}; resuming from the snapshot before it (kept at {when})"
    detail = reasons[0] if reasons else "no experiment state"
    raise SnapshotError(f"no snapshot of the sweep in {sweep_dir} reads back ({detail}): it cannot be resumed; "
                        "start it again under a new --name")


def repair_and_say(sweep_dir: Path) -> None:
    """:func:`repair`, printing what it did (a resume's progress line)."""
    said = repair(Path(sweep_dir))
    if said:
        print(f"[sweep] the last sweep snapshot does not read back: {said}", flush=True)


def _remove_sessions(sweep_dir: Path, sessions: list[str]) -> None:
    for session in sessions:
        for path in session_files(sweep_dir, session).values():
            path.unlink()
