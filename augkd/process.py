"""Process helpers shared by the command lines and the training ranks (a leaf module)."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["PR_SET_PDEATHSIG", "prctl"]

#: prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux (None elsewhere, or where libc cannot be loaded). Look it up
    before a fork, not in the child."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
