"""Shared pieces of the job CLIs: config arguments and one-line errors with exit code 2."""
from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
import threading
from typing import Any, Callable, Mapping, TypeVar

from mlplatform.config import ConfigError, describe


class UsageError(ConfigError):
    """A bad flag combination."""


class JobInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached a job. A KeyboardInterrupt, so every ``except KeyboardInterrupt`` that
    ends runs as interrupted (the sweep driver's) treats SIGTERM the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def raise_on_stop_signals() -> None:
    """From now on SIGINT and SIGTERM raise :class:`JobInterrupted` in the main thread (once: a second
    signal while the job cleans up is ignored, the cleanup has its own deadline)."""
    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        exit_after(7.0, 128 + signum)  # within 10 s whatever the cleanup meets (a loaded machine delays threads by seconds)
        raise JobInterrupted(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


T = TypeVar("T")


def call_interruptibly(fn: Callable[[], T]) -> T:
    """``fn()`` in a helper thread while the main thread waits for it, so our SIGINT/SIGTERM handlers
    keep working: Ray Train's ``fit`` installs its own SIGINT handler (a graceful abort that took 25 s
    and ignored SIGTERM) and Ray Tune its own, but both only from the main thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
            box["error"] = e

    t = threading.Thread(target=target, name="ray-fit", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def exit_after(seconds: float, code: int) -> None:
    """A last resort for an interrupted job: whatever its cleanup is doing, the process ends with
    ``code`` after ``seconds`` (a daemon timer; a cleanup that finishes first returns normally)."""
    timer = threading.Timer(seconds, lambda: os._exit(code))
    timer.daemon = True
    timer.start()


def add_config_args(p: argparse.ArgumentParser, default_family: str | None = None, preset_default: str = "auto") -> None:
    from mlplatform.registry import FAMILIES

    fams = ", ".join(sorted(FAMILIES))
    if default_family:
        p.add_argument("--family", default=default_family, help=f"model family ({fams}); default {default_family}")
    else:
        p.add_argument("--family", required=True, help=f"model family ({fams})")
    p.add_argument("--preset", default=preset_default,
                   help="debug | full | auto (auto = full with a GPU, debug without); default %(default)s")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable, e.g. --set loss.lam_cov_pred=0.1 (see --list-keys)")
    p.add_argument("--list-keys", action="store_true", help="print every config key with type, range and default, then exit")


def resolve_preset(preset: str, resources: Mapping[str, Any] | None = None) -> str:
    """The one ``--preset auto`` rule. With the Ray cluster's ``resources`` (after ``init_ray``): ``full``
    where it has a GPU, else ``debug``, and say so. Without them (checks before Ray starts, jobs that
    run in this process): ``debug``, the preset every machine can run."""
    if preset != "auto":
        return preset
    if resources is None:
        return "debug"
    chosen = "full" if resources.get("GPU", 0) > 0 else "debug"
    why = "a GPU is available" if chosen == "full" else "no GPU found: using the CPU-sized debug preset"
    print(f"[preset] auto -> {chosen} ({why}; pass --preset to choose)", flush=True)
    return chosen


def maybe_list_keys(args: argparse.Namespace) -> bool:
    if not getattr(args, "list_keys", False):
        return False
    from mlplatform.registry import build_config

    for line in describe(build_config(args.family, resolve_preset(args.preset))):
        print(line)
    return True


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(e: BaseException) -> str:
    """The message of a known error as one clean line: the original error of a Ray task (whose text
    carries a traceback), no terminal colour codes (torch puts some in its unpickling errors), no newlines."""
    cause = getattr(e, "cause", None)  # ray.exceptions.RayTaskError keeps the raised exception here
    if isinstance(cause, BaseException):
        e = cause
    return " ".join(_ANSI.sub("", str(e)).split())


def one_line_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Known bad input -> ``error: <one line>`` on stderr and exit code 2, no traceback."""
    from mlplatform.train.checkpoint import CheckpointError

    @functools.wraps(main)
    def wrapper(*a: Any, **k: Any) -> int:
        # a job may install its stop-signal handlers (raise_on_stop_signals); a test calling main() in-process
        # gets its own back afterwards
        main_thread = threading.current_thread() is threading.main_thread()
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
        try:
            return int(main(*a, **k) or 0)
        except (ConfigError, CheckpointError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
            return 2
        except JobInterrupted as e:
            print(f"interrupted by {signal.Signals(e.signum).name}", file=sys.stderr, flush=True)
            return e.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            return 130
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
    return wrapper
