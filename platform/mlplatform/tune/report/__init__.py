"""The sweep report: what a sweep found, which knobs mattered, and which trials were stopped and why
(docs/sweep_report.md). ``data`` holds the types every section shares and imports none of them; ``build``
reads the sweep back from MLflow and assembles the sections (``noise``, ``pareto``, ``plots``,
``plots_more``) into ``report.md``/``report.html``; ``doc`` is the document writer."""
from __future__ import annotations

from mlplatform.tune.report.build import load_sweep, param_importances, write_sweep_report
from mlplatform.tune.report.data import SweepData, TrialRecord

__all__ = ["SweepData", "TrialRecord", "load_sweep", "param_importances", "write_sweep_report"]
