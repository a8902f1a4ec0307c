"""One kind of user error, and one way a command reports it.

Bad input (a file, case or option the user can fix) raises ``UserError`` (or a subclass named for
its step) with a one-line message that names the file, case or option and says what to do. A
command's ``main`` is wrapped in ``user_errors``: such an error is printed as ``error: <message>``
on stderr, with no traceback, and the command exits with status 2 (the usage-error status of
argparse and of ``OptionsParser``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

USAGE_ERROR_STATUS = 2  # argparse's status for a usage error; ours for every user error


class UserError(ValueError):
    """Input this project refuses; the message is one line for the user."""


def report(error: BaseException, *, show: bool = True) -> int:
    """Print ``error: <first line of the message>`` to stderr (unless ``show`` is false, e.g.
    on a process other than the main one); return the exit status 2."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if show:
        print(f"error: {lines[0]}", file=sys.stderr)
    return USAGE_ERROR_STATUS


def user_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's ``main(argv)``: a ``UserError`` becomes one line and exit status 2."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as err:
            return report(err)

    return wrapped
