"""What one training run is asked to do: :class:`RunOptions`, built once by a job or an executor.

It carries the validated config object itself (never a dict to re-validate), crosses Ray as a
picklable value (``TorchTrainer``'s ``train_loop_config``, ``tune.with_parameters``), and is read by
attribute, so a misspelt option is an ``AttributeError`` rather than a silent default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from mlplatform.config import Config
from mlplatform.protocol import Family, resolve_family


@dataclass(frozen=True)
class RunOptions:
    family: Family  # the bundle itself (pickled by reference to its module's functions)
    cfg: Config  # the resolved, validated config of the run
    mlflow_run_id: str | None = None  # rank 0 logs to this run when set
    tracking_uri: str | None = None
    resume_from: str | None = None  # an explicit checkpoint folder: a new run from old weights
    reset_optimizer: bool = False  # with resume_from: keep weights and step, fresh optimizer and scheduler
    work_dir: str | None = None  # local checkpoints (default: a fresh temporary folder)
    verbose: bool = True  # epoch lines on rank 0
    label: str = ""  # prefix of the terminal lines (default: the family name)
    use_gpu: bool = True  # use CUDA when present
    cpus: float | None = None  # torch threads when train.num_threads is 0 (Ray sets OMP_NUM_THREADS=1)
    executor: str = "local"  # MLflow tag: local, torchtrainer, tune-function, tune-torchtrainer
    val_set_logged: bool = False  # a sweep attaches the frozen validation set to the parent run once
    # the driver's part of manifest.json (tracking/manifest.py: command, code, data); rank 0 completes it
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def family_name(self) -> str:
        return self.family.name

    def replace(self, **changes: Any) -> "RunOptions":
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, value: "RunOptions | Mapping[str, Any]") -> "RunOptions":
        """``RunOptions`` as is; a mapping of the same fields (tests and benchmarks write them so) is
        converted once, its ``cfg`` dict rebuilt into the family's config class and validated."""
        if isinstance(value, RunOptions):
            return value
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise TypeError(f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
        opts = dict(value)
        opts["family"] = resolve_family(opts["family"])
        if not isinstance(opts.get("cfg"), Config):
            opts["cfg"] = opts["family"].config_cls.from_dict(opts["cfg"])
        return cls(**opts)
