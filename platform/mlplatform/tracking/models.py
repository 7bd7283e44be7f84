"""A trained run as an MLflow model that can be loaded by name (``hpo.py --register NAME``).

The run's best checkpoint (``checkpoints/best/state.pt``, optimizer state dropped) and its
``manifest.json`` are logged as an MLflow ``LoggedModel`` of the pyfunc flavour, linked to the run it came
from, with the manifest as the model's metadata, and registered as a new version of ``NAME`` in the model
registry. Loading unpickles nothing: the pyfunc wrapper (:class:`PlatformModel`) is logged as code
(``model_code.py``, MLflow's models-from-code), and it rebuilds the family's model from the checkpoint's config and loads the
weights with ``torch.load(..., weights_only=True)`` (``train.checkpoint.load_checkpoint``).

``predict`` takes the model's forward arguments by name (``Family.inputs``, e.g. riscov's ``r_samp``) as
arrays and returns the forward's output as numpy (a dict of arrays when the model returns a dict).
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_model_name(name: str) -> str:
    """A registered model name this platform accepts (letters, digits, ``_ . -``); ``ValueError`` otherwise."""
    if not NAME_RE.match(name or ""):
        raise ValueError(f"model name {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit")
    return name


class PlatformModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: the family's nn.Module built from the checkpoint's config, in eval mode."""

    def load_context(self, context: Any) -> None:
        from mlplatform.registry import get_family
        from mlplatform.train.checkpoint import load_checkpoint

        payload = load_checkpoint(context.artifacts["checkpoint"])
        self.family = get_family(payload["family"])
        self.cfg = self.family.config_cls.from_dict(payload["config"])
        self.model = self.family.build_model(self.cfg)
        self.model.load_state_dict(payload["model"])
        self.model.eval()

    # no type hints here: MLflow reads predict's hints as a schema, and a dict of arrays is not one it knows
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        import numpy as np
        import torch

        names = self.family.inputs
        missing = [n for n in names if n not in model_input]
        if not names or missing:
            raise ValueError(f"{self.family.name} takes {', '.join(names) or 'no named inputs'}; missing "
                             f"{', '.join(missing)}")
        with torch.no_grad():
            out = self.model(*[torch.as_tensor(np.asarray(model_input[n])) for n in names])
        if isinstance(out, dict):
            return {k: v.detach().cpu().numpy() for k, v in out.items() if torch.is_tensor(v)}
        return out.detach().cpu().numpy()


def register_run(tracking_uri: str, run_id: str, name: str, extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Log run ``run_id``'s best checkpoint as a LoggedModel (metadata: its manifest) and register it as a
    new version of ``name``. Returns ``{"name", "version", "model_id", "model_uri", "run_id"}``."""
    import mlflow
    import torch

    from mlplatform.train.checkpoint import load_checkpoint

    check_model_name(name)
    cl = mlflow.MlflowClient(tracking_uri)
    run = cl.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(cl.download_artifacts(run_id, "checkpoints/best", tmp))
        payload = load_checkpoint(best)
        slim = {**payload, "optimizer": None, "scheduler": None}  # weights and config are what a user loads
        torch.save(slim, Path(tmp) / "state.pt")
        try:
            manifest = json.loads(Path(cl.download_artifacts(run_id, "manifest.json", tmp)).read_text())
        except Exception:  # noqa: BLE001 - a run from before manifests: register it without one
            manifest = {}
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
        tags = {"family": payload["family"], "source_run": run_id, **(extra_tags or {})}
        # Model.log, not pyfunc.log_model: only it takes run_id, so the source run need not be reopened
        info = mlflow.models.Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, python_model=str(Path(__file__).with_name("model_code.py")),
            artifacts={"checkpoint": str(Path(tmp) / "state.pt")}, run_id=run_id,
            metadata={"manifest": manifest}, tags=tags, registered_model_name=name,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"])
    version = info.registered_model_version
    return {"name": name, "version": str(version), "model_id": info.model_id, "model_uri": f"models:/{name}/{version}",
            "run_id": run_id}


def load_registered(name: str, version: str = "latest", tracking_uri: str | None = None) -> PlatformModel:
    """The registered model ``name`` (a version number, or ``latest``) as its :class:`PlatformModel`:
    ``.model`` is the nn.Module, ``.cfg`` its config, ``.predict(None, {input: array})`` runs it."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{check_model_name(name)}/{version}").unwrap_python_model()
