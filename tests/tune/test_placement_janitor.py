"""The sweep's placement-group janitor against a real local Ray: a group still reserved after its trial's
grace is removed; a group Ray already freed is not waited for (the sweep's end used to sleep the whole
grace after every multi-worker sweep)."""
import time
from types import SimpleNamespace

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from mlplatform.tune.placement import PlacementGroupJanitor, group_state


def _reserved_group() -> str:
    pg = placement_group([{"CPU": 0.01}])
    ray.get(pg.ready(), timeout=120)
    return pg.id.hex()


def test_a_group_left_reserved_is_removed_after_the_grace(ray_session, tmp_path):
    pg = _reserved_group()
    janitor = PlacementGroupJanitor(tmp_path, grace_s=1.0)
    janitor.groups = {"t1": [pg]}
    janitor.on_trial_complete(0, [], SimpleNamespace(trial_id="t1"))
    janitor.on_experiment_end([])
    assert group_state(pg) == "REMOVED" and janitor.removed == [pg]


def test_the_sweep_end_does_not_wait_for_groups_ray_already_freed(ray_session, tmp_path):
    pg = _reserved_group()
    janitor = PlacementGroupJanitor(tmp_path, grace_s=900.0)
    janitor.groups = {"t1": [pg]}
    janitor.on_trial_error(0, [], SimpleNamespace(trial_id="t1"))
    remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(pg)))  # as Ray's own cleaner does
    t0 = time.monotonic()
    janitor.on_experiment_end([])
    # not a timing benchmark: the old code slept the whole 900 s grace here
    assert time.monotonic() - t0 < 450
    assert janitor.removed == [] and not janitor.due
