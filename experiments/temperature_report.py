"""The temperature study's report: accuracy and loss against T per variant, beside seed 002.

    python experiments/temperature_report.py runs/temperature_cpu reports/temperature-cpu
    python experiments/temperature_report.py --from-committed reports/temperature-cpu

Reads every finished run under the study folder (``<student>/<variant>-T<T>-s<seed>/`` and
``<student>/labels-s<seed>/``) and writes ``results.csv`` (one row per run, with its training
seconds), ``table.csv`` / ``table.md`` (mean +- std over seeds per student, variant and T, with
seed 002's published figures beside the w2a1 rows), ``t2_ablation.csv`` (soft + hard with and
without the T^2 factor, Welch's t-test over the seeds), ``vs_labels.csv`` (each w2a1 cell
against the student on labels alone, here and in seed 002) and ``temperature.png`` (top-1 and
test loss against T, one panel per student). ``--from-committed`` rebuilds everything but
``results.csv`` from the ``results.csv`` committed in a report folder.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

#: Seed 002 (CIFAR-10, 94.3 % teacher, w2/a1 student alone 90.0 %), protocol section 10.
SEED_002 = {
    "soft": {10: 90.0, 15: 90.4, 50: 88.1, 100: 89.9},
    "soft+hard": {10: 90.0, 15: 91.0, 50: 90.1, 100: 90.3},
    "gt": {10: 90.2, 15: 91.4, 50: 90.0, 100: 90.6},
}
SEED_002_LABELS_ONLY = 90.0
VARIANTS = ("soft", "soft+hard", "gt", "soft+hard-noT2")
_RUN = re.compile(r"^(?P<variant>.+)-T(?P<t>[\d.]+)-s(?P<seed>\d+)$")


def collect(study: Path) -> pd.DataFrame:
    rows = []
    for summary_path in sorted(study.glob("*/*/summary.json")):
        student, name = summary_path.parent.parent.name, summary_path.parent.name
        summary = json.loads(summary_path.read_text())
        if name.startswith("labels-s"):
            variant, t, seed = "labels", float("nan"), int(name.split("-s")[1])
        else:
            match = _RUN.match(name)
            if match is None:
                continue
            variant, t, seed = match["variant"], float(match["t"]), int(match["seed"])
        metrics = summary_path.parent / "metrics.jsonl"
        seconds = (sum(json.loads(line).get("epoch_time_s", 0.0)
                       for line in metrics.read_text().splitlines() if line.strip())
                   if metrics.is_file() else float("nan"))
        rows.append({"student": student, "variant": variant, "T": t, "seed": seed,
                     "test_top1": summary["last"]["test_top1"],
                     "test_loss": summary["last"]["test_loss"],
                     "epochs": summary["last"]["epoch"], "train_seconds": seconds})
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.groupby(["student", "variant", "T"], dropna=False, sort=False)
    table = grouped.agg(top1=("test_top1", "mean"), top1_std=("test_top1", "std"),
                        loss=("test_loss", "mean"), loss_std=("test_loss", "std"),
                        seeds=("seed", "count")).reset_index()
    table["seed_002_top1"] = [
        (SEED_002_LABELS_ONLY if r.variant == "labels" else SEED_002.get(r.variant, {}).get(
            int(r.T) if pd.notna(r.T) else None)) if r.student == "w2a1" else None
        for r in table.itertuples()]
    return table


def markdown(table: pd.DataFrame) -> str:
    out = []
    for student in dict.fromkeys(table["student"]):
        part = table[table["student"] == student]
        temps = sorted(t for t in part["T"].dropna().unique())
        out += [f"### {student} student", "",
                "| variant | " + " | ".join(f"T = {t:g}" for t in temps) + " |",
                "|---|" + "---|" * len(temps)]
        for variant in VARIANTS:
            cells = []
            for t in temps:
                r = part[(part["variant"] == variant) & (part["T"] == t)]
                if r.empty:
                    cells.append("-")
                    continue
                r = r.iloc[0]
                cell = f"{r.top1:.2f} +- {r.top1_std:.2f} (loss {r.loss:.3f})"
                if pd.notna(r.seed_002_top1):
                    cell += f" [seed 002: {r.seed_002_top1:.1f}]"
                cells.append(cell)
            out.append(f"| {variant} | " + " | ".join(cells) + " |")
        labels = part[part["variant"] == "labels"]
        if not labels.empty:
            r = labels.iloc[0]
            extra = (f" [seed 002: {SEED_002_LABELS_ONLY:.1f}]" if student == "w2a1" else "")
            out += ["", f"Labels alone (CE, no teacher): {r.top1:.2f} +- {r.top1_std:.2f} % "
                    f"(loss {r.loss:.3f}){extra}."]
        out.append("")
    return "\n".join(out)


def _welch(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Welch's t and two-sided p of mean(a) - mean(b) (NaN with fewer than 2 runs a side)."""
    if min(len(a), len(b)) < 2:
        return float("nan"), float("nan")
    test = stats.ttest_ind(a, b, equal_var=False)
    return float(test.statistic), float(test.pvalue)


