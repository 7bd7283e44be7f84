"""Storage checks done at a job's start, before Ray or training (issue 6, fault 5).

A run that finds out at its first checkpoint that ``--storage-path`` is read-only or full has already
spent its setup and maybe an epoch; the probe here finds out in milliseconds and says so in one line.
It really writes (and fsyncs) a probe file instead of trusting ``os.access``: as root, ``os.access``
says yes to a read-only mount and permission bits do not stop writes.
"""
from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from mlplatform.config import ConfigError

PROBE_BYTES = 1 << 20  # 1 MiB: a checkpoint is bigger; a disk that cannot take this is full for us
DEFAULT_MIN_FREE_MB = 100.0

_WHY = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
        errno.ENOTDIR: "a parent is a file, not a folder", errno.EEXIST: "exists and is not a folder"}


class StorageError(ConfigError):
    """A storage path or artifact location that a run could not write to."""


def is_uri(path: str) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: Ray and MLflow take these as they are."""
    return "://" in path


def normalize(path: str | Path) -> str:
    """An absolute local path, or a URI unchanged (``Path('s3://b/x').resolve()`` would mangle it)."""
    s = str(path)
    return s if is_uri(s) else str(Path(s).expanduser().resolve())


def min_free_mb() -> float:
    raw = os.environ.get("MLPLATFORM_MIN_FREE_MB", str(DEFAULT_MIN_FREE_MB))
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"MLPLATFORM_MIN_FREE_MB must be a number of megabytes, got {raw!r}") from None


def _fail(what: str, where: str, why: str, hint: str) -> StorageError:
    return StorageError(f"{what} {where} is not usable: {why}; {hint}")


def check_writable(path: str | Path, what: str = "storage path", hint: str = "") -> str:
    """Create ``path`` if needed, write and remove a 1 MiB probe, check free space; return the normalized
    path. Raises :class:`StorageError` (one line) naming ``what`` and the path."""
    where = normalize(path)
    hint = hint or f"choose another {what} or free space there"
    if is_uri(where):
        return _check_uri(where, what, hint)
    p = Path(where)
    probe = p / f".mlplatform-write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not p.is_dir():
            raise _fail(what, where, "exists and is not a folder", hint)
        st = os.statvfs(p)
        if st.f_flag & os.ST_RDONLY:  # said first: a read-only mount also reports no free space
            raise _fail(what, where, _WHY[errno.EROFS], hint)
        need = min_free_mb()
        free = st.f_bavail * st.f_frsize / 2**20
        if free < need:
            raise _fail(what, where, f"the disk is full ({free:.0f} MB free, need {need:.0f} MB; "
                                     "MLPLATFORM_MIN_FREE_MB sets the bar)", hint)
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())  # tmpfs/NFS may only report ENOSPC or EDQUOT here
    except OSError as e:
        raise _fail(what, where, _WHY.get(e.errno, e.strerror or type(e).__name__), hint) from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return where


def _check_uri(uri: str, what: str, hint: str) -> str:
    """Write and delete a small object through pyarrow's filesystem layer (the one Ray uses)."""
    import pyarrow.fs as pafs

    try:
        fs, base = pafs.FileSystem.from_uri(uri)
        fs.create_dir(base, recursive=True)
        probe = f"{base.rstrip('/')}/.mlplatform-write-probe-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, ValueError, ImportError) as e:  # pyarrow raises OSError subclasses for I/O and auth
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise _fail(what, uri, first, hint) from None
    return uri


def check_file_writable(path: str | Path, what: str) -> str:
    """For an output file written at the end of a job (``--json-out``): its folder must take a write now."""
    p = Path(normalize(path))
    if p.is_dir():
        raise StorageError(f"{what} {p} is a folder; give a file name")
    check_writable(p.parent, f"{what} folder", f"choose another {what} file")
    return str(p)
