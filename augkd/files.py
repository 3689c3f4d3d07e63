"""Small file-system helpers shared by the data cache and the run folders."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file in the same folder, which
    is flushed to disk and renamed over ``path``, so a reader sees the old file or the new one,
    never half of one. The temporary file is removed if anything fails.

    Raises:
        OSError: the folder or file cannot be written; the message names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
    try:
        honour_umask(fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
