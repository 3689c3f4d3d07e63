"""The temperature study's report: accuracy and loss against T per variant, beside seed 002.

    python experiments/temperature_report.py runs/temperature_cpu reports/temperature-cpu

Reads every finished run under the study folder (``<student>/<variant>-T<T>-s<seed>/`` and
``<student>/labels-s<seed>/``) and writes ``results.csv`` (one row per run), ``table.csv`` /
``table.md`` (mean +- std over seeds per student, variant and T, with seed 002's published
figures beside the w2a1 rows), ``t2_ablation.csv`` (soft + hard with and without the T^2
factor) and ``temperature.png`` (top-1 and test loss against T, one panel per student).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

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
        rows.append({"student": student, "variant": variant, "T": t, "seed": seed,
                     "test_top1": summary["last"]["test_top1"],
                     "test_loss": summary["last"]["test_loss"],
                     "epochs": summary["last"]["epoch"]})
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


def t2_ablation(table: pd.DataFrame) -> pd.DataFrame:
    """soft + hard with the T^2 factor against the same loss without it (1/T^2 weight)."""
    rows = []
    for (student, t), part in table.dropna(subset=["T"]).groupby(["student", "T"]):
        by = part.set_index("variant")
        if {"soft+hard", "soft+hard-noT2"} <= set(by.index):
            with_t2, without = by.loc["soft+hard"], by.loc["soft+hard-noT2"]
            rows.append({"student": student, "T": t, "top1_with_T2": with_t2.top1,
                         "top1_without_T2": without.top1,
                         "difference": with_t2.top1 - without.top1,
                         "seed_std": max(with_t2.top1_std, without.top1_std)})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> None:
    students = list(dict.fromkeys(table["student"]))
    fig, axes = plt.subplots(2, len(students), figsize=(5.2 * len(students), 6.4), squeeze=False)
    for col, student in enumerate(students):
        part = table[table["student"] == student]
        for variant in VARIANTS:
            v = part[part["variant"] == variant].sort_values("T")
            if v.empty:
                continue
            for row, (key, std) in enumerate((("top1", "top1_std"), ("loss", "loss_std"))):
                axes[row][col].errorbar(v["T"], v[key], yerr=v[std].fillna(0), marker="o",
                                        capsize=3, label=variant)
        labels = part[part["variant"] == "labels"]
        for row, key in enumerate(("top1", "loss")):
            ax = axes[row][col]
            if not labels.empty:
                ax.axhline(labels.iloc[0][key], color="grey", linestyle="--",
                           label="labels alone")
            ax.set_xscale("log")
            ax.set_xlabel("temperature T")
            ax.set_ylabel("test top-1 (%)" if key == "top1" else "test loss")
            ax.grid(alpha=0.3)
        axes[0][col].set_title(f"{student} student")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    results = collect(args.study)
    if results.empty:
        raise SystemExit(f"no finished runs under {args.study}")
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "results.csv", index=False)
    table = summarize(results)
    table.to_csv(args.out / "table.csv", index=False)
    ablation = t2_ablation(table)
    ablation.to_csv(args.out / "t2_ablation.csv", index=False)
    text = markdown(table)
    (args.out / "table.md").write_text(text)
    plot(table, args.out / "temperature.png")
    print(text)
    print(ablation.to_string(index=False))


if __name__ == "__main__":
    main()
