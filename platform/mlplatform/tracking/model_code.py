"""The registered model's code, for MLflow's models-from-code logging: MLflow copies this file into the
model and runs it on load, so the wrapper is imported from the installed platform, never unpickled."""
import mlflow.models

from mlplatform.tracking.models import PlatformModel

mlflow.models.set_model(PlatformModel())
