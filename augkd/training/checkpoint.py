"""Checkpoints that survive a kill: atomic writes, weights-only loads.

Every file augkd writes that a later run depends on goes through :func:`atomic_save` or
:func:`atomic_write_text`: the bytes land in a temporary file in the same folder, are flushed
to disk, and the file is renamed over the target, so a reader sees the old file or the new
one, never half of one. Loads use ``torch.load(..., weights_only=True)``: a checkpoint holds
tensors and plain containers only and can never execute code.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from augkd.files import atomic_write


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (temp file, fsync, rename)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_csv(rows: list[dict[str, Any]], fields: Sequence[str],
                     path: str | os.PathLike) -> None:
    """Write ``rows`` as a CSV table with the columns ``fields`` to ``path`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(buf.getvalue(), path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load an augkd checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file is not a readable checkpoint (truncated, foreign, unsafe).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for bad files
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj
