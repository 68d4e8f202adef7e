"""One exception type for problems the user can fix, and the stage entry-point wrapper.

Anything that is not a `UserError` is a bug in this project and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """A bad input file or param. The message is one line: what is wrong, where, and what to do."""


def stage_entry(main: Callable[[], None]) -> Callable[[], None]:
    """Wrap a stage's main(): a UserError becomes `error: <message>` on stderr and exit code 2."""

    @functools.wraps(main)
    def run() -> None:
        try:
            main()
        except UserError as err:
            message = " ".join(str(err).split())  # always one line
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return run
