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

When the per-batch CSV comes from the same teacher as the per-image runs (``--per-batch`` with
``--per-batch-teacher`` equal to students.csv's ``teacher_test_top1``) the comparison is a clean
one-factor one, and ``modes.md`` and ``modes.json`` add the mode's own effects: the ANOVAs and the
Spearman correlation among the six middle DAs in each mode, the DA x mode interaction on the
students' test loss, and per DA the per-image minus per-batch difference (Welch, Bonferroni over
the DAs whose data the mode changes):

    python experiments/per_image_students_report.py reports/cifar10-cpu-modes \
        --per-batch reports/cifar10-cpu-modes/per_batch.csv --per-batch-teacher 61.55
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
from evidence_reports import MIDDLE_SIX, fmt_p, md, two_way_anova, welch  # noqa: E402

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


def per_batch_t(batch: pd.DataFrame) -> pd.DataFrame:
    """The per-batch results' T. stddev, one row per (aug, seed), as column ``t``."""
    return batch.rename(columns={"t_stddev_per-batch": "t"})[["aug", "seed", "t"]]


def tstddev_report(out: Path, tst: pd.DataFrame, image_students: pd.DataFrame,
                   batch: pd.DataFrame, batch_source: str = PER_BATCH_SOURCE) -> None:
    """``tst``: the per-image T. stddev measurements (tstddev.csv)."""
    counts = tst.groupby("aug").size()
    sides = {"per-image": tstddev_side(tst, image_students),
             "per-batch": tstddev_side(per_batch_t(batch), batch, "t", None)}
    (out / "tstddev.json").write_text(json.dumps(sides, indent=2, default=float) + "\n")
    per_image = (f"{counts.min()}" if counts.min() == counts.max()
                 else f"{counts.min()}-{counts.max()}")
    lines_md = [f"Measurements per DA (per image): {per_image} seeds; per batch: "
          f"{sides['per-batch']['seeds']} seeds ({batch_source}).", "",
          "| mode | DA | T. stddev ± SE | tier | S. test loss (mean over seeds) |",
          "|---|---|---|---|---|"]
    for mode, side in sides.items():
        students = image_students if mode == "per-image" else batch
        loss = students.groupby("aug")["last_test_loss"].mean()
        for a in side["order"]:
            lines_md.append(f"| {mode} | {a} | {side['mean'][a]:.6f} ± {side['se'][a]:.6f} | "
                      f"{side['tier'][a]} | {loss[a]:.4f} |")
    lines_md.append("")
    for mode, side in sides.items():
        c, b, k = side["correlations"], side["seed_bootstrap"], side["paper_agreement"]
        lines_md.append(
            f"- **{mode}**: Pearson(T. stddev, S. test loss) over the {len(side['order'])} DAs "
            f"{c['pearson']['r']:.3f} (p {c['pearson']['p']:.3g}, DA-bootstrap 95 % "
            f"{c['pearson']['ci_low']:.2f} to {c['pearson']['ci_high']:.2f}), Spearman "
            f"{c['spearman']['r']:.3f} (p {c['spearman']['p']:.3g}), Kendall "
            f"{c['kendall']['r']:.3f} (p {c['kendall']['p']:.3g}); seed bootstrap of Pearson "
            f"{b['pearson']['ci_low']:.2f} to {b['pearson']['ci_high']:.2f}; T. stddev order "
            f"against the paper's: Kendall {k['kendall']:.2f} (p {k['kendall_p']:.3g}); "
            f"T. stddev {side['tiers']}")
    (out / "tstddev.md").write_text("\n".join(lines_md) + "\n")
    print("\n".join(lines_md))


