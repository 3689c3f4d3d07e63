"""The report of a T. stddev ranking with external DAs (reports/external-da-cpu).

    python experiments/external_da_report.py runs/rank_external reports/external-da-cpu
    python experiments/external_da_report.py --from-committed reports/external-da-cpu

Reads a ranking folder written by ``python -m augkd.rank`` without students (``per_seed.csv``:
one T. stddev per DA and seed; ``summary.json``: the protocol) and writes into the report folder
``results.csv`` (mean and seed std per DA, lowest first), ``neighbours.csv`` (each DA against
the next in the ranking and against rank 1, Welch's t-test over the seeds), the ranking figure
(every DA spec spelled out in full, on as many lines as it needs) and ``augkd.report``'s
``report.html`` / ``report.md`` around it. ``--from-committed`` rebuilds the same from the
``per_seed.csv`` and ``summary.json`` committed in a report folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from cifar10_cpu_report import DA_COLOURS, embed_png  # noqa: E402  (experiments/, beside this)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy import stats  # noqa: E402

from augkd.report import build_report, write_results  # noqa: E402

RANKING_ALT = "ranking by T. stddev"
#: colours of the DAs that come from other libraries, by library
LIBRARY_COLOURS = {"kornia": "#17becf", "albumentations": "#c5b0d5"}
TITLE = ("CIFAR-10 (JPEG q75, 16 px, 5,000 training images): 9 built-in + 4 kornia + "
         "2 albumentations DAs ranked for a resnet20 teacher")


def ranking(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and seed std (ddof 1) per DA of T. stddev and, where measured, the students' test
    loss and accuracy, lowest T. stddev first: the results.csv augkd.rank wrote (2026-12)."""
    g = per_seed.groupby("aug", sort=False)
    columns = {}
    for name in ("t_stddev", "s_test_loss", "s_test_acc"):
        if name in per_seed:
            columns[name], columns[f"{name}_std"] = g[name].mean(), g[name].std(ddof=1)
    columns["n_seeds"] = g.size()
    table = pd.DataFrame(columns).sort_values("t_stddev", kind="stable").reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def neighbours(per_seed: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Each DA against the next one in the ranking and against rank 1: the difference of the
    mean T. stddev and Welch's two-sided p over the seeds."""
    runs = {a: v["t_stddev"].to_numpy() for a, v in per_seed.groupby("aug")}
    order = list(table["aug"])

    def welch(a: str, b: str) -> float:
        return float(stats.ttest_ind(runs[a], runs[b], equal_var=False).pvalue)

    rows = []
    for i, aug in enumerate(order):
        nxt = order[i + 1] if i + 1 < len(order) else None
        rows.append({"rank": i + 1, "aug": aug, "next": nxt,
                     "next_minus_this": (runs[nxt].mean() - runs[aug].mean()) if nxt else np.nan,
                     "welch_p_next": welch(aug, nxt) if nxt else np.nan,
                     "minus_first": runs[aug].mean() - runs[order[0]].mean(),
                     "welch_p_first": welch(aug, order[0]) if i else np.nan})
    return pd.DataFrame(rows)


def _wrapped(label: str, width: int = 42) -> str:
    """A DA spec on lines of at most ``width`` characters where it can break, never cut: the
    name, then its arguments broken after commas."""
    if "(" not in label or len(label) <= width:
        return label
    head, args = label.split("(", 1)
    return head + "\n" + "\n".join(textwrap.wrap("(" + args, width, break_long_words=False,
                                                 break_on_hyphens=False))


def _colour(aug: str) -> str:
    library = aug.split(":", 1)[0] if ":" in aug else None
    return LIBRARY_COLOURS.get(library, "0.5") if library else DA_COLOURS.get(aug, "0.5")


def ranking_png(table: pd.DataFrame, n_seeds: int, path: Path) -> None:
    """Horizontal bars, lowest T. stddev on top, ± 1 seed std, every spec in full."""
    labels = [_wrapped(f"{r}. {a}") for r, a in
              zip(table["rank"], table["aug"], strict=True)]
    lines = max(label.count("\n") + 1 for label in labels)
    pos = np.arange(len(labels))
    fig = Figure(figsize=(8.6, 1.2 + len(labels) * (0.16 + 0.15 * lines)), dpi=150,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    values, errors = table["t_stddev"].to_numpy() * 100, table["t_stddev_std"].to_numpy() * 100
    ax.barh(pos, values, xerr=errors, height=0.6,
            color=[_colour(a) for a in table["aug"]], edgecolor="white",
            error_kw={"ecolor": "0.3", "capsize": 3, "lw": 1})
    for p, v, e in zip(pos, values, errors, strict=True):
        ax.annotate(f"{v:.3f}", (v + e, p), xytext=(5, 0), textcoords="offset points",
                    va="center", fontsize=8.5, color="0.25")
    ax.set_yticks(pos, labels, fontsize=8.5)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # rank 1 on top
    ax.set_xlabel("T. stddev (×10$^{-2}$), teacher only; lower = predicted better for KD")
    ax.margins(x=0.1)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"mean over {n_seeds} seeds; error bars ± 1 seed std", fontsize=9, loc="left")
    fig.legend(handles=[Patch(facecolor="white", edgecolor="0.4",
                              label="built-in DAs: each its colour in the other reports"),
                        *(Patch(color=c, label=f"{lib} DA")
                          for lib, c in LIBRARY_COLOURS.items())],
               loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.savefig(path, dpi=150, facecolor="white")


def readme_table(table: pd.DataFrame, near: pd.DataFrame) -> str:
    """The README's ranking: mean +- seed std (x1e-2) and Welch p against the next DA and
    against rank 1."""
    lines = ["| rank | DA | T. stddev (x1e-2) | p, against the next | p, against rank 1 |",
             "|---|---|---|---|---|"]
    for r, n in zip(table.itertuples(), near.itertuples(), strict=True):
        nxt = "-" if pd.isna(n.welch_p_next) else f"{n.welch_p_next:.2g}"
        first = "-" if pd.isna(n.welch_p_first) else f"{n.welch_p_first:.2g}"
        lines.append(f"| {r.rank} | {r.aug} | {100 * r.t_stddev:.3f} +- "
                     f"{100 * r.t_stddev_std:.3f} | {nxt} | {first} |")
    return "\n".join(lines) + "\n"


def build_tables(per_seed: pd.DataFrame) -> dict[str, Any]:
    """``results`` (the ranking), ``neighbours`` and ``readme`` from the per-seed T. stddev."""
    table = ranking(per_seed)
    near = neighbours(per_seed, table)
    return {"results": table, "neighbours": near, "readme": readme_table(table, near)}


def write_report(per_seed: pd.DataFrame, summary: dict, out: Path) -> dict[str, Any]:
    """Write results.csv, neighbours.csv, the ranking figure and the HTML / Markdown report."""
    tables = build_tables(per_seed)
    with tempfile.TemporaryDirectory() as tmp:
        # the panel keeps the name of the ranking's folder, and its figure's file name
        folder = write_results(Path(tmp) / "rank_external", tables["results"], summary)
        build_report([folder], out, title=TITLE)
    tables["results"].to_csv(out / "results.csv", index=False)
    tables["neighbours"].to_csv(out / "neighbours.csv", index=False)
    png = out / "rank_external-ranking.png"
    ranking_png(tables["results"], int(tables["results"]["n_seeds"].min()), png)
    embed_png(out / "report.html", RANKING_ALT, png)
    return tables


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ranking", type=Path, nargs="?", help="augkd.rank's output folder")
    parser.add_argument("out", type=Path, nargs="?", help="the report folder")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild REPORT from its per_seed.csv and summary.json")
    args = parser.parse_args()
    source = args.from_committed or args.ranking
    if source is None or (args.from_committed is None and args.out is None):
        parser.error("give RANKING OUT, or --from-committed REPORT")
    out = args.from_committed or args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.from_committed is None:
        for name in ("per_seed.csv", "summary.json"):
            shutil.copy(source / name, out / name)
    per_seed = pd.read_csv(out / "per_seed.csv")
    summary = json.loads((out / "summary.json").read_text())
    tables = write_report(per_seed, summary, out)
    print(tables["readme"])


if __name__ == "__main__":
    main()
