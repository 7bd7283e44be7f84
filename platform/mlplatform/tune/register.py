"""``hpo.py --register NAME``: the sweep's winner as a registered MLflow model (``tracking.models``).

Which run is registered: with a confirmation, the confirmed winner's confirmation run with the best value
over its new seeds (it ran the full length, with the seeds the winner was chosen on); without one (a sweep
run with ``--confirm-top 0``), the sweep's best trial. A Pareto sweep has no single winner: nothing is
registered and the reason is printed. The parent run gets the tags ``registered_model`` and
``registered_version``.
"""
from __future__ import annotations

from typing import Any

from mlplatform.tracking import mlflow_utils as mu
from mlplatform.tracking.models import register_run
from mlplatform.tune.confirm import CONFIRM_SEED0, CONFIRM_TAG


def winner_run(cl: Any, summary: dict[str, Any]) -> tuple[str | None, str]:
    """(run id to register, why that run); (None, why not) when there is none."""
    conf = summary.get("confirm")
    if conf:
        tid, mode = conf["winner_trial"], summary["mode"]
        values = list(conf["seed_means"][tid])
        j = values.index(min(values) if mode == "min" else max(values))
        seed = str(CONFIRM_SEED0 + j)
        for run in mu.iter_child_runs(cl, summary["experiment_id"], summary["parent_run_id"]):
            tags = run.data.tags
            if tags.get(CONFIRM_TAG) == "true" and tags.get("confirm_of") == tid and tags.get("confirm_seed") == seed:
                return run.info.run_id, f"confirmed winner {tid}, its best new seed (train.seed={seed})"
        return None, f"the confirmation run of {tid} with train.seed={seed} is not in MLflow"
    if summary.get("best_run_id"):
        return summary["best_run_id"], f"best trial {summary.get('best_trial')} (no confirmation)"
    return None, "the sweep has no best trial (a Pareto sweep, or no trial reported the metric)"


def register_winner(summary: dict[str, Any], uri: str, name: str) -> dict[str, Any] | None:
    """Register the sweep's winner as ``name``; None (and a printed reason) when there is nothing to register."""
    cl = mu.client(uri)
    run_id, why = winner_run(cl, summary)
    if run_id is None:
        print(f"[register] nothing registered as {name}: {why}", flush=True)
        return None
    reg = register_run(uri, run_id, name, {"sweep": str(summary.get("sweep", "")),
                                            "sweep_parent_run": summary["parent_run_id"], "chosen": why})
    cl.set_tag(summary["parent_run_id"], "registered_model", name)
    cl.set_tag(summary["parent_run_id"], "registered_version", reg["version"])
    print(f"[register] {reg['model_uri']} from run {run_id} ({why}); load it with "
          f"mlplatform.tracking.models.load_registered({name!r})", flush=True)
    return {**reg, "chosen": why}
