"""An on-disk cache of decoded datasets: one torch file per source, written atomically."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from augkd.files import atomic_write

CACHE_ENV = "AUGKD_CACHE"


def default_cache_dir() -> Path:
    """``$AUGKD_CACHE`` when set, else ``~/.cache/augkd``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/augkd").expanduser()


def save_atomic(content: dict[str, Any], path: Path) -> None:
    """Write ``content`` with :func:`torch.save` to ``path`` via a temporary file and a rename.

    A reader never sees a half-written file, and concurrent writers of the same key simply
    replace each other's identical result. A cache that cannot be written (disk full,
    read-only) is warned about and skipped: the cache is an optimization, not a result.
    """
    try:
        atomic_write(path, lambda f: torch.save(content, f))
    except OSError as err:  # a full or read-only cache disk: the cache is only an optimization
        warnings.warn(f"could not update the data cache: {err.strerror or err}; going on "
                      "without it (the data will be decoded again next time)", stacklevel=2)


def load_cached(path: Path) -> dict[str, Any] | None:
    """The content saved at ``path``, or None when there is none.

    An unreadable cache file is reported with a warning and treated as missing (it is rebuilt).
    """
    if not path.is_file():
        return None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure means: decode again and overwrite
        warnings.warn(f"ignoring unreadable cache file {path} ({exc}); rebuilding it", stacklevel=3)
        return None
    if not isinstance(content, dict):
        warnings.warn(f"ignoring malformed cache file {path}; rebuilding it", stacklevel=3)
        return None
    return content
