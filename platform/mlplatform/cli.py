"""Shared pieces of the job CLIs: config arguments and one-line errors with exit code 2."""
from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Any, Callable

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


def maybe_list_keys(args: argparse.Namespace) -> bool:
    if not getattr(args, "list_keys", False):
        return False
    from mlplatform.registry import build_config

    preset = "debug" if args.preset == "auto" else args.preset
    for line in describe(build_config(args.family, preset)):
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
