"""Where a sweep's Optuna study is stored (a database URL), kept apart from the searcher so the dashboard's
launcher (jobs/optuna_ui.py) finds the store without importing Ray."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlplatform.config import ConfigError

ENV = "MLPLATFORM_OPTUNA_STORAGE"
DB_NAME = "optuna.db"


def resolve_storage(tracking_uri: str, explicit: str = "") -> str:
    """The study database: ``--optuna-storage`` > ``$MLPLATFORM_OPTUNA_STORAGE`` > ``optuna.db`` beside a
    sqlite tracking store > ``<repo>/optuna.db`` (a tracking server: pass a database URL on clusters)."""
    url = explicit or os.environ.get(ENV, "")
    if url:
        return url
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).resolve().parent / DB_NAME}"
    from mlplatform.paths import repo_root

    return f"sqlite:///{repo_root() / DB_NAME}"


def storage(url: str) -> Any:
    """An Optuna ``RDBStorage`` for ``url`` (tables created on first use); a bad URL is a one-line error."""
    import optuna

    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=None)
    except Exception as e:  # noqa: BLE001 - SQLAlchemy raises many kinds; the user needs one line
        raise ConfigError(f"Optuna storage {url!r} cannot be opened ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''}); check --optuna-storage / ${ENV}") from e


def check_new_study(url: str, name: str) -> None:
    """A new sweep must not append its trials to an older study of the same name."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return  # nothing stored yet: don't create the file before the sweep starts
    import optuna

    names = {s.study_name for s in optuna.get_all_study_summaries(storage(url), include_best_trial=False)}
    if name in names:
        raise ConfigError(f"the Optuna store {url} already has a study named {name!r}; continue it with "
                          f"--resume {name} or give the new sweep another --name")
