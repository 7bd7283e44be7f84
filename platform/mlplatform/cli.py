"""Shared pieces of the job CLIs: config arguments and one-line errors with exit code 2."""
from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Any, Callable, Mapping

from mlplatform.config import ConfigError, describe


class UsageError(ConfigError):
    """A bad flag combination."""


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
        try:
            return int(main(*a, **k) or 0)
        except (ConfigError, CheckpointError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return wrapper
