"""Results folders (the ranking CLI's output) and the HTML/Markdown report rendered from them.

``python -m augkd.report RESULTS...`` renders folders from the command line;
:func:`build_report` does the same from Python. The plotting stack is imported only when a
report is rendered (:mod:`augkd.report.render`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from augkd.report.results import (
    FORMAT,
    Results,
    ResultsError,
    load_results,
    write_results,
)

__all__ = ["FORMAT", "Results", "ResultsError", "build_report", "load_results", "write_results"]


def build_report(
    folders: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Load results folders and write ``report.html`` and ``report.md`` (+ PNGs) into ``out``.

    Args:
        folders: results folders; one panel each, in order.
        out: output folder; default ``reports/<name of the folder(s)>``.
        title: the report's title (default: from the folder names).

    Returns:
        The path of ``report.html``.
    """
    from augkd.report.render import default_out_dir, render_report

    loaded = [load_results(folder) for folder in folders]
    target = Path(out) if out is not None else default_out_dir(loaded)
    return render_report(loaded, target, title=title).html
