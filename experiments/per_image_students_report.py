"""The per-image students of the cifar10-cpu study (issue: the evidence the benchmark owes, e).

Reads ``reports/cifar10-cpu-per-image/students.csv`` (one row per student run, gathered from the
sweep's run folders) and the per-batch students of ``reports/cifar10-cpu/results.csv``, and
writes ``per_da.csv`` and the Markdown tables of the README beside them: per DA the mean S. test
loss and top-1 over the seeds, their SE, the tiers of S. test loss (augkd.metrics.tiers) and the
ANOVA of the DA effect against seed noise, for each mode.

    python experiments/per_image_students_report.py reports/cifar10-cpu-per-image
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from augkd.metrics.tiers import estimate, leader_tiers

PER_BATCH = Path(__file__).resolve().parents[1] / "reports" / "cifar10-cpu" / "results.csv"


def per_da(runs: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, str, float, float]:
    groups = {aug: g["last_test_loss"].tolist() for aug, g in runs.groupby("aug")}
    estimates = {aug: estimate(v) for aug, v in groups.items()}
    tiers = leader_tiers(estimates)
    table = pd.DataFrame({
        "mode": mode,
        "aug": list(tiers.order),
        "s_test_loss": [estimates[a].mean for a in tiers.order],
        "s_test_loss_se": [estimates[a].se for a in tiers.order],
        "s_test_loss_tier": [tiers.tier_of(a) for a in tiers.order],
        "s_test_acc": [runs.loc[runs["aug"] == a, "last_test_acc"].mean() for a in tiers.order],
        "seeds": [len(groups[a]) for a in tiers.order],
    })
    f, p = stats.f_oneway(*groups.values())
    return table, tiers.describe(), float(f), float(p)


def main(folder: str) -> None:
    out = Path(folder)
    image = pd.read_csv(out / "students.csv")
    batch = pd.read_csv(PER_BATCH)
    tables, lines = [], []
    for mode, runs in (("per-image", image), ("per-batch", batch)):
        table, tiers, f, p = per_da(runs, mode)
        tables.append(table)
        lines.append(f"- **{mode}** (teacher {'61.55' if mode == 'per-image' else '60.24'} %): "
                     f"ANOVA of S. test loss over the 9 DAs F = {f:.2f}, p = {p:.3g}; "
                     f"S. test loss {tiers}")
    both = pd.concat(tables)
    both.to_csv(out / "per_da.csv", index=False)
    md = ["| mode | DA | S. test loss ± SE | tier | S. test acc (%) | seeds |", "|---|---|---|---|---|---|"]
    for r in both.itertuples():
        md.append(f"| {r.mode} | {r.aug} | {r.s_test_loss:.4f} ± {r.s_test_loss_se:.4f} | "
                  f"{r.s_test_loss_tier} | {r.s_test_acc:.2f} | {r.seeds} |")
    (out / "per_da.md").write_text("\n".join(md) + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(md)); print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "reports/cifar10-cpu-per-image")
