"""The AGB paper's table (method x balancer) from a distillers sweep's results.csv.

    python experiments/distillers_report.py runs/sweeps/distillers_cpu reports/distillers-cpu
    python experiments/distillers_report.py --from-committed reports/distillers-cpu

Writes ``table.csv`` / ``table.md`` (mean +- std over seeds of the last-epoch test top-1 and
test loss, per method and balancer, with AGB's chosen lambdas), ``wins.csv`` (AGB - manual per
method, Welch's t-test over the seeds), ``summary.json`` (counts, and the teacher's run as the
sweep folder records it) and ``methods.png`` (top-1 per method, one bar per balancer, seed
spread as error bars, Welch p above each pair). ``--from-committed`` rebuilds all but
``results.csv`` and the teacher entry from the ``results.csv`` committed in a report folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from augkd.training.config import flatten_blocks  # noqa: E402

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


def plot(table: pd.DataFrame, wins: pd.DataFrame, path: Path) -> None:
    """Bars from 0 (no cut axis), ± 1 seed std, Welch p of AGB - manual above each method."""
    methods = list(dict.fromkeys(table["distill"]))
    seeds = int(table["seeds"].min())
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2, 4.0), layout="constrained")
    width = 0.38
    for i, balancer in enumerate(BALANCERS):
        part = table[table["balancer"] == balancer].set_index("distill").reindex(methods)
        xs = [j + (i - 0.5) * width for j in range(len(methods))]
        ax.bar(xs, part["top1"], width, yerr=part["top1_std"], capsize=3,
               label={"manual": "hand-tuned weights", "agb": "AGB"}[balancer])
    top = float((table["top1"] + table["top1_std"].fillna(0)).max())
    p = wins.set_index("distill")["welch_p"]
    for j, method in enumerate(methods):
        if method in p.index:
            ax.annotate(f"p = {p[method]:.2g}", (j, top + 1.5), ha="center", fontsize=8,
                        color="0.25")
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("student test top-1 (%)")
    ax.set_ylim(0, top + 6)
    ax.set_title(f"mean over {seeds} seeds; error bars ± 1 seed std; p: Welch's t-test, "
                 "AGB against hand-tuned", fontsize=8.5, loc="left")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.06), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def summarize(results: pd.DataFrame, table: pd.DataFrame, wins: pd.DataFrame) -> dict:
    """The counts of summary.json."""
    return {"runs": len(results), "methods": int(table["distill"].nunique()),
            "agb_wins": int(wins["agb_wins"].sum()) if not wins.empty else 0,
            "compared": len(wins)}


def teacher_record(sweep: Path) -> dict | None:
    """The teacher run the sweep's spec names, as its folder records it (None if absent)."""
    spec = yaml.safe_load((sweep / "spec.yaml").read_text())
    pair = spec["pairs"][0]
    run = Path(pair.get("teacher_run") or sweep / "teachers" / pair["teacher"])
    if not (run / "summary.json").is_file():
        return None
    summary = json.loads((run / "summary.json").read_text())
    config = flatten_blocks(yaml.safe_load((run / "config.yaml").read_text()))
    return {"run": str(run), "model": config.get("model"), "epochs": config.get("epochs"),
            "seed": config.get("seed"), "dataset": config.get("dataset"),
            "dataset_options": config.get("dataset_options"),
            "test_top1": summary["last"]["test_top1"], "test_loss": summary["last"]["test_loss"]}


def write_report(results: pd.DataFrame, out: Path, teacher: dict | None = None) -> dict:
    """Write the tables, summary.json and the figure of ``results`` into ``out``."""
    table, wins = build_tables(results)
    table.to_csv(out / "table.csv", index=False)
    wins.to_csv(out / "wins.csv", index=False)
    (out / "table.md").write_text(markdown(table, wins))
    plot(table, wins, out / "methods.png")
    summary = summarize(results, table, wins)
    if teacher is not None:
        summary["teacher"] = teacher
    elif (out / "summary.json").is_file():  # keep a recorded teacher when rebuilding
        old = json.loads((out / "summary.json").read_text())
        if "teacher" in old:
            summary["teacher"] = old["teacher"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {"table": table, "wins": wins, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, nargs="?", help="the sweep folder (holds results.csv)")
    parser.add_argument("out", type=Path, nargs="?", help="the report folder")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild REPORT's tables and figure from its results.csv")
    args = parser.parse_args()
    if args.from_committed:
        out, teacher = args.from_committed, None
        results = pd.read_csv(out / "results.csv")
    else:
        if args.sweep is None or args.out is None:
            parser.error("give SWEEP OUT, or --from-committed REPORT")
        out, teacher = args.out, teacher_record(args.sweep)
        results = pd.read_csv(args.sweep / "results.csv")
        out.mkdir(parents=True, exist_ok=True)
        results.to_csv(out / "results.csv", index=False)
    built = write_report(results, out, teacher)
    print(markdown(built["table"], built["wins"]))


if __name__ == "__main__":
    main()
