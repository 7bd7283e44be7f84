#!/usr/bin/env python
"""Open optuna-dashboard on the sweeps' Optuna studies, bound to 127.0.0.1 (``make optuna-ui``).

The store is found as a sweep finds it: ``--optuna-storage`` > ``$MLPLATFORM_OPTUNA_STORAGE`` > ``optuna.db``
beside a sqlite ``MLFLOW_TRACKING_URI`` > ``<repo>/optuna.db``. Each sweep is one study, named like the sweep.

  python jobs/optuna_ui.py                 # http://127.0.0.1:8080
  python jobs/optuna_ui.py --port 8081 --optuna-storage postgresql://user@db-host/optuna
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlplatform.cli import UsageError, one_line_errors


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optuna-storage", default="", help="database URL of the studies (default: as the sweeps)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default %(default)s)")
    args = p.parse_args(argv)
    from mlplatform.paths import repo_root
    from mlplatform.tune.study_store import resolve_storage

    # the tracking store as mlflow_utils.resolve_tracking_uri finds it (not imported: it loads MLflow)
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlruns.db'}"
    url = resolve_storage(tracking, args.optuna_storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise UsageError(f"no Optuna store at {url} yet: run a sweep first (python jobs/hpo.py), or pass "
                         "--optuna-storage")
    print(f"[optuna-ui] {url} on http://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
    sys.stdout.flush()
    # exec: the dashboard takes this process's PID, so whoever started it can stop it by that PID
    exe = Path(sys.executable).with_name("optuna-dashboard")
    os.execv(str(exe), [str(exe), url, "--host", "127.0.0.1", "--port", str(args.port)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
