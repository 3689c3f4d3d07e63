"""AGB's lambda search against the tuners, from a tuning study's folder (tuning_study.py).

    python experiments/tuning_report.py runs/tuning_cpu reports/tuning-cpu
    python experiments/tuning_report.py --from-committed reports/tuning-cpu

Writes ``runs.csv`` (one row per method, seed and arm: search epochs spent, best held-out top-1,
final test top-1 and loss, and the training seconds the run folders record: the tuners' trials
up to the budget, every arm's final run), ``table.csv`` / ``table.md`` (means +- std over
seeds per method and arm), ``curves.csv`` (best held-out top-1 so far against search epochs, per
study), ``vs_agb.csv`` (each arm against AGB, Welch's t-test over the seeds) and
``time_to_accuracy.png`` (held-out and final test top-1 against search compute).
``--from-committed`` rebuilds all but ``runs.csv`` and ``curves.csv`` from those two files.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from scipy import stats  # noqa: E402

ARM_COLOURS = {"tpe": "tab:blue", "random": "tab:orange", "hyperband": "tab:green",
               "agb": "tab:red", "hand-tuned": "0.4"}
#: error bars longer than this (points) are cut at the panel's edge and labelled
CLIP_STD = 6.0


def _read_trials(path: Path) -> list[dict]:
    with path.open() as f:
        return sorted(csv.DictReader(f), key=lambda r: int(r["number"]))


def _train_seconds(run: Path) -> float:
    """Training seconds of a run folder: the sum of its epochs' times (NaN if not recorded)."""
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return float("nan")
    return sum(json.loads(line).get("epoch_time_s", 0.0)
               for line in metrics.read_text().splitlines() if line.strip())


