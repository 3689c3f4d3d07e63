"""The digits study's report (reports/digits/resnet20-resnet8), rebuilt from its results folders.

    python experiments/digits_report.py reports/digits/resnet20-resnet8

The two results folders inside (``per-image/``, ``per-batch/``: ``per_seed.csv``, ``results.csv``,
``summary.json``, as ``python -m augkd.rank --validate --both-modes`` wrote them) are the raw
data. The per-DA tables (``results.csv``) and the tier entries of ``summary.json`` are recomputed
from ``per_seed.csv`` with ``augkd.ranking.aggregate`` (the study ran before rank wrote tiers; its
runs did not record the one-run bootstrap errors, so ± is the seed SE alone). This renders
``augkd.report``'s ``report.html`` / ``report.md`` and ranking figures from them, and replaces
its scatters with the two-panel scatter of ``cifar10_cpu_report.py`` (the crowded middle
enlarged, error bars labelled), in the PNG files and in the HTML.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from cifar10_cpu_report import SCATTER_ALT, embed_png, scatter_png  # experiments/, beside this

from augkd.metrics.tiers import effect_vs_noise
from augkd.ranking import aggregate
from augkd.report import build_report

MODES = ("per-image", "per-batch")
TITLE = "digits: resnet20 → resnet8, 9 DAs, 3 seeds, 30 student epochs"


def retier(results: Path) -> None:
    """Rewrite ``results``' results.csv and the tier entries of its summary.json from its
    per_seed.csv (mean, SE over seeds, tiers of T. stddev and S. test loss, the ANOVA)."""
    per_seed = pd.read_csv(results / "per_seed.csv")
    table, tiers = aggregate(per_seed)
    table.to_csv(results / "results.csv", index=False)
    summary = json.loads((results / "summary.json").read_text())
    seeds = int(table["n_seeds"].min())
    best = tiers["t_stddev"].best
    summary.update({
        "uncertainty": {"t_stddev": f"± is the standard error of the mean over {seeds} seeds "
                        f"(the seed std / sqrt({seeds})); these runs did not record the "
                        "one-run bootstrap error", "seeds": seeds},
        "tiers": tiers["t_stddev"].as_json(),
        "recommended": {"aug": best[0], "tied_with": list(best[1:])},
        "s_test_loss_tiers": tiers["s_test_loss"].as_json(),
        "effect_vs_noise": {c: effect_vs_noise({a: r[c].tolist()
                                                for a, r in per_seed.groupby("aug")})
                            for c in ("s_test_loss", "s_test_acc", "t_stddev")},
    })
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def write_report(folder: Path) -> None:
    """Render the report of ``folder``'s results folders into ``folder``."""
    for mode in MODES:
        retier(folder / mode)
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
