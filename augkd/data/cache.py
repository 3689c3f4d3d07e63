"""An on-disk cache of decoded datasets: one torch file per source, written atomically."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "AUGKD_CACHE"


def default_cache_dir() -> Path:
    """``$AUGKD_CACHE`` when set, else ``~/.cache/augkd``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/augkd").expanduser()


def save_atomic(content: dict[str, Any], path: Path) -> None:
    """Write ``content`` with :func:`torch.save` to ``path`` via a temporary file and a rename.

    A reader never sees a half-written file, and concurrent writers of the same key simply
    replace each other's identical result.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            torch.save(content, temp)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


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
