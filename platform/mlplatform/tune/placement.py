"""Our own cleanup of multi-worker trials' placement groups.

A multi-worker trial fits a ``TorchTrainer`` whose worker group reserves a placement group. When Tune
stops the trial (ASHA, a guard) the group is left to Ray Train's ``PlacementGroupCleaner``, a detached
actor whose monitor thread dies on any State API error other than its own exception type, e.g. "Found
multiple active Ray instances" (ray-project/ray#54305): the group then stays reserved and the next trial
waits for workers forever. So the sweep does it too: rank 0 of each trial reports its group's id with
every result (``train.executors.PLACEMENT_GROUP_KEY``); when a trial ends, for any reason, the driver
removes the trial's groups still reserved a few seconds later; the ids are written to the sweep's
folder, and a resumed sweep removes those still reserved before any trial starts (docs/sweeps.md,
"Placement groups of multi-worker trials").
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from mlplatform.train.executors import PLACEMENT_GROUP_KEY

RECORD_FILE = "placement_groups.json"


def group_state(pg_id: str) -> str:
    """The group's state in the GCS (``CREATED``, ``PENDING``, ``REMOVED``...); ``REMOVED`` when unknown."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table

    table = placement_group_table(PlacementGroup(ray.PlacementGroupID.from_hex(pg_id)))
    return table.get("state", "REMOVED")


def remove_if_reserved(pg_id: str) -> bool:
    """Remove the group unless Ray already did; True when this call removed it."""
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    if group_state(pg_id) == "REMOVED":
        return False
    remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(pg_id)))
    return True


def read_record(sweep_dir: Path) -> dict[str, list[str]]:
    """Trial id -> the placement-group ids its reports named (empty when none was recorded)."""
    path = Path(sweep_dir) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def remove_orphans(sweep_dir: Path) -> list[str]:
    """Before a (resumed) sweep starts trials: remove every recorded group of this sweep still reserved
    (left by a driver that died, on a cluster that outlived it). Returns the removed ids."""
    removed = [pg for groups in read_record(sweep_dir).values() for pg in groups if remove_if_reserved(pg)]
    for pg in removed:
        print(f"[sweep] removed placement group {pg}, left reserved by an earlier run of this sweep", flush=True)
    return removed


class PlacementGroupJanitor(Callback):
    """Records each trial's worker placement groups from its results; removes those still reserved
    ``grace_s`` after the trial ended. The grace lets Ray's own teardown go first: removing the group of a
    trial whose Train controller is still shutting down works, but makes the controller print a
    worker-death traceback for a trial that ended well (seen on the first try, which removed at once)."""

    def __init__(self, sweep_dir: Path, grace_s: float = 10.0):
        self.path = Path(sweep_dir) / RECORD_FILE
        self.grace_s = grace_s
        self.groups: dict[str, list[str]] = {}
        self.due: dict[str, float] = {}  # trial id -> when its groups are checked (monotonic seconds)
        self.removed: list[str] = []  # groups this driver had to remove (Ray had not)

    def setup(self, **info: Any) -> None:
        # also on Tuner.restore, which unpickles this callback as it was when the sweep began
        self.groups = read_record(self.path.parent)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        pg = result.get(PLACEMENT_GROUP_KEY)
        known = self.groups.setdefault(trial.trial_id, [])
        if isinstance(pg, str) and pg not in known:  # a retried worker group reserves a new group
            known.append(pg)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.groups, indent=1))

    def _sweep(self, trial_id: str) -> None:
        for pg in self.groups.get(trial_id, []):
            try:
                if remove_if_reserved(pg):
                    self.removed.append(pg)
                    print(f"[sweep] removed placement group {pg} of trial {trial_id} (still reserved "
                          f"{self.grace_s:g} s after the trial ended)", flush=True)
            except Exception as e:  # noqa: BLE001 - bookkeeping must never end the sweep
                print(f"[sweep] could not remove placement group {pg} of trial {trial_id}: "
                      f"{type(e).__name__}: {e}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.due[trial.trial_id] = time.monotonic() + self.grace_s

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.due[trial.trial_id] = time.monotonic() + self.grace_s

    def on_step(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        for trial_id in [t for t, when in self.due.items() if when <= now]:
            del self.due[trial_id]
            self._sweep(trial_id)

    def _still_reserved(self) -> bool:
        return any(group_state(pg) != "REMOVED" for t in self.due for pg in self.groups.get(t, []))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """The last trials' groups: wait out their grace unless Ray frees them sooner (it usually does, in
        a second or two; a trial that never started a worker group has none), then sweep. Waiting the
        full grace every time made each multi-worker sweep end 10 s late."""
        end = max(self.due.values(), default=0.0)
        while time.monotonic() < end and self._still_reserved():
            time.sleep(0.5)
        for trial_id in list(self.due):
            del self.due[trial_id]
            self._sweep(trial_id)
