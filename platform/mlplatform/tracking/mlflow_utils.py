"""MLflow: tracking-URI resolution, experiments, parent/child runs, and a buffered run logger.

Only ``MlflowClient`` is used (never ``mlflow.set_experiment`` in a sweep driver: it exports
``MLFLOW_EXPERIMENT_ID`` into the environment, which Ray workers inherit, so their runs silently land
in that experiment).
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from mlplatform.config import ConfigError

# Fail fast instead of MLflow's default minutes of HTTP retries; our logger buffers and retries itself.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from mlplatform.paths import repo_root  # noqa: E402,F401 - re-exported

PARENT_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<repo>/mlruns.db``."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{repo_root() / 'mlruns.db'}"


def default_artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store go to ``mlartifacts/`` beside the database file (the default store's:
    ``<repo>/mlartifacts``; ``sqlite:////data/x.db``'s: ``/data/mlartifacts``, never into the repository).
    A server decides its own."""
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):].split("?", 1)[0]
        if db and db != ":memory:":
            return str(Path(db).resolve().parent / "mlartifacts")
    return None


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Raise ConfigError (one line) when the store cannot be used, before any Ray work."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - user-given server
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
        except (OSError, urllib.error.URLError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(f"MLflow tracking server {uri} is unreachable ({reason}); start it or unset "
                              f"MLFLOW_TRACKING_URI to use the local store") from None
        # /health answers without credentials; a server with basic auth refuses the API itself
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except mlflow.exceptions.MlflowException as e:
            code = getattr(e, "get_http_status_code", lambda: 0)()
            text = str(e)
            if code in (401, 403) or "401" in text or "403" in text or "Unauthorized" in text:
                who = os.environ.get("MLFLOW_TRACKING_USERNAME")
                raise ConfigError(f"MLflow tracking server {uri} refused the request "
                                  f"({'as user ' + repr(who) if who else 'no credentials given'}); set "
                                  f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
            raise ConfigError(f"MLflow tracking server {uri} answers /health but not its API "
                              f"({text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__})") from None
    elif uri.startswith("sqlite:///"):
        from mlplatform.storage import check_writable

        hint = "point MLFLOW_TRACKING_URI at a writable store or a server (or set MLPLATFORM_HOME)"
        db = Path(uri[len("sqlite:///"):])
        check_writable(db.parent, "MLflow store folder", hint)
        if db.exists():  # opened read-only: a check never changes the store it checks
            import sqlite3

            try:
                with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as con:
                    con.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.Error as e:
                raise ConfigError(f"MLflow store {db} is not a readable SQLite database ({e}); {hint}") from None
        art = default_artifact_root(uri)
        if art:
            check_writable(art, "MLflow artifact folder", hint)


def check_experiment_artifacts(uri: str, experiment: str) -> None:
    """An existing experiment keeps the artifact location it was created with; when that is a local
    folder the client writes it directly, so probe it now (a server-proxied one is the server's)."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return  # a store not created yet holds no experiment (and a check must not create it)
    try:
        exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except Exception as e:  # noqa: BLE001 - MlflowException, SQLAlchemy errors: all mean "cannot read"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"MLflow store {uri} cannot be read ({first})") from None
    loc = exp.artifact_location if exp is not None else ""
    if loc.startswith("file://") or loc.startswith("/"):
        from mlplatform.storage import check_writable

        path = urllib.request.url2pathname(loc[len("file://"):]) if loc.startswith("file://") else loc
        check_writable(path, f"artifact location of MLflow experiment '{experiment}'",
                       "make it writable or log to another experiment with --experiment")


def client(uri: str | None = None) -> MlflowClient:
    return MlflowClient(tracking_uri=resolve_tracking_uri(uri))


def get_or_create_experiment(cl: MlflowClient, name: str) -> str:
    exp = cl.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            cl.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    art = default_artifact_root(cl.tracking_uri)
    loc = f"{Path(art) / name}" if art else None
    try:
        return cl.create_experiment(name, artifact_location=Path(loc).as_uri() if loc else None)
    except mlflow.exceptions.MlflowException:
        # another process created it in between
        return cl.get_experiment_by_name(name).experiment_id


def find_run(cl: MlflowClient, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The id of the (oldest) run carrying all ``tags``, or None. Used to continue, never duplicate."""
    flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = cl.search_runs([experiment_id], filter_string=flt, max_results=5, order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def start_or_continue_run(cl: MlflowClient, experiment_id: str, run_name: str, tags: dict[str, str],
                          key_tags: dict[str, str]) -> str:
    """Continue the run identified by ``key_tags`` (a restored sweep, a retried worker) or create it."""
    run_id = find_run(cl, experiment_id, key_tags)
    if run_id is None:
        run = cl.create_run(experiment_id, run_name=run_name, tags={**tags, **key_tags})
        return run.info.run_id
    if cl.get_run(run_id).info.status != "RUNNING":
        cl.update_run(run_id, status="RUNNING")
    return run_id


def _param_value(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 6000 else s[:5997] + "..."


# How long ``RunLogger.close`` keeps retrying a down store before it gives up (issue 6, fault 4: a
# 60 s server outage must not lose the run's last epochs). Override with MLPLATFORM_MLFLOW_RETRY_S.
DEFAULT_RETRY_S = 600.0
# After a failed send the logger waits before it tries again, doubling up to this cap: a server that
# hangs (instead of refusing) costs the loop one request timeout per backoff period, not per call.
MAX_BACKOFF_S = 30.0


def retry_window_s() -> float:
    try:
        return max(0.0, float(os.environ.get("MLPLATFORM_MLFLOW_RETRY_S", DEFAULT_RETRY_S)))
    except ValueError:
        raise ConfigError(f"MLPLATFORM_MLFLOW_RETRY_S must be a number of seconds, got "
                          f"{os.environ['MLPLATFORM_MLFLOW_RETRY_S']!r}") from None


class RunLogger:
    """Logs params/metrics/tags/artifacts to one run; buffers while the store is unreachable.

    Nothing is dropped when the tracking server goes away mid-run: failed items stay queued, in order,
    and are sent at a later call once the backoff has passed, or at :meth:`close`, which keeps retrying
    for ``MLPLATFORM_MLFLOW_RETRY_S`` seconds (default 600). Metrics keep the step and timestamp of the
    moment they were logged, so a buffered epoch lands in MLflow exactly as if the server had been up.

    ``epoch_marker``: a metric key every per-step batch carries (the loop's ``sys/epoch_time_s``). A
    run continued after a restart (a retried worker, a resumed sweep) re-runs the epochs after its last
    checkpoint, and some of them may already be in the store; before its first metrics batch the
    logger reads the marker's history once and never sends a batch that carries the marker at a step
    already there, so each point is in the run once (docs/sweeps.md, "Each metric point once").
    """

    def __init__(self, run_id: str, tracking_uri: str | None = None, verbose: bool = True,
                 epoch_marker: str = ""):
        self.run_id = run_id
        self.epoch_marker = epoch_marker
        # highest step of ``epoch_marker`` already in the store; None until read (at the first send)
        self.logged_through: int | None = None if epoch_marker else -1
        self.uri = resolve_tracking_uri(tracking_uri)
        self.cl = MlflowClient(tracking_uri=self.uri)
        self._pending: list[tuple[str, Any]] = []
        self.verbose = verbose
        self._warned = False
        self._backoff = 0.0
        self._next_try = 0.0  # time.monotonic() before which no send is attempted

    # -- queueing ------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's per-batch param limit
            self._pending.append(("params", items[i:i + 100]))
        self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, step) for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        # the marker goes last: MLflow splits a batch of > 1000 metrics into requests sent in order, so
        # the marker at a step in the store means the whole batch of that step is there
        ms.sort(key=lambda m: m.key == self.epoch_marker)
        if ms:
            self._pending.append(("metrics", ms))
        self.flush()

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._pending.append(("tags", [RunTag(k, str(v)) for k, v in tags.items()]))
        self.flush()

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        if self.flush():
            try:
                self.cl.log_artifacts(self.run_id, local_dir, artifact_path=artifact_path)
                return
            except Exception:  # noqa: BLE001 - the store went away: buffer a copy below
                pass
        # buffer a copy: the caller may replace or delete the folder (the loop's "best") before we can send it
        snap = tempfile.mkdtemp(prefix="mlp-art-")
        shutil.copytree(local_dir, snap, dirs_exist_ok=True)
        self._pending.append(("artifacts", (snap, artifact_path)))
        self.flush(force=True)  # sets the backoff and prints the "buffering" line once

    def log_text(self, text: str, artifact_file: str) -> None:
        d = tempfile.mkdtemp(prefix="mlp-art-")
        p = Path(d) / Path(artifact_file).name
        p.write_text(text)
        parent = str(Path(artifact_file).parent)
        self._pending.append(("artifacts", (d, None if parent == "." else parent)))
        self.flush()

    def end(self, status: str = "FINISHED", timeout_s: float | None = None) -> bool:
        self._pending.append(("end", status))
        return self.close(timeout_s=timeout_s)

    # -- sending -------------------------------------------------------------------------------
    def _send(self, kind: str, payload: Any) -> None:
        if kind == "params":
            self.cl.log_batch(self.run_id, params=payload)
        elif kind == "metrics":
            if not self._already_logged(payload):
                self.cl.log_batch(self.run_id, metrics=payload)
        elif kind == "tags":
            self.cl.log_batch(self.run_id, tags=payload)
        elif kind == "artifacts":
            local_dir, path = payload
            self.cl.log_artifacts(self.run_id, local_dir, artifact_path=path)
            shutil.rmtree(local_dir, ignore_errors=True)  # our own temporary copy
        elif kind == "end":
            self.cl.set_terminated(self.run_id, status=payload)

    def _already_logged(self, metrics: list[Metric]) -> bool:
        """True for a batch carrying the epoch marker at a step the store already holds (sent before a restart)."""
        if not self.epoch_marker or metrics[-1].key != self.epoch_marker:
            return False
        if self.logged_through is None:  # once per logger: one history read of one key
            self.logged_through = max((m.step for m in self.cl.get_metric_history(self.run_id, self.epoch_marker)),
                                      default=-1)
        if metrics[-1].step > self.logged_through:
            return False
        if self.verbose:
            print(f"[mlflow] run {self.run_id} already holds step {metrics[-1].step} (logged before a restart); "
                  "not logging it again", flush=True)
        return True

    def flush(self, force: bool = False) -> bool:
        """Send queued items in order; False (items kept) when the store is unreachable.

        Without ``force``, a flush inside the backoff period after a failure returns at once."""
        if self._pending and not force and time.monotonic() < self._next_try:
            return False
        while self._pending:
            kind, payload = self._pending[0]
            try:
                self._send(kind, payload)
            except Exception as e:  # noqa: BLE001 - any store failure: keep the item, retry later
                if kind == "params" and "already logged" in str(e).lower():
                    self._pending.pop(0)  # a resumed run re-logs identical params; MLflow refuses changes
                    continue
                self._backoff = min(MAX_BACKOFF_S, max(1.0, self._backoff * 2))
                self._next_try = time.monotonic() + self._backoff
                if self.verbose and not self._warned:
                    print(f"[mlflow] store unreachable ({type(e).__name__}); buffering "
                          f"{len(self._pending)} item(s) and retrying later", flush=True)
                    self._warned = True
                return False
            self._pending.pop(0)
        self._backoff, self._next_try = 0.0, 0.0
        if self._warned and self.verbose:
            print("[mlflow] store reachable again; buffered items sent", flush=True)
            self._warned = False
        return True

    def close(self, timeout_s: float | None = None, wait_s: float = 2.0) -> bool:
        """Flush, retrying every ``wait_s`` for up to ``timeout_s`` (default: MLPLATFORM_MLFLOW_RETRY_S)."""
        deadline = time.monotonic() + (retry_window_s() if timeout_s is None else timeout_s)
        while True:
            if self.flush(force=True):
                return True
            if time.monotonic() + wait_s > deadline:
                break
            time.sleep(wait_s)
        print(f"[mlflow] giving up: {len(self._pending)} item(s) could not be sent to {self.uri}", flush=True)
        return False

    @property
    def pending(self) -> int:
        return len(self._pending)


def ui_command(uri: str) -> str:
    """The exact command that opens the MLflow UI on ``uri`` (localhost only)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    art = default_artifact_root(uri)
    extra = f" --default-artifact-root {art}" if art else ""
    return f".venv/bin/mlflow ui --backend-store-uri {uri}{extra} --host 127.0.0.1 --port 5000"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def end_run_if_running(cl: MlflowClient, run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """Best effort from a job's driver: the rank-0 ``RunLogger`` already ends the run (buffered, with
    retries), so a tracking store that is down right now is a warning here, never a crash."""
    try:
        run = cl.get_run(run_id)
        if tags:
            cl.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        if run.info.status == "RUNNING":
            cl.set_terminated(run_id, status=status)
    except (mlflow.exceptions.MlflowException, OSError) as e:
        print(f"[mlflow] could not end run {run_id} as {status} ({type(e).__name__}); "
              f"it stays as the training logger left it", flush=True)


def iter_child_runs(cl: MlflowClient, experiment_id: str, parent_run_id: str) -> Iterable[Any]:
    return cl.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                          max_results=1000)
