"""MLflow metric histories, step by step: what the "each metric point once" tests compare (issue 16)."""
from __future__ import annotations

import math

from mlflow.tracking import MlflowClient

# wall-clock values: the same steps, values differ run to run
TIMING = (
    "sys/epoch_time_s", "sys/data_wait_frac", "sys/epoch_wall_s", "sys/epoch_cpu_s", "sys/epoch_gpu_s",
)
# MLflow's system-metrics monitor samples on a clock (every 10 s), not per epoch: neither steps nor values
# are a function of the training, so they are left out of the comparison
CLOCKED_PREFIX = "system/"


def history(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every per-epoch metric of a run as (step, value) points in step order; timing metrics as steps only."""
    cl = MlflowClient(uri)
    out = {}
    for key in cl.get_run(run_id).data.metrics:
        if key.startswith(CLOCKED_PREFIX):
            continue
        pts = sorted((m.step, m.value) for m in cl.get_metric_history(run_id, key))
        out[key] = [(s, math.nan if key in TIMING else v) for s, v in pts]
    return out


def assert_same_history(got: dict, want: dict, label: str = "") -> None:
    """The same keys, each step once, the same steps and (timing aside) exactly the same values."""
    assert sorted(got) == sorted(want), label
    for key, points in want.items():
        steps = [s for s, _ in got[key]]
        assert len(steps) == len(set(steps)), f"{label} {key}: a step logged twice: {steps}"
        assert steps == [s for s, _ in points], f"{label} {key}: steps {steps} vs {[s for s, _ in points]}"
        if key not in TIMING:
            assert [v for _, v in got[key]] == [v for _, v in points], f"{label} {key}"
