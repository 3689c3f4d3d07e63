"""The AGB paper's table (method x balancer) from a distillers sweep's results.csv.

    python experiments/distillers_report.py runs/sweeps/distillers_cpu reports/distillers-cpu

Writes ``table.csv`` / ``table.md`` (mean +- std over seeds of the last-epoch test top-1 and
test loss, per method and balancer, with AGB's chosen lambdas), ``wins.csv`` (AGB - manual per
method, Welch's t-test over the seeds) and ``methods.png`` (top-1 per method, one bar per
balancer, seed spread as error bars).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

BALANCERS = ("manual", "agb")


def build_tables(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, wins): per (method, balancer) means and stds; per method AGB - manual."""
    order = list(dict.fromkeys(results["distill"]))
    grouped = results.groupby(["distill", "balancer"], sort=False)
    table = grouped.agg(
        top1=("last_test_acc", "mean"), top1_std=("last_test_acc", "std"),
        loss=("last_test_loss", "mean"), loss_std=("last_test_loss", "std"),
        seeds=("seed", "count"), minutes=("time_s", lambda t: t.mean() / 60),
        agb_lambda=("agb_lambda", lambda v: "/".join(f"{x:g}" for x in v if pd.notna(x))),
    ).reset_index()
    wins = []
    for method in order:
        part = results[results["distill"] == method]
        manual = part[part["balancer"] == "manual"]["last_test_acc"]
        agb = part[part["balancer"] == "agb"]["last_test_acc"]
        if manual.empty or agb.empty:
            continue
        test = stats.ttest_ind(agb, manual, equal_var=False) if min(len(agb), len(manual)) > 1 \
            else None
        wins.append({
            "distill": method, "manual_top1": manual.mean(), "agb_top1": agb.mean(),
            "agb_minus_manual": agb.mean() - manual.mean(),
            "seed_std_manual": manual.std(), "seed_std_agb": agb.std(),
            "welch_p": float(test.pvalue) if test is not None else float("nan"),
            "agb_wins": bool(agb.mean() > manual.mean()),
        })
    return table, pd.DataFrame(wins)


def markdown(table: pd.DataFrame, wins: pd.DataFrame) -> str:
    lines = ["| method | manual top-1 (%) | AGB top-1 (%) | manual test loss | AGB test loss | "
             "AGB lambda (per seed) |", "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(table["distill"]):
        rows = {r["balancer"]: r for _, r in table[table["distill"] == method].iterrows()}
        cells = [method]
        for key, std, fmt in (("top1", "top1_std", "{:.2f} +- {:.2f}"),
                              ("loss", "loss_std", "{:.3f} +- {:.3f}")):
            for balancer in BALANCERS:
                r = rows.get(balancer)
                cells.append(fmt.format(r[key], r[std]) if r is not None else "-")
        cells.append(rows["agb"]["agb_lambda"] if "agb" in rows else "-")
        lines.append("| " + " | ".join(cells) + " |")
    n_win = int(wins["agb_wins"].sum()) if not wins.empty else 0
    lines += ["", f"AGB beats the framework's hand-tuned weights on {n_win} of {len(wins)} "
              "methods (mean top-1 over seeds); significant at p < 0.05 (Welch): "
              f"{int((wins['welch_p'] < 0.05).sum()) if not wins.empty else 0}."]
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path) -> None:
    methods = list(dict.fromkeys(table["distill"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2, 3.6))
    width = 0.38
    for i, balancer in enumerate(BALANCERS):
        part = table[table["balancer"] == balancer].set_index("distill").reindex(methods)
        xs = [j + (i - 0.5) * width for j in range(len(methods))]
        ax.bar(xs, part["top1"], width, yerr=part["top1_std"], capsize=3,
               label={"manual": "hand-tuned weights", "agb": "AGB"}[balancer])
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("student test top-1 (%)")
    low = max(0.0, float(table["top1"].min()) - 10)
    ax.set_ylim(low, float((table["top1"] + table["top1_std"].fillna(0)).max()) + 3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="the sweep folder (holds results.csv)")
    parser.add_argument("out", type=Path, help="the report folder")
    args = parser.parse_args()
    results = pd.read_csv(args.sweep / "results.csv")
    args.out.mkdir(parents=True, exist_ok=True)
    table, wins = build_tables(results)
    table.to_csv(args.out / "table.csv", index=False)
    wins.to_csv(args.out / "wins.csv", index=False)
    results.to_csv(args.out / "results.csv", index=False)
    (args.out / "table.md").write_text(markdown(table, wins))
    plot(table, args.out / "methods.png")
    summary = {"runs": len(results), "methods": int(table["distill"].nunique()),
               "agb_wins": int(wins["agb_wins"].sum()) if not wins.empty else 0,
               "compared": len(wins)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(table, wins))


if __name__ == "__main__":
    main()
