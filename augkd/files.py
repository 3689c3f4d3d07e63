"""Small file-system helpers shared by the data cache and the run folders."""

from __future__ import annotations

import os


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(fd: int) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (mode 0600) the mode any other file of the
    process would get (0666 minus the umask), so that results written through a temporary file
    stay readable by the group, e.g. other users' shards of one sweep on a shared folder."""
    os.fchmod(fd, 0o666 & ~current_umask())
