"""``python -m augkd.report RESULTS... [--out DIR] [--title T]``: render results folders."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from augkd.report.results import ResultsError, load_results

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augkd.report",
        description="Render augkd results folders (results.csv + summary.json) into one "
        "self-contained report.html and a report.md with its PNGs.",
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results folder(s); several give one report with a panel each")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: beside the results: RESULTS/report/ "
                        "for one folder, report-<names>/ beside the first of several)")
    parser.add_argument("--title", default=None, help="report title")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the report CLI; returns the exit status (0 ok, 2 unreadable results or output)."""
    args = _parser().parse_args(argv)
    try:
        loaded = [load_results(folder) for folder in args.results]
    except (OSError, ResultsError) as err:
        print(f"augkd.report: error: {err}", file=sys.stderr)
        return 2

    from augkd.report.render import default_out_dir, render_report  # plotting stack is heavy

    out = args.out if args.out is not None else default_out_dir(loaded)
    try:
        paths = render_report(loaded, out, title=args.title)
    except OSError as err:
        print(f"augkd.report: error: cannot write the report to {str(out)!r}: {err}",
              file=sys.stderr)
        return 2
    print(f"wrote {paths.html}")
    print(f"wrote {paths.md} (+ {len(paths.pngs)} PNG files)")
    return 0
