"""Small file-system helpers shared by the data cache and the run folders."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
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
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp",
                                   dir=path.parent)
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


# ------------------------------------------------------------------------------------------------
# the temporary files of atomic writes, and the ones a killed write left behind

#: Another machine's (or an older augkd's, untagged) temporary file is left alone this long: no
#: write takes a day, and its writer cannot be asked whether it still runs.
FOREIGN_TEMPORARY_AGE_S = 24 * 3600
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)~(?P<ns>\d+)~(?P<pid>\d+)\."
                        r"[^.]*\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _pid_namespace() -> int:
    """This process's PID namespace (its inode; 0 where it cannot be read): two containers on
    one host may share a hostname but not their process numbers."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def temporary_prefix(path: Path) -> str:
    """The name start of an atomic write's temporary file for ``path``: ``.NAME.HOST~NS~PID.``,
    so that a later process can tell whether the writer still runs (:func:`is_stale`)."""
    return f".{path.name}.{_host()}~{_pid_namespace()}~{os.getpid()}."


def _started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when none runs; -inf when
    it runs but its start cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works: no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return float("-inf")
    except (OSError, StopIteration, IndexError, ValueError):
        return float("-inf")
    if fields[0] == "Z":  # dead, not yet reaped
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether ``path``, an atomic write's temporary file, was left by a writer that is gone:
    its process (same host and PID namespace) no longer runs, or its number now names a
    process started after the file was last written. Another host's file, or one without the
    owner in its name, counts as stale only after :data:`FOREIGN_TEMPORARY_AGE_S`."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False
    match = _TEMPORARY.match(path.name)
    if match is None or match["host"] != _host() or int(match["ns"]) != _pid_namespace():
        return (time.time() if now is None else now) - mtime > FOREIGN_TEMPORARY_AGE_S
    started = _started(int(match["pid"]))
    return started is None or started > mtime + 2.0  # start times are known to a second


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Delete the ``.*.tmp`` files under ``root`` (all folders) that killed atomic writes left
    behind (:func:`is_stale`); the writes of running processes (other workers, shards) are
    left alone. Returns the files removed."""
    removed = []
    now = time.time()
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") and name.endswith(".tmp") and is_stale(path, now):
                path.unlink(missing_ok=True)
                removed.append(path)
    return sorted(removed)
