"""What every augkd command line shares: bad input ends in one clear line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from augkd.extras import MissingExtraError

# Errors that mean "the user asked for something that cannot be done": their messages name the
# bad value and what was expected, so the command prints them as one line and exits with 2.
# OSError covers a missing file, a full disk ("cannot write PATH: No space left on device") and
# a run folder that another process is writing (RunFolderBusyError); MissingExtraError an
# optional dependency that is not installed (its message names the pip command).
USER_ERRORS = (ValueError, OSError, KeyError, MissingExtraError)


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a command's body; a user error prints ``error: <message>`` on stderr and returns 2,
    a non-finite training loss returns 3."""
    from augkd.training.trainer import NonFiniteLossError

    try:
        return body() or 0
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def worker_log(worker_id: int) -> Callable[[str], None]:
    """A logger for worker process ``worker_id`` that writes each line in one call.

    The workers share the parent's stdout; ``print`` writes the text and its newline separately
    when Python runs unbuffered (``PYTHONUNBUFFERED``), and two workers' lines then interleave.
    """
    def log(message: str) -> None:
        sys.stdout.write(f"[worker {worker_id}] {message}\n")
        sys.stdout.flush()
    return log
