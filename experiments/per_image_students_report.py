"""The per-image students of the cifar10-cpu study (issue: the evidence the benchmark owes, e).

Reads ``reports/cifar10-cpu-per-image/students.csv`` (one row per student run, gathered from the
sweep's run folders) and the per-batch students of ``reports/cifar10-cpu/results.csv``, and
writes ``per_da.csv`` and the Markdown tables of the README beside them: per DA the mean S. test
loss and top-1 over the seeds, their SE, the tiers of S. test loss (augkd.metrics.tiers) and the
ANOVA of the DA effect against seed noise, for each mode.

    python experiments/per_image_students_report.py reports/cifar10-cpu-per-image
    # with the per-image T. stddev records of the sweep gathered into tstddev.csv first:
    python experiments/per_image_students_report.py reports/cifar10-cpu-per-image \
        --gather runs/sweeps/cifar10_cpu_per_image

With ``tstddev.csv`` (one row per measurement: aug, seed, T. stddev, its one-run bootstrap SE
over the run's groups, groups, seconds) it also writes ``tstddev.md`` and ``tstddev.json``: per
DA the mean T. stddev and its SE (``augkd.metrics.tiers.estimate``: the seed SE, floored by the
one-run bootstrap SE), its tiers, the correlations of T. stddev with S. test loss across the DAs
(p values and DA-bootstrap intervals) and across seeds (seed bootstrap), and the Kendall and
Spearman agreement of each mode's T. stddev order with the paper's, per image beside per batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch
from scipy import stats

from augkd.metrics import correlations, seed_bootstrap_correlations
from augkd.metrics.tiers import bootstrap_t_stddev_se, estimate, leader_tiers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_cpu_report import order_agreement  # noqa: E402  (beside this file)

PER_BATCH = Path(__file__).resolve().parents[1] / "reports" / "cifar10-cpu" / "results.csv"
PER_BATCH_SOURCE = "reports/cifar10-cpu, the 60.24 % teacher"


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


def gather(sweep: Path, out: Path) -> None:
    """The sweep's per-image T. stddev records (tstddev/*/*.json) as out/tstddev.csv."""
    rows = []
    for path in sorted(sweep.glob("tstddev/*/*.json")):
        rec = json.loads(path.read_text())
        means = torch.tensor(rec["group_means"], dtype=torch.float64)
        rows.append({"aug": rec["aug"], "mode": rec["mode"], "seed": rec["seed"],
                     "t_stddev": rec["t_stddev"],
                     "t_stddev_se": bootstrap_t_stddev_se(means, seed=rec["seed"]),
                     "n_groups": rec["n_groups"], "seconds": rec["seconds"]})
    pd.DataFrame(rows).to_csv(out / "tstddev.csv", index=False)


def tstddev_side(tst: pd.DataFrame, students: pd.DataFrame, tcol: str = "t_stddev",
                 se_col: str | None = "t_stddev_se") -> dict:
    """T. stddev per DA (mean, SE, tier), its correlation with S. test loss, and its order
    against the paper's, for one mode: ``tst`` one row per (aug, seed) measurement,
    ``students`` one row per student run (aug, seed, last_test_loss)."""
    est = {a: estimate(g[tcol].tolist(), g[se_col].tolist() if se_col in g else None)
           for a, g in tst.groupby("aug")}
    tiers = leader_tiers(est)
    loss = students.groupby("aug")["last_test_loss"].mean()
    order = list(tiers.order)
    corr = correlations(pd.Series({a: est[a].mean for a in order}).to_numpy(),
                        loss.loc[order].to_numpy())
    seeds = sorted(set(tst["seed"]) & set(students["seed"]))
    x = tst[tst["seed"].isin(seeds)].pivot(index="aug", columns="seed", values=tcol).loc[order]
    y = students[students["seed"].isin(seeds)].pivot(
        index="aug", columns="seed", values="last_test_loss").loc[order]
    return {"order": order, "mean": {a: est[a].mean for a in order},
            "se": {a: est[a].se for a in order}, "tier": {a: tiers.tier_of(a) for a in order},
            "tiers": tiers.describe(), "correlations": corr,
            "seed_bootstrap": seed_bootstrap_correlations(x.to_numpy(), y.to_numpy()),
            "paper_agreement": order_agreement(order), "seeds": len(seeds)}


def tstddev_report(out: Path, image_students: pd.DataFrame, batch: pd.DataFrame,
                   batch_source: str = PER_BATCH_SOURCE) -> None:
    tst = pd.read_csv(out / "tstddev.csv")
    counts = tst.groupby("aug").size()
    sides = {"per-image": tstddev_side(tst, image_students),
             "per-batch": tstddev_side(batch.rename(columns={"t_stddev_per-batch": "t"})
                                       [["aug", "seed", "t"]], batch, "t", None)}
    (out / "tstddev.json").write_text(json.dumps(sides, indent=2, default=float) + "\n")
    md = [f"Measurements per DA (per image): {counts.min()}-{counts.max()} seeds; per batch: "
          f"{sides['per-batch']['seeds']} seeds ({batch_source}).", "",
          "| mode | DA | T. stddev ± SE | tier | S. test loss (mean over seeds) |",
          "|---|---|---|---|---|"]
    for mode, side in sides.items():
        students = image_students if mode == "per-image" else batch
        loss = students.groupby("aug")["last_test_loss"].mean()
        for a in side["order"]:
            md.append(f"| {mode} | {a} | {side['mean'][a]:.6f} ± {side['se'][a]:.6f} | "
                      f"{side['tier'][a]} | {loss[a]:.4f} |")
    md.append("")
    for mode, side in sides.items():
        c, b, k = side["correlations"], side["seed_bootstrap"], side["paper_agreement"]
        md.append(
            f"- **{mode}**: Pearson(T. stddev, S. test loss) over the {len(side['order'])} DAs "
            f"{c['pearson']['r']:.3f} (p {c['pearson']['p']:.3g}, DA-bootstrap 95 % "
            f"{c['pearson']['ci_low']:.2f} to {c['pearson']['ci_high']:.2f}), Spearman "
            f"{c['spearman']['r']:.3f} (p {c['spearman']['p']:.3g}), Kendall "
            f"{c['kendall']['r']:.3f} (p {c['kendall']['p']:.3g}); seed bootstrap of Pearson "
            f"{b['pearson']['ci_low']:.2f} to {b['pearson']['ci_high']:.2f}; T. stddev order "
            f"against the paper's: Kendall {k['kendall']:.2f} (p {k['kendall_p']:.3g}); "
            f"T. stddev {side['tiers']}")
    (out / "tstddev.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main(folder: str, per_batch: Path = PER_BATCH, batch_teacher: str = "60.24",
         batch_source: str = PER_BATCH_SOURCE) -> None:
    """Write the folder's tables; ``per_batch`` is the per-batch results CSV (one row per
    student, with a ``t_stddev_per-batch`` column) whose teacher scored ``batch_teacher`` %."""
    out = Path(folder)
    image = pd.read_csv(out / "students.csv")
    batch = pd.read_csv(per_batch)
    tables, lines = [], []
    for mode, runs in (("per-image", image), ("per-batch", batch)):
        table, tiers, f, p = per_da(runs, mode)
        tables.append(table)
        lines.append(f"- **{mode}** (teacher {'61.55' if mode == 'per-image' else batch_teacher} %): "
                     f"ANOVA of S. test loss over the 9 DAs F = {f:.2f}, p = {p:.3g}; "
                     f"S. test loss {tiers}")
    both = pd.concat(tables)
    both.to_csv(out / "per_da.csv", index=False)
    md = ["| mode | DA | S. test loss ± SE | tier | S. test acc (%) | seeds |",
          "|---|---|---|---|---|---|"]
    for r in both.itertuples():
        md.append(f"| {r.mode} | {r.aug} | {r.s_test_loss:.4f} ± {r.s_test_loss_se:.4f} | "
                  f"{r.s_test_loss_tier} | {r.s_test_acc:.2f} | {r.seeds} |")
    (out / "per_da.md").write_text("\n".join(md) + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(md))
    print("\n".join(lines))
    if (out / "tstddev.csv").is_file():
        tstddev_report(out, image, batch, batch_source)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="reports/cifar10-cpu-per-image")
    parser.add_argument("--gather", type=Path, metavar="SWEEP",
                        help="first gather the sweep's per-image T. stddev into tstddev.csv")
    parser.add_argument("--per-batch", type=Path, default=PER_BATCH, metavar="CSV",
                        help="the per-batch results to compare with (default: %(default)s)")
    parser.add_argument("--per-batch-teacher", default="60.24", metavar="TOP1",
                        help="that CSV's teacher's test top-1 in %%, for the tables' labels")
    args = parser.parse_args()
    if args.gather:
        gather(args.gather, Path(args.folder))
    source = (PER_BATCH_SOURCE if args.per_batch == PER_BATCH
              else f"{args.per_batch.parent.name}/{args.per_batch.name}, the "
                   f"{args.per_batch_teacher} % teacher")
    main(args.folder, args.per_batch, args.per_batch_teacher, source)


if __name__ == "__main__":
    cli()
