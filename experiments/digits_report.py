"""The digits study's report (reports/digits/resnet20-resnet8), rebuilt from its results folders.

    python experiments/digits_report.py reports/digits/resnet20-resnet8

The two results folders inside (``per-image/``, ``per-batch/``: ``per_seed.csv``, ``results.csv``,
``summary.json``, as ``python -m augkd.rank --validate --both-modes`` wrote them) are the raw
data. This renders ``augkd.report``'s ``report.html`` / ``report.md`` and ranking figures from
them, and replaces its scatters with the two-panel scatter of ``cifar10_cpu_report.py`` (the
crowded middle enlarged, error bars labelled), in the PNG files and in the HTML.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from augkd.report import build_report
from cifar10_cpu_report import SCATTER_ALT, embed_png, scatter_png  # experiments/, beside this

MODES = ("per-image", "per-batch")
TITLE = "digits: resnet20 → resnet8, 9 DAs, 3 seeds, 30 student epochs"


def write_report(folder: Path) -> None:
    """Render the report of ``folder``'s results folders into ``folder``."""
    build_report([folder / mode for mode in MODES], folder, title=TITLE)
    for nth, mode in enumerate(MODES):
        table = pd.read_csv(folder / mode / "results.csv").set_index("aug")
        summary = json.loads((folder / mode / "summary.json").read_text())
        corr = {k: summary[k] for k in ("pearson", "spearman", "kendall")}
        png = folder / f"{mode}-scatter.png"
        scatter_png(table, corr, int(table["n_seeds"].min()), png)
        embed_png(folder / "report.html", SCATTER_ALT, png, nth=nth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="reports/digits/resnet20-resnet8")
    write_report(parser.parse_args().folder)


if __name__ == "__main__":
    main()