def _top1(results: pd.DataFrame, student: str, variant: str, t: float | None) -> pd.Series:
    part = results[(results["student"] == student) & (results["variant"] == variant)]
    return (part if t is None else part[part["T"] == t])["test_top1"]


def t2_ablation(table: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """soft + hard with the T^2 factor against the same loss without it (1/T^2 weight), with
    Welch's t-test over the seeds of the two cells."""
    rows = []
    for (student, t), part in table.dropna(subset=["T"]).groupby(["student", "T"]):
        by = part.set_index("variant")
        if {"soft+hard", "soft+hard-noT2"} <= set(by.index):
            with_t2, without = by.loc["soft+hard"], by.loc["soft+hard-noT2"]
            welch_t, welch_p = _welch(_top1(results, student, "soft+hard", t),
                                      _top1(results, student, "soft+hard-noT2", t))
            rows.append({"student": student, "T": t, "top1_with_T2": with_t2.top1,
                         "top1_without_T2": without.top1,
                         "difference": with_t2.top1 - without.top1,
                         "seed_std": max(with_t2.top1_std, without.top1_std),
                         "welch_t": welch_t, "welch_p": welch_p})
    return pd.DataFrame(rows)


def vs_labels(results: pd.DataFrame, student: str = "w2a1") -> pd.DataFrame:
    """Each (variant, T) cell of ``student`` minus the student on labels alone, with Welch's
    p over the seeds, beside seed 002's published difference (w2a1 only)."""
    labels = _top1(results, student, "labels", None)
    rows = []
    for variant in VARIANTS:
        for t in sorted(results["T"].dropna().unique()):
            cell = _top1(results, student, variant, t)
            if cell.empty:
                continue
            _, p = _welch(cell, labels)
            published = SEED_002.get(variant, {}).get(int(t)) if student == "w2a1" else None
            rows.append({"student": student, "variant": variant, "T": t,
                         "minus_labels": cell.mean() - labels.mean(), "welch_p": p,
                         "seed_002_minus_labels": (published - SEED_002_LABELS_ONLY
                                                   if published is not None else float("nan"))})
    return pd.DataFrame(rows)


def readme_tables(table: pd.DataFrame, versus: pd.DataFrame) -> str:
    """The README's two tables: mean top-1 per cell (the best of each student in bold), and the
    w2a1 cells against labels alone, here (with Welch p) and in seed 002."""
    temps = sorted(table["T"].dropna().unique())
    lines = ["| student | variant | " + " | ".join(f"T = {t:g}" for t in temps) + " |",
             "|---|---|" + "---|" * len(temps)]
    for student in ("w2a1", "fp"):
        part = table[table["student"] == student]
        best = part["top1"].max()
        for variant in (*VARIANTS, "labels"):
            rows = part[part["variant"] == variant]
            if rows.empty:
                continue
            cells = []
            for t in temps if variant != "labels" else temps[:1]:
                r = rows if variant == "labels" else rows[rows["T"] == t]
                v = f"{r['top1'].iloc[0]:.2f}"
                cells.append(f"**{v}**" if r["top1"].iloc[0] == best else v)
            cells += [""] * (len(temps) - len(cells))
            name = "labels alone" if variant == "labels" else variant
            lines.append(f"| {student} | {name} | " + " | ".join(cells) + " |")
    temps = sorted(versus["T"].unique())
    lines += ["", "| variant | " + " | ".join(f"T = {t:g}" for t in temps) + " |",
              "|---|" + "---|" * len(temps)]
    for variant in ("soft", "soft+hard", "gt"):
        rows = versus[versus["variant"] == variant].set_index("T")
        lines.append(f"| {variant}, here (Welch p) | " + " | ".join(
            f"{rows.loc[t, 'minus_labels']:+.1f} ({rows.loc[t, 'welch_p']:.2g})" for t in temps)
            + " |")
        lines.append(f"| {variant}, seed 002 | " + " | ".join(
            "-" if pd.isna(rows.loc[t, "seed_002_minus_labels"]) else
            f"{rows.loc[t, 'seed_002_minus_labels']:+.1f}" for t in temps) + " |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path) -> None:
    students = list(dict.fromkeys(table["student"]))
    seeds = int(table["seeds"].min())
    fig, axes = plt.subplots(2, len(students), figsize=(5.2 * len(students), 7.0), squeeze=False,
                             layout="constrained")
    for col, student in enumerate(students):
        part = table[table["student"] == student]
        for k, variant in enumerate(VARIANTS):
            v = part[part["variant"] == variant].sort_values("T")
            if v.empty:
                continue
            dodge = 1.035 ** (k - (len(VARIANTS) - 1) / 2)  # the variants' error bars side by side
            for row, (key, std) in enumerate((("top1", "top1_std"), ("loss", "loss_std"))):
                axes[row][col].errorbar(v["T"] * dodge, v[key], yerr=v[std].fillna(0),
                                        marker="o", markersize=5, capsize=3, label=variant)
        labels = part[part["variant"] == "labels"]
        for row, key in enumerate(("top1", "loss")):
            ax = axes[row][col]
            if not labels.empty:
                ax.axhline(labels.iloc[0][key], color="grey", linestyle="--",
                           label="labels alone")
            ax.set_xscale("log")
            ax.set_xlabel("temperature T (the variants drawn slightly apart at each T)")
            ax.set_ylabel("test top-1 (%)" if key == "top1" else "test loss")
            ax.grid(alpha=0.3)
        axes[0][col].set_title(f"{student} student")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8.5,
               frameon=False, title=f"mean over {seeds} seeds; error bars ± 1 seed std",
               title_fontsize=8.5)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def build_tables(results: pd.DataFrame) -> dict[str, Any]:
    """Every table of the report from the per-run table: ``table`` (DataFrame), ``table_md``,
    ``t2_ablation``, ``vs_labels`` (DataFrames) and ``readme`` (the README's tables)."""
    table = summarize(results)
    versus = vs_labels(results)
    return {"table": table, "table_md": markdown(table),
            "t2_ablation": t2_ablation(table, results), "vs_labels": versus,
            "readme": readme_tables(table, versus)}


def write_report(results: pd.DataFrame, out: Path) -> dict[str, Any]:
    """Write the tables and the figure of ``results`` into ``out`` (not results.csv)."""
    tables = build_tables(results)
    tables["table"].to_csv(out / "table.csv", index=False)
    tables["t2_ablation"].to_csv(out / "t2_ablation.csv", index=False)
    tables["vs_labels"].to_csv(out / "vs_labels.csv", index=False)
    (out / "table.md").write_text(tables["table_md"])
    plot(tables["table"], out / "temperature.png")
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, nargs="?", help="the study's run folder")
    parser.add_argument("out", type=Path, nargs="?", help="the report folder")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild REPORT's tables and figure from its results.csv")
    args = parser.parse_args()
    if args.from_committed:
        out, results = args.from_committed, pd.read_csv(args.from_committed / "results.csv")
    else:
        if args.study is None or args.out is None:
            parser.error("give STUDY OUT, or --from-committed REPORT")
        out, results = args.out, collect(args.study)
        if results.empty:
            raise SystemExit(f"no finished runs under {args.study}")
        out.mkdir(parents=True, exist_ok=True)
        results.to_csv(out / "results.csv", index=False)
    tables = write_report(results, out)
    print(tables["readme"])
    print(tables["t2_ablation"].to_string(index=False))


if __name__ == "__main__":
    main()
