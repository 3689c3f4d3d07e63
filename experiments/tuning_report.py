"""AGB's lambda search against the tuners, from a tuning study's folder (tuning_study.py).

    python experiments/tuning_report.py runs/tuning_cpu reports/tuning-cpu

Writes ``runs.csv`` (one row per method, seed and arm: search epochs spent, best held-out top-1,
final test top-1 and loss, training seconds), ``table.csv`` / ``table.md`` (means +- std over
seeds per method and arm), ``curves.csv`` (best held-out top-1 so far against search epochs, per
study) and ``time_to_accuracy.png`` (held-out and final test top-1 against search compute).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402


def _read_trials(path: Path) -> list[dict]:
    with path.open() as f:
        return sorted(csv.DictReader(f), key=lambda r: int(r["number"]))


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
                             "test_loss": s["last"]["test_loss"]})
            manual = base / "manual" / "summary.json"
            if manual.is_file():
                s = json.loads(manual.read_text())
                rows.append({"method": method, "seed": seed, "arm": "hand-tuned", "budget": 0,
                             "search_epochs": 0, "holdout_top1": np.nan,
                             "choice": f"beta {s['w_distill']:g}",
                             "test_top1": s["last"]["test_top1"],
                             "test_loss": s["last"]["test_loss"]})
            for tuner in spec["tuners"]:
                finals = base / tuner / "finals.json"
                if not finals.is_file():
                    continue
                spent, best = 0, -np.inf
                for t in _read_trials(base / tuner / "trials.csv"):
                    if t["state"] not in ("complete", "pruned"):
                        continue
                    spent += int(t["epochs"])
                    if t["state"] == "complete":
                        best = max(best, float(t["holdout_top1"]))
                    curves.append({"method": method, "seed": seed, "arm": tuner,
                                   "epochs": spent, "best_holdout_top1": best})
                for budget, v in json.loads(finals.read_text()).items():
                    if v is None:
                        continue
                    rows.append({"method": method, "seed": seed, "arm": tuner,
                                 "budget": int(budget), "search_epochs": v["spent"],
                                 "holdout_top1": v["holdout_top1"],
                                 "choice": f"beta {v['w_distill']:.3g}",
                                 "test_top1": v["test_top1"], "test_loss": v["test_loss"]})
    return pd.DataFrame(rows), pd.DataFrame(curves)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["method", "arm", "budget"], sort=False)
    return grouped.agg(
        seeds=("seed", "count"), search_epochs=("search_epochs", "mean"),
        holdout_top1=("holdout_top1", "mean"), holdout_std=("holdout_top1", "std"),
        test_top1=("test_top1", "mean"), test_std=("test_top1", "std"),
        test_loss=("test_loss", "mean"),
        choices=("choice", lambda c: "; ".join(c)),
    ).reset_index()


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


def plot(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> None:
    methods = list(dict.fromkeys(runs["method"]))
    fig, axes = plt.subplots(2, len(methods), figsize=(4.2 * len(methods), 6.4), squeeze=False)
    colors = {"tpe": "tab:blue", "random": "tab:orange", "hyperband": "tab:green",
              "agb": "tab:red", "hand-tuned": "0.4"}
    for j, method in enumerate(methods):
        top, bottom = axes[0, j], axes[1, j]
        part = curves[curves["method"] == method]
        for arm, group in part.groupby("arm", sort=False):
            grid = np.arange(1, group["epochs"].max() + 1)
            per_seed = [np.interp(grid, g["epochs"], g["best_holdout_top1"], left=np.nan)
                        for _, g in group.groupby("seed")]
            mean = np.nanmean(np.vstack(per_seed), axis=0)
            top.plot(grid, mean, color=colors.get(arm), label=arm, drawstyle="steps-post")
        runs_m = runs[runs["method"] == method]
        for arm, group in runs_m.groupby("arm", sort=False):
            stats = group.groupby("budget").agg(x=("search_epochs", "mean"),
                                                y=("test_top1", "mean"),
                                                e=("test_top1", "std"),
                                                h=("holdout_top1", "mean"))
            bottom.errorbar(stats["x"].clip(lower=0.5), stats["y"], yerr=stats["e"],
                            marker="o", capsize=3, color=colors.get(arm), label=arm,
                            linestyle="-" if len(stats) > 1 else "none")
            if arm == "agb":
                top.scatter(stats["x"], stats["h"], color=colors["agb"], marker="*", s=120,
                            zorder=5, label="agb (search)")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.grid(alpha=0.3)
        top.set_title(method)
        top.set_ylabel("best held-out top-1 (%)")
        bottom.set_ylabel("final test top-1 (%)")
        bottom.set_xlabel("search compute (epochs; hand-tuned at 0.5)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    axes[1, 0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root")
    parser.add_argument("out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, curves = collect(Path(args.root))
    runs.to_csv(out / "runs.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)
    table = summarize(runs)
    table.to_csv(out / "table.csv", index=False)
    (out / "table.md").write_text(markdown(table))
    plot(runs, curves, out / "time_to_accuracy.png")
    print(markdown(table))


if __name__ == "__main__":
    main()