def collect(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) from every finished job under ``root``."""
    spec = yaml.safe_load((root / "spec.yaml").read_text())
    rows, curves = [], []
    for method in spec["methods"]:
        for seed in spec["seeds"]:
            base = root / method / f"s{seed}"
            agb = base / "agb" / "summary.json"
            if agb.is_file():
                s = json.loads(agb.read_text())
                search = list(csv.DictReader((base / "agb" / "agb_search.csv").open()))
                best = max(search, key=lambda r: float(r["holdout_top1"]))
                rows.append({"method": method, "seed": seed, "arm": "agb",
                             "budget": sum(int(r["epochs"]) for r in search),
                             "search_epochs": sum(int(r["epochs"]) for r in search),
                             "holdout_top1": float(best["holdout_top1"]),
                             "choice": f"lambda {s['agb_lambda']:g}",
                             "test_top1": s["last"]["test_top1"],
                             "test_loss": s["last"]["test_loss"],
                             # search and final run together, as the run folder records them
                             "search_seconds": float("nan"),
                             "final_seconds": _train_seconds(base / "agb")})
            manual = base / "manual" / "summary.json"
            if manual.is_file():
                s = json.loads(manual.read_text())
                rows.append({"method": method, "seed": seed, "arm": "hand-tuned", "budget": 0,
                             "search_epochs": 0, "holdout_top1": np.nan,
                             "choice": f"beta {s['w_distill']:g}",
                             "test_top1": s["last"]["test_top1"],
                             "test_loss": s["last"]["test_loss"], "search_seconds": 0.0,
                             "final_seconds": _train_seconds(base / "manual")})
            for tuner in spec["tuners"]:
                finals = base / tuner / "finals.json"
                if not finals.is_file():
                    continue
                spent, best = 0, -np.inf
                seconds_at: dict[int, float] = {}  # training seconds of the trials by epochs spent
                for t in _read_trials(base / tuner / "trials.csv"):
                    if t["state"] not in ("complete", "pruned"):
                        continue
                    spent += int(t["epochs"])
                    seconds_at[spent] = (seconds_at.get(spent - int(t["epochs"]), 0.0)
                                         + float(t.get("seconds") or "nan"))
                    if t["state"] == "complete":
                        best = max(best, float(t["holdout_top1"]))
                    curves.append({"method": method, "seed": seed, "arm": tuner,
                                   "epochs": spent, "best_holdout_top1": best})
                chosen = json.loads(finals.read_text())
                for budget, v in chosen.items():
                    if v is None:
                        continue
                    # a pick shared with a smaller budget reuses that budget's final run
                    final = next(base / tuner / f"final-b{b}" for b, w in chosen.items()
                                 if w and w["trial"] == v["trial"])
                    rows.append({"method": method, "seed": seed, "arm": tuner,
                                 "budget": int(budget), "search_epochs": v["spent"],
                                 "holdout_top1": v["holdout_top1"],
                                 "choice": f"beta {v['w_distill']:.3g}",
                                 "test_top1": v["test_top1"], "test_loss": v["test_loss"],
                                 "search_seconds": seconds_at.get(int(v["spent"]), np.nan),
                                 "final_seconds": _train_seconds(final)})
    return pd.DataFrame(rows), pd.DataFrame(curves)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["method", "arm", "budget"], sort=False)
    timing = {f"{c}": (c, "mean") for c in ("search_seconds", "final_seconds") if c in runs}
    return grouped.agg(
        seeds=("seed", "count"), search_epochs=("search_epochs", "mean"),
        holdout_top1=("holdout_top1", "mean"), holdout_std=("holdout_top1", "std"),
        test_top1=("test_top1", "mean"), test_std=("test_top1", "std"),
        test_loss=("test_loss", "mean"),
        choices=("choice", lambda c: "; ".join(c)), **timing,
    ).reset_index()


def vs_agb(runs: pd.DataFrame) -> pd.DataFrame:
    """Each arm's final test top-1 minus AGB's, per method, with Welch's t-test over the seeds."""
    rows = []
    for (method, arm, budget), part in runs.groupby(["method", "arm", "budget"], sort=False):
        agb = runs[(runs["method"] == method) & (runs["arm"] == "agb")]["test_top1"]
        if arm == "agb" or len(agb) < 2 or len(part) < 2:
            continue
        test = stats.ttest_ind(part["test_top1"], agb, equal_var=False)
        rows.append({"method": method, "arm": arm, "budget": budget,
                     "minus_agb": part["test_top1"].mean() - agb.mean(),
                     "welch_t": float(test.statistic), "welch_p": float(test.pvalue)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| method | arm | budget (epochs) | held-out top-1 (%) | final test top-1 (%) | "
             "test loss | chosen (per seed) |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        held = "-" if pd.isna(r["holdout_top1"]) else \
            f"{r['holdout_top1']:.2f} +- {r['holdout_std']:.2f}"
        lines.append(f"| {r['method']} | {r['arm']} | {r['budget']:g} | {held} | "
                     f"{r['test_top1']:.2f} +- {r['test_std']:.2f} | {r['test_loss']:.3f} | "
                     f"{r['choices']} |")
    return "\n".join(lines) + "\n"


#: the README's columns: (arm, budget, title)
README_COLUMNS = (("hand-tuned", 0, "hand-tuned"), ("agb", 5, "AGB (5 epochs)"),
                  ("tpe", 5, "TPE / random at 1x (5)"), ("tpe", 50, "TPE at 10x (50)"),
                  ("random", 50, "random at 10x"), ("hyperband", 5, "Hyperband at 1x"),
                  ("hyperband", 50, "Hyperband at 10x"))


def readme_table(table: pd.DataFrame, versus: pd.DataFrame) -> str:
    """The README's table: final test top-1, mean +- seed std, Welch p against AGB below."""
    cells = table.set_index(["method", "arm", "budget"])
    p = versus.set_index(["method", "arm", "budget"])["welch_p"]
    lines = ["| method | " + " | ".join(t for _, _, t in README_COLUMNS) + " |",
             "|---|" + "---|" * len(README_COLUMNS)]
    for method in dict.fromkeys(table["method"]):
        row = []
        for arm, budget, _ in README_COLUMNS:
            r = cells.loc[(method, arm, budget)]
            cell = f"{r['test_top1']:.2f} +- {r['test_std']:.2f}"
            if (method, arm, budget) in p.index:
                cell += f" (p {p[(method, arm, budget)]:.2g})"
            row.append(cell)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _cut_error_bars(ax, x, y, e, lowest) -> tuple[float, float]:
    """y limits that hold every mean and every error bar up to CLIP_STD; a longer bar is cut
    at the edge and labelled with its std and its lowest seed."""
    reach = np.minimum(e, CLIP_STD)
    lo, hi = float(np.nanmin(y - reach)) - 1.0, float(np.nanmax(y + reach)) + 1.0
    for xi, _yi, ei, low in zip(x, y, e, lowest, strict=True):
        if ei > CLIP_STD:
            ax.annotate(f"bar ± {ei:.1f}, cut:\none seed {low:.1f} %", (xi, lo),
                        xytext=(-8, 14), textcoords="offset points", ha="right", fontsize=7.5,
                        color="0.25", arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.8})
    return lo, hi


def plot(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> None:
    methods = list(dict.fromkeys(runs["method"]))
    seeds = int(runs.groupby(["method", "arm", "budget"])["seed"].count().min())
    fig, axes = plt.subplots(2, len(methods), figsize=(4.2 * len(methods), 7.0), squeeze=False,
                             layout="constrained")
    for j, method in enumerate(methods):
        top, bottom = axes[0, j], axes[1, j]
        part = curves[curves["method"] == method]
        for arm, group in part.groupby("arm", sort=False):
            grid = np.arange(1, group["epochs"].max() + 1)
            per_seed = [np.interp(grid, g["epochs"], g["best_holdout_top1"], left=np.nan)
                        for _, g in group.groupby("seed")]
            stack = np.vstack(per_seed)
            started = np.isfinite(stack).sum(axis=0)  # seeds whose search has a trial by then
            mean = np.where(started > 0, np.nansum(stack, axis=0) / np.maximum(started, 1),
                            np.nan)
            top.plot(grid, mean, color=ARM_COLOURS.get(arm), drawstyle="steps-post")
        runs_m = runs[runs["method"] == method]
        xs, ys, es, lows = [], [], [], []
        for arm, group in runs_m.groupby("arm", sort=False):
            agg = group.groupby("budget").agg(x=("search_epochs", "mean"),
                                              y=("test_top1", "mean"), e=("test_top1", "std"),
                                              h=("holdout_top1", "mean"),
                                              low=("test_top1", "min"))
            x = agg["x"].clip(lower=0.5)
            bottom.errorbar(x, agg["y"], yerr=agg["e"], marker="o", capsize=3,
                            color=ARM_COLOURS.get(arm),
                            linestyle="-" if len(agg) > 1 else "none")
            xs += list(x)
            ys += list(agg["y"])
            es += list(agg["e"])
            lows += list(agg["low"])
            if arm == "agb":
                top.scatter(agg["x"], agg["h"], color=ARM_COLOURS["agb"], marker="*", s=120,
                            zorder=5)
        bottom.set_ylim(*_cut_error_bars(bottom, np.array(xs), np.array(ys), np.array(es),
                                         np.array(lows)))
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.grid(alpha=0.3)
        top.set_title(method)
        top.set_ylabel("best held-out top-1 so far (%)")
        top.set_xlabel("search compute (epochs)")
        bottom.set_ylabel("final test top-1 (%)")
        bottom.set_xlabel("search epochs up to the chosen trial\n(hand-tuned drawn at 0.5)")
    handles = [Line2D([], [], color=ARM_COLOURS[a], marker="o", label=a)
               for a in ("tpe", "random", "hyperband", "agb", "hand-tuned")]
    handles.append(Line2D([], [], color=ARM_COLOURS["agb"], marker="*", ls="none",
                          markersize=11, label="agb's search (top row)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5,
               frameon=False, title=f"top: mean over {seeds} seeds; bottom: mean ± 1 seed std",
               title_fontsize=8.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_tables(runs: pd.DataFrame) -> dict[str, Any]:
    """``table`` (DataFrame), ``table_md``, ``vs_agb`` (DataFrame), ``readme`` from runs.csv."""
    table, versus = summarize(runs), vs_agb(runs)
    return {"table": table, "table_md": markdown(table), "vs_agb": versus,
            "readme": readme_table(table, versus)}


def write_report(runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> dict[str, Any]:
    """Write the tables and the figure (not runs.csv and curves.csv) into ``out``."""
    tables = build_tables(runs)
    tables["table"].to_csv(out / "table.csv", index=False)
    tables["vs_agb"].to_csv(out / "vs_agb.csv", index=False)
    (out / "table.md").write_text(tables["table_md"])
    plot(runs, curves, out / "time_to_accuracy.png")
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", help="the study's folder")
    parser.add_argument("out", nargs="?", help="the report folder")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild REPORT's tables and figure from its runs.csv and curves.csv")
    args = parser.parse_args()
    if args.from_committed:
        out = args.from_committed
        runs, curves = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "curves.csv")
    else:
        if args.root is None or args.out is None:
            parser.error("give ROOT OUT, or --from-committed REPORT")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        runs, curves = collect(Path(args.root))
        runs.to_csv(out / "runs.csv", index=False)
        curves.to_csv(out / "curves.csv", index=False)
    tables = write_report(runs, curves, out)
    print(tables["readme"])


if __name__ == "__main__":
    main()
