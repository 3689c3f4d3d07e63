"""The results-folder format shared by the ranking CLI (writer) and the report (reader).

A results folder holds two files:

``results.csv``
    one row per DA. Required columns ``aug`` (unique names) and ``t_stddev``; optional
    ``tier`` (1 = best; DAs of one tier are tied), ``t_stddev_se`` (standard error),
    ``t_stddev_std`` (seed spread), ``s_test_loss``, ``s_test_loss_se``, ``s_test_loss_std``,
    ``s_test_loss_tier``, ``s_test_acc``, ``s_test_acc_std``, ``n_seeds``. Further columns are
    kept as they are. An empty cell is a value that does not exist (a std of one seed).
``summary.json``
    ``{"format": "augkd-results/1", "protocol": {...free-form: dataset, teacher, student,
    epochs, seeds, mode, ...}, "pearson": {"r", "p", ...}, "spearman": {...},
    "kendall": {...}, ...}``; the correlation entries are present only when student results
    exist.

Both files are written atomically (temporary file, then rename), so a killed writer never
leaves a half-written folder behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augkd.files import atomic_write

__all__ = [
    "FORMAT",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Results",
    "ResultsError",
    "load_results",
    "write_results",
]

FORMAT = "augkd-results/1"
TABLE_FILE = "results.csv"
SUMMARY_FILE = "summary.json"
REQUIRED_COLUMNS = ("aug", "t_stddev")
OPTIONAL_COLUMNS = (
    "tier",
    "t_stddev_se",
    "t_stddev_std",
    "s_test_loss",
    "s_test_loss_se",
    "s_test_loss_std",
    "s_test_loss_tier",
    "s_test_acc",
    "s_test_acc_std",
    "n_seeds",
)
CORRELATIONS = ("pearson", "spearman", "kendall")


class ResultsError(ValueError):
    """A results folder or its contents do not follow the ``augkd-results/1`` format."""


@dataclasses.dataclass(frozen=True)
class Results:
    """One loaded results folder.

    Attributes:
        folder: where it was read from.
        table: one row per DA, columns as in ``results.csv`` (``aug`` as strings).
        summary: the parsed ``summary.json``.
    """

    folder: Path
    table: pd.DataFrame
    summary: dict[str, Any]

    @property
    def name(self) -> str:
        """The folder's name (used for titles and file names)."""
        return self.folder.resolve().name

    @property
    def protocol(self) -> dict[str, Any]:
        """The free-form protocol description (empty if the writer gave none)."""
        return dict(self.summary.get("protocol") or {})

    @property
    def has_student(self) -> bool:
        """Whether student results (an S. test loss for at least one DA) exist."""
        return "s_test_loss" in self.table and bool(self.table["s_test_loss"].notna().any())

    @property
    def correlations(self) -> dict[str, dict[str, Any]]:
        """The correlation entries of the summary that are present (may be empty)."""
        return {k: self.summary[k] for k in CORRELATIONS if isinstance(self.summary.get(k), dict)}


def _check_table(table: pd.DataFrame, where: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        has = ", ".join(map(str, table.columns))
        raise ResultsError(f"{where} lacks column(s) {', '.join(missing)}; has: {has}")
    if table.empty:
        raise ResultsError(f"{where} has no rows")
    dup = table["aug"][table["aug"].duplicated()].tolist()
    if dup:
        names = ", ".join(map(str, dup))
        raise ResultsError(f"{where} lists augmentation(s) more than once: {names}")
    for column in (c for c in table.columns if c != "aug"):
        if column in REQUIRED_COLUMNS or column in OPTIONAL_COLUMNS:
            if not pd.api.types.is_numeric_dtype(table[column]):
                raise ResultsError(f"{where}: column {column} must be numeric")
    bad = table.loc[~np.isfinite(table["t_stddev"].to_numpy(dtype=float)), "aug"].tolist()
    if bad:  # a NaN teacher gives a ranking of NaNs: never render it as a result
        raise ResultsError(f"{where}: T. stddev is not finite for {', '.join(map(str, bad))}")


def load_results(folder: str | os.PathLike[str]) -> Results:
    """Read a results folder.

    Args:
        folder: a folder holding ``results.csv`` and ``summary.json``.

    Returns:
        :class:`Results`.

    Raises:
        FileNotFoundError: the folder does not exist.
        ResultsError: not a folder, empty, a foreign folder, a missing or unreadable file, a
            wrong format tag, missing required columns (each with a one-line message).
    """
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"results folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise ResultsError(f"{str(path)!r} is not a folder")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        raise ResultsError(f"results folder {str(path)!r} is empty")
    table_path, summary_path = path / TABLE_FILE, path / SUMMARY_FILE
    inner = sorted(str(p.parent) for p in path.glob(f"*/{SUMMARY_FILE}"))
    inner += sorted(str(p.parent) for p in path.glob(f"results/*/{SUMMARY_FILE}"))
    if not summary_path.is_file() and inner:  # a --both-modes rank folder or a sweep folder
        raise ResultsError(
            f"{str(path)!r} holds results folders, not results: give "
            f"{' '.join(inner[:4])}{' ...' if len(inner) > 4 else ''}"
        )
    if not table_path.is_file() and not summary_path.is_file():
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ResultsError(
            f"{str(path)!r} is not an augkd results folder: no {TABLE_FILE} or {SUMMARY_FILE} "
            f"(found {shown})"
        )
    for p in (table_path, summary_path):
        if not p.is_file():
            raise ResultsError(f"results folder {str(path)!r} lacks {p.name}")

    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{str(summary_path)!r} is not valid JSON: {err}") from None
    if not isinstance(summary, dict):
        raise ResultsError(f"{str(summary_path)!r} must hold a JSON object")
    tag = summary.get("format")
    if tag != FORMAT:
        raise ResultsError(
            f"{str(summary_path)!r} has format {tag!r}; this augkd reads {FORMAT!r}"
        )
    if not isinstance(summary.get("protocol", {}), dict):
        raise ResultsError(f"{str(summary_path)!r}: 'protocol' must be a JSON object")

    try:
        table = pd.read_csv(table_path, dtype={"aug": str}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ResultsError(f"{str(table_path)!r} cannot be read as CSV: {err}") from None
    _check_table(table, repr(str(table_path)))
    return Results(folder=path, table=table, summary=summary)


def _json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN/Inf to null, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_results(
    folder: str | os.PathLike[str], table: pd.DataFrame, summary: Mapping[str, Any]
) -> Path:
    """Write a results folder (created if needed) atomically, file by file.

    Args:
        folder: destination folder.
        table: one row per DA with at least the columns ``aug`` and ``t_stddev``.
        summary: the summary; ``format`` is set to ``augkd-results/1`` (a different tag is an
            error), ``protocol`` should describe the run. NaN values become JSON null.

    Returns:
        The folder's path.
    """
    path = Path(folder)
    table = table.reset_index(drop=True)
    _check_table(table, "results table")
    summary = dict(summary)
    if summary.setdefault("format", FORMAT) != FORMAT:
        raise ResultsError(f"summary format {summary['format']!r} is not {FORMAT!r}")
    if not isinstance(summary.get("protocol", {}), Mapping):
        raise ResultsError("summary 'protocol' must be a mapping")
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / TABLE_FILE, table.to_csv(index=False))
    text = json.dumps(_json_ready(summary), indent=2, allow_nan=False) + "\n"
    _write_atomic(path / SUMMARY_FILE, text)
    return path