def mode_effects(out: Path, tst: pd.DataFrame, image_students: pd.DataFrame,
                 batch: pd.DataFrame) -> str:
    """The same teacher's per-image and per-batch runs side by side: what the mode alone does.

    Writes ``modes.json`` and returns (and writes) ``modes.md``: per mode the one-way ANOVAs of
    T. stddev and of S. test loss among MIDDLE_SIX and their Spearman correlation; the two-way
    ANOVA (DA x mode) of S. test loss over all DAs; per DA the per-image minus per-batch
    difference in S. test loss and top-1 (Welch; Bonferroni over the DAs whose data the mode
    changes, i.e. all but identity, which draws nothing)."""
    sides = {"per-image": (image_students,
                           tst.rename(columns={"t_stddev": "t"})[["aug", "seed", "t"]]),
             "per-batch": (batch, per_batch_t(batch))}
    six = []
    for mode, (students, t) in sides.items():
        row = {"mode": mode}
        for metric, df, col in (("T. stddev", t, "t"), ("S. test loss", students,
                                                        "last_test_loss")):
            part = df[df["aug"].isin(MIDDLE_SIX)]
            f, p = stats.f_oneway(*(g[col].to_numpy() for _, g in part.groupby("aug")))
            row[f"{metric} ANOVA F"], row[f"{metric} ANOVA p"] = float(f), float(p)
        t_mean = t.groupby("aug")["t"].mean().loc[MIDDLE_SIX]
        loss = students.groupby("aug")["last_test_loss"].mean().loc[MIDDLE_SIX]
        rho, p_rho = stats.spearmanr(t_mean, loss)
        row["Spearman(T. stddev, S. test loss)"], row["Spearman p"] = float(rho), float(p_rho)
        six.append(row)
    both = pd.concat([image_students.assign(mode="per-image"), batch.assign(mode="per-batch")]
                     )[["aug", "mode", "seed", "last_test_loss", "last_test_acc"]]
    interaction = {metric: two_way_anova(both, "aug", "mode", col)
                   for metric, col in (("S. test loss", "last_test_loss"),
                                       ("top-1 (%)", "last_test_acc"))}
    changed = [a for a in dict.fromkeys(image_students["aug"]) if a != "identity"]

    def bonf(p: float, aug: str) -> float:
        return min(1.0, p * len(changed)) if aug in changed else float("nan")

    per_aug = []
    for aug in dict.fromkeys(image_students["aug"]):
        a = batch[batch["aug"] == aug].sort_values("seed")
        b = image_students[image_students["aug"] == aug].sort_values("seed")
        loss, acc = welch(a["last_test_loss"], b["last_test_loss"]), \
            welch(a["last_test_acc"], b["last_test_acc"])
        per_aug.append({"DA": aug, "loss, image - batch": loss["diff"], "loss SE": loss["se"],
                        "loss Bonferroni p": bonf(loss["p"], aug),
                        "top-1, image - batch": acc["diff"], "top-1 SE": acc["se"],
                        "top-1 Bonferroni p": bonf(acc["p"], aug)})
    per_aug = pd.DataFrame(per_aug).sort_values("loss, image - batch")
    (out / "modes.json").write_text(json.dumps(
        {"middle_six": six, "da_x_mode": interaction,
         "per_da": per_aug.to_dict(orient="records")}, indent=2, default=float) + "\n")
    lines = [f"Among the six middle DAs ({', '.join(MIDDLE_SIX)}), per mode (one-way ANOVAs over "
             "the seeds; Spearman over the six DA means):", "",
             md(pd.DataFrame(six), {"T. stddev ANOVA F": 2, "S. test loss ANOVA F": 2,
                                    "Spearman(T. stddev, S. test loss)": 3}), ""]
    for metric, res in interaction.items():
        parts = [f"{name} F = {v['F']:.2f} (df {v['df'][0]}, {v['df'][1]}), p {fmt_p(v['p'])}"
                 for name, v in res.items()]
        lines.append(f"- two-way ANOVA of {metric} over the {both['aug'].nunique()} DAs x 2 "
                     f"modes: " + "; ".join(parts))
    lines += ["", "Per DA, per image minus per batch (mean over seeds, Welch SE; p Bonferroni "
              f"over the {len(changed)} DAs whose data the mode changes; identity draws nothing, "
              "so its runs are the same):", "",
              md(per_aug, {"loss, image - batch": 4, "loss SE": 4, "top-1, image - batch": 2,
                           "top-1 SE": 2})]
    text = "\n".join(lines) + "\n"
    (out / "modes.md").write_text(text)
    print(text)
    return text


def main(folder: str, per_batch: Path = PER_BATCH, batch_teacher: str = "60.24",
         batch_source: str = PER_BATCH_SOURCE) -> None:
    """Write the folder's tables; ``per_batch`` is the per-batch results CSV (one row per
    student, with a ``t_stddev_per-batch`` column) whose teacher scored ``batch_teacher`` %."""
    out = Path(folder)
    image = pd.read_csv(out / "students.csv")
    batch = pd.read_csv(per_batch)
    image_teacher = (f"{image['teacher_test_top1'].iloc[0]:.2f}"
                     if "teacher_test_top1" in image else "61.55")
    tables, lines = [], []
    for mode, runs in (("per-image", image), ("per-batch", batch)):
        table, tiers, f, p = per_da(runs, mode)
        tables.append(table)
        teacher = image_teacher if mode == "per-image" else batch_teacher
        lines.append(f"- **{mode}** (teacher {teacher} %): "
                     f"ANOVA of S. test loss over the 9 DAs F = {f:.2f}, p = {p:.3g}; "
                     f"S. test loss {tiers}")
    both = pd.concat(tables)
    both.to_csv(out / "per_da.csv", index=False)
    rows = ["| mode | DA | S. test loss ± SE | tier | S. test acc (%) | seeds |",
          "|---|---|---|---|---|---|"]
    for r in both.itertuples():
        rows.append(f"| {r.mode} | {r.aug} | {r.s_test_loss:.4f} ± {r.s_test_loss_se:.4f} | "
                  f"{r.s_test_loss_tier} | {r.s_test_acc:.2f} | {r.seeds} |")
    (out / "per_da.md").write_text("\n".join(rows) + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(rows))
    print("\n".join(lines))
    if (out / "tstddev.csv").is_file():
        tst = pd.read_csv(out / "tstddev.csv")
        tstddev_report(out, tst, image, batch, batch_source)
        if batch_teacher == image_teacher:
            mode_effects(out, tst, image, batch)


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
