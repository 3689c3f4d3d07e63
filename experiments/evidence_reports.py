"""Reports of the evidence issue's CPU-scale studies a-d, from their sweeps' results.csv.

    python -m augkd.sweep experiments/kd_cmp_vs_crd_cpu.yaml --collect
    python experiments/evidence_reports.py kd-vs-crd runs/sweeps/kd_cmp_vs_crd_cpu \\
        reports/kd-vs-crd-cpu
    python experiments/evidence_reports.py pick-any runs/sweeps/pick_any_cpu reports/pick-any-cpu
    python experiments/evidence_reports.py long-epochs runs/sweeps/long_epochs_cpu \\
        reports/long-epochs-cpu
    python experiments/evidence_reports.py second-pair runs/sweeps/second_pair_cpu \\
        reports/second-pair-cpu --reference reports/cifar10-cpu/results.csv   # the first pair
    # the same tables again from what a report folder committed (results.csv, spec.yaml,
    # teacher.json):
    python experiments/evidence_reports.py kd-vs-crd --from-committed reports/kd-vs-crd-cpu

Each report folder gets ``results.csv`` (one row per student, copied from the sweep),
``spec.yaml``, ``teacher.json`` (the teacher run's summary), the tables as CSV and Markdown
(``tables.md``, which the hand-written README quotes) and a figure. Every figure is a last-epoch
figure; ``+-`` is the standard deviation over seeds unless a column says SE (standard error of
the mean over seeds). Tests: Welch's t-test for two arms (Bonferroni over the comparisons a
table makes, stated beside it), a balanced two-way ANOVA for a factor x factor interaction.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

from augkd.metrics import correlations  # noqa: E402
from augkd.metrics.tiers import estimate, leader_tiers  # noqa: E402
from augkd.training.config import flatten_blocks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_cpu_report import correlation_tables, order_agreement  # noqa: E402  (beside this file)

LOSS, ACC = "last_test_loss", "last_test_acc"


# --------------------------------------------------------------------------------------------
# statistics: pure functions of per-run tables


def welch(a: pd.Series, b: pd.Series) -> dict:
    """b - a with Welch's t-test and its 95 % interval (Welch-Satterthwaite df)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 1.0
    diff = float(b.mean() - a.mean())
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue) if se > 0 else float("nan")
    half = float(stats.t.ppf(0.975, df) * se)
    return {"diff": diff, "se": se, "ci_low": diff - half, "ci_high": diff + half, "p": p,
            "n_a": len(a), "n_b": len(b)}


def two_way_anova(df: pd.DataFrame, a: str, b: str, y: str) -> dict:
    """Balanced two-way ANOVA with interaction: F and p for ``a``, ``b`` and ``a x b``.

    Raises ValueError when the cells do not all hold the same number (>= 2) of runs."""
    cells = df.groupby([a, b])[y]
    n = cells.size()
    if n.nunique() != 1 or n.iloc[0] < 2:
        raise ValueError(f"two_way_anova needs the same >= 2 runs per ({a}, {b}) cell; "
                         f"got {sorted(set(n))}")
    r, la, lb = int(n.iloc[0]), df[a].nunique(), df[b].nunique()
    grand = df[y].mean()
    ma, mb, mc = df.groupby(a)[y].mean(), df.groupby(b)[y].mean(), cells.mean()
    ss_a = lb * r * ((ma - grand) ** 2).sum()
    ss_b = la * r * ((mb - grand) ** 2).sum()
    inter = mc - ma.reindex(mc.index.get_level_values(0)).to_numpy() \
        - mb.reindex(mc.index.get_level_values(1)).to_numpy() + grand
    ss_ab = r * (inter ** 2).sum()
    ss_e = ((df[y] - df.set_index([a, b]).index.map(mc).to_numpy()) ** 2).sum()
    df_a, df_b, df_ab, df_e = la - 1, lb - 1, (la - 1) * (lb - 1), la * lb * (r - 1)
    ms_e = ss_e / df_e
    out = {}
    for name, ss, d in ((a, ss_a, df_a), (b, ss_b, df_b), (f"{a} x {b}", ss_ab, df_ab)):
        f = (ss / d) / ms_e
        out[name] = {"F": float(f), "df": (d, df_e), "p": float(stats.f.sf(f, d, df_e))}
    return out


def arm_table(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, seed std and SE of test top-1 and loss per arm, in first-seen order."""
    g = df.groupby(keys, sort=False)
    t = g.agg(top1=(ACC, "mean"), top1_std=(ACC, "std"), loss=(LOSS, "mean"),
              loss_std=(LOSS, "std"), seeds=("seed", "count")).reset_index()
    t["top1_se"] = t["top1_std"] / np.sqrt(t["seeds"])
    t["loss_se"] = t["loss_std"] / np.sqrt(t["seeds"])
    return t


def fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def md(df: pd.DataFrame, digits: dict[str, int]) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c in digits and isinstance(v, (int, float, np.floating)) and math.isfinite(v):
                cells.append(f"{v:.{digits[c]}f}")
            elif c.endswith("p") and isinstance(v, float):
                cells.append(fmt_p(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130, bbox_inches="tight")


# --------------------------------------------------------------------------------------------
# study c: KD + CutMixPick against CRD


def kd_vs_crd(results: pd.DataFrame, out: Path) -> str:
    arms = arm_table(results, ["distill", "aug"])
    arms.to_csv(out / "arms.csv", index=False)

    def runs(method: str, aug: str) -> pd.Series:
        sel = results[(results["distill"] == method) & (results["aug"] == aug)]
        return sel

    comparisons = [
        ("KD + cutmixpick-t vs CRD + crop+flip (the paper's claim)",
         ("crd", "crop+flip"), ("kd", "cutmixpick-t")),
        ("KD: cutmixpick-t vs crop+flip", ("kd", "crop+flip"), ("kd", "cutmixpick-t")),
        ("CRD: cutmixpick-t vs crop+flip", ("crd", "crop+flip"), ("crd", "cutmixpick-t")),
        ("crop+flip: CRD vs KD", ("kd", "crop+flip"), ("crd", "crop+flip")),
        ("KD + cutmixpick-t vs CRD + cutmixpick-t", ("crd", "cutmixpick-t"),
         ("kd", "cutmixpick-t")),
    ]
    tests = welch_table([(label, runs(*a), runs(*b)) for label, a, b in comparisons])
    tests.to_csv(out / "tests.csv", index=False)
    anova = {m: two_way_anova(results, "distill", "aug", col) for m, col in
             (("top1", ACC), ("loss", LOSS))}
    (out / "anova.json").write_text(json.dumps(anova, indent=2) + "\n")

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    augs = list(dict.fromkeys(results["aug"]))
    for i, method in enumerate(dict.fromkeys(results["distill"])):
        part = arms[arms["distill"] == method].set_index("aug").loc[augs]
        x = np.arange(len(augs)) + (i - 0.5) * 0.35
        ax.bar(x, part["top1"], 0.35, yerr=part["top1_std"], capsize=4, label=method.upper())
        for xi, aug in zip(x, augs, strict=True):
            ys = runs(method, aug)[ACC]
            ax.plot([xi] * len(ys), ys, "k.", ms=3)
    ax.set_xticks(np.arange(len(augs)), augs)
    lo = results[ACC].min()
    ax.set_ylim(lo - 2, results[ACC].max() + 1.5)
    ax.set_ylabel("student test top-1 (%)")
    ax.legend(loc="lower right")
    ax.set_title("bars: mean over seeds; error bars: seed std; dots: seeds", fontsize=8)
    save(fig, out / "kd_vs_crd.png")

    digits = {"top1": 2, "top1_std": 2, "top1_se": 2, "loss": 4, "loss_std": 4, "loss_se": 4,
              "B - A": 4, "95 % CI low": 4, "95 % CI high": 4}
    lines = ["## Arms (mean, seed std and SE over seeds)", "", md(arms, digits), "",
             f"## Comparisons (Welch; Bonferroni over the {len(comparisons)} comparisons "
             "per metric)", "", md(tests, digits), "", "## Two-way ANOVA (method x DA)", ""]
    for metric, res in anova.items():
        lines.append(f"- {metric}: " + "; ".join(
            f"{k} F = {v['F']:.2f} (df {v['df'][0]}, {v['df'][1]}), p = {fmt_p(v['p'])}"
            for k, v in res.items()))
    if (out / "ce_only.csv").is_file():
        lines += ["", *ce_control(pd.read_csv(out / "ce_only.csv"), runs, digits)]
    return "\n".join(lines) + "\n"


def ce_control(ce: pd.DataFrame, runs, digits: dict[str, int]) -> list[str]:
    """Study c's control: students trained on cross-entropy alone (KD weight 0, crop+flip, the
    same recipe), against CRD and KD with crop+flip (Welch; Bonferroni over the 2)."""
    arm = arm_table(ce.assign(distill="none (CE only)"), ["distill", "aug"])
    lines = ["## Control: cross-entropy only (KD weight 0, crop+flip)", "", md(arm, digits)]
    if len(ce) < 2:
        return lines + ["", "One seed: no test."]
    tests = welch_table([("CRD + crop+flip vs CE only", ce, runs("crd", "crop+flip")),
                         ("KD + crop+flip vs CE only", ce, runs("kd", "crop+flip"))])
    return lines + ["", "Welch; Bonferroni over these 2 comparisons per metric:", "",
                    md(tests, digits)]


def welch_table(comparisons: list[tuple[str, pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """B - A in top-1 and test loss for each (label, runs A, runs B): Welch's test and its 95 %
    interval, the p Bonferroni-corrected over the comparisons (per metric)."""
    rows = []
    for label, a, b in comparisons:
        for metric, col in (("top-1 (%)", ACC), ("test loss", LOSS)):
            w = welch(a[col], b[col])
            rows.append({"comparison (B - A)": label, "metric": metric, "B - A": w["diff"],
                         "95 % CI low": w["ci_low"], "95 % CI high": w["ci_high"],
                         "Welch p": w["p"],
                         "Bonferroni p": min(1.0, w["p"] * len(comparisons))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# study d: pick(DA) against the plain DA


def _pick_pairs(augs: list[str]) -> list[tuple[str, str]]:
    plain = [a for a in augs if not a.startswith("pick(")]
    pairs = []
    for a in plain:
        picked = [p for p in augs if p.startswith(f"pick({a},")]
        if picked:
            pairs.append((a, picked[0]))
    return pairs


def short(aug: str) -> str:
    """A label that fits a table cell: kornia's keyword arguments dropped."""
    if "kornia:" in aug:
        head, _, rest = aug.partition("kornia:")
        name = rest.split("(", 1)[0]
        tail = ", by=" + aug.rsplit("by=", 1)[1] if head.startswith("pick(") else ""
        return f"{head}kornia:{name}{tail}" if not tail else f"pick(kornia:{name}{tail}"
    return aug


def pick_any(results: pd.DataFrame, out: Path) -> str:
    """pick(DA) against DA, for every DA of the sweep that has both."""
    tcol = next(c for c in results.columns if c.startswith("t_stddev_"))
    augs = list(dict.fromkeys(results["aug"]))
    pairs = _pick_pairs(augs)
    per_da = []
    for aug in augs:
        part = results[results["aug"] == aug]
        per_da.append({"DA": short(aug), "T. stddev": part[tcol].mean(),
                       "T. stddev SE": part[tcol].std(ddof=1) / math.sqrt(len(part)),
                       "S. test loss": part[LOSS].mean(),
                       "S. test loss SE": part[LOSS].std(ddof=1) / math.sqrt(len(part)),
                       "top-1 (%)": part[ACC].mean(),
                       "top-1 SE": part[ACC].std(ddof=1) / math.sqrt(len(part)),
                       "seeds": len(part)})
    per_da = pd.DataFrame(per_da)
    per_da.to_csv(out / "per_da.csv", index=False)
    rows = []
    k = len(pairs)
    for plain, picked in pairs:
        a, b = results[results["aug"] == plain], results[results["aug"] == picked]
        for metric, col in (("T. stddev", tcol), ("S. test loss", LOSS), ("top-1 (%)", ACC)):
            w = welch(a[col], b[col])
            rows.append({"DA": short(plain), "metric": metric, "pick - plain": w["diff"],
                         "95 % CI low": w["ci_low"], "95 % CI high": w["ci_high"],
                         "Welch p": w["p"], "Bonferroni p": min(1.0, w["p"] * k)})
    tests = pd.DataFrame(rows)
    tests.to_csv(out / "tests.csv", index=False)
    means = results.groupby("aug", sort=False)[[tcol, LOSS]].mean()
    corr = correlations(means[tcol].to_numpy(), means[LOSS].to_numpy())
    (out / "correlations.json").write_text(json.dumps(corr, indent=2, default=float) + "\n")
    tiers = {}
    for metric, col in (("T. stddev", tcol), ("S. test loss", LOSS)):
        est = {short(a): estimate(results.loc[results["aug"] == a, col].tolist()) for a in augs}
        tiers[metric] = leader_tiers(est).describe()

    fig = Figure(figsize=(10, 3.8))
    for i, (metric, col) in enumerate((("T. stddev", tcol), ("S. test loss", LOSS),
                                       ("student test top-1 (%)", ACC))):
        ax = fig.add_subplot(1, 3, i + 1)
        for j, (plain, picked) in enumerate(pairs):
            for dx, aug, colour in ((-0.15, plain, "C0"), (0.15, picked, "C3")):
                v = results.loc[results["aug"] == aug, col]
                ax.errorbar(j + dx, v.mean(), yerr=v.std(ddof=1) / math.sqrt(len(v)), fmt="o",
                            color=colour, capsize=3,
                            label=("plain" if dx < 0 else "pick(by=teacher)") if j == 0 else None)
                ax.plot([j + dx] * len(v), v, ".", color=colour, alpha=0.35, ms=3)
        ax.set_xticks(range(len(pairs)), [short(p)[:22] for p, _ in pairs], fontsize=7,
                      rotation=25, ha="right")
        ax.set_title(metric, fontsize=9)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle("markers: mean over seeds; error bars: SE over seeds; dots: seeds", fontsize=8)
    save(fig, out / "pick_any.png")

    digits = {"T. stddev": 5, "T. stddev SE": 5, "S. test loss": 4, "S. test loss SE": 4,
              "top-1 (%)": 2, "top-1 SE": 2}
    tdigits = {"pick - plain": 5, "95 % CI low": 5, "95 % CI high": 5}
    lines = ["## Per DA (mean and SE over seeds)", "", md(per_da, digits), "",
             f"## pick - plain (Welch; Bonferroni over the {k} DAs)", "",
             md(tests, tdigits), "",
             "## Across the DAs", "",
             f"- Pearson(T. stddev, S. test loss) over the {len(augs)} DAs: "
             f"{corr['pearson']['r']:.3f} (p {fmt_p(corr['pearson']['p'])}, DA-bootstrap 95 % "
             f"interval {corr['pearson']['ci_low']:.2f} to {corr['pearson']['ci_high']:.2f}); "
             f"Spearman {corr['spearman']['r']:.3f} (p {fmt_p(corr['spearman']['p'])}); "
             f"only {len(augs)} DAs, so a weak test"]
    for metric, text in tiers.items():
        lines.append(f"- tiers by {metric}: {text}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# study b: a second pair, with a stronger teacher

#: The six DAs whose T. stddev the first pair (reports/cifar10-cpu, per batch) could not tell
#: apart (ANOVA p 0.23): does a stronger teacher separate them?
MIDDLE_SIX = ["crop+flip", "mixup", "flip", "cutout", "cutmix", "identity"]


def _pair_side(results: pd.DataFrame, tcol: str) -> dict:
    """One pair's per-DA table (T. stddev and S. test loss with SE and tiers, top-1), its
    correlations (across DAs and seeds), ANOVAs over the nine DAs and over MIDDLE_SIX, and its
    orders against the paper's."""
    augs = list(dict.fromkeys(results["aug"]))
    est = {metric: {a: estimate(results.loc[results["aug"] == a, col].tolist()) for a in augs}
           for metric, col in (("T. stddev", tcol), ("S. test loss", LOSS), ("top-1 (%)", ACC))}
    tiers = {metric: leader_tiers(est[metric]) for metric in ("T. stddev", "S. test loss")}
    order = list(tiers["T. stddev"].order)
    table = pd.DataFrame([
        {"DA": a, "T. stddev": est["T. stddev"][a].mean, "T. stddev SE": est["T. stddev"][a].se,
         "T. tier": tiers["T. stddev"].tier_of(a), "S. test loss": est["S. test loss"][a].mean,
         "S. test loss SE": est["S. test loss"][a].se,
         "S. tier": tiers["S. test loss"].tier_of(a), "top-1 (%)": est["top-1 (%)"][a].mean,
         "top-1 SE": est["top-1 (%)"][a].se, "seeds": est["T. stddev"][a].n} for a in order])
    corr = correlation_tables(results, tcol)
    anova = {}
    for name, subset in (("all nine", order), ("middle six", MIDDLE_SIX)):
        part = results[results["aug"].isin(subset)]
        for metric, col in (("T. stddev", tcol), ("S. test loss", LOSS)):
            f, p = stats.f_oneway(*(g[col].to_numpy() for _, g in part.groupby("aug")))
            anova[f"{metric}, {name}"] = {"F": float(f), "p": float(p)}
    six = table.set_index("DA").loc[MIDDLE_SIX]
    rho, p_rho = stats.spearmanr(six["T. stddev"], six["S. test loss"])
    return {"table": table, "tiers": {k: v.describe() for k, v in tiers.items()},
            "corr": corr["across_das"], "seeds": corr["across_seeds"], "anova": anova,
            "six_spearman": {"r": float(rho), "p": float(p_rho)},
            "paper_t": order_agreement(order),
            "paper_loss": order_agreement(list(table.sort_values("S. test loss")["DA"]))}


def second_pair(results: pd.DataFrame, out: Path) -> str:
    """Study b: the per-DA table, correlations, ANOVAs and orders of this pair, beside the first
    pair's (``reference.csv``: reports/cifar10-cpu's per-batch students, same data and mode)."""
    tcol = next(c for c in results.columns if c.startswith("t_stddev_"))
    def name(df: pd.DataFrame, which: str) -> str:
        return f"{which}: {df['teacher'].iloc[0]} -> {df['student'].iloc[0]}"

    here = _pair_side(results, tcol)
    sides = {name(results, "this pair"): here}
    if (out / "reference.csv").is_file():
        reference = pd.read_csv(out / "reference.csv")
        sides[name(reference, "first pair")] = _pair_side(reference, tcol)
    here["table"].to_csv(out / "per_da.csv", index=False)
    summary = []
    for pair, side in sides.items():
        c, b = side["corr"], side["seeds"]
        summary.append({
            "pair": pair,
            "Pearson (p)": f"{c['pearson']['r']:.3f} ({fmt_p(c['pearson']['p'])})",
            "Pearson 95 % CI, DAs / seeds resampled":
                f"{c['pearson']['ci_low']:.2f} to {c['pearson']['ci_high']:.2f} / "
                f"{b['pearson']['ci_low']:.2f} to {b['pearson']['ci_high']:.2f}",
            "Spearman (p)": f"{c['spearman']['r']:.3f} ({fmt_p(c['spearman']['p'])})",
            "Kendall (p)": f"{c['kendall']['r']:.3f} ({fmt_p(c['kendall']['p'])})",
            "T. order vs paper, Kendall (p)":
                f"{side['paper_t']['kendall']:.2f} ({fmt_p(side['paper_t']['kendall_p'])})",
            "loss order vs paper, Kendall (p)":
                f"{side['paper_loss']['kendall']:.2f} ({fmt_p(side['paper_loss']['kendall_p'])})"})
    anova = pd.DataFrame([{"pair": pair, "ANOVA": key, "F": v["F"], "p": v["p"]}
                          for pair, side in sides.items() for key, v in side["anova"].items()])
    anova.to_csv(out / "anova.csv", index=False)
    (out / "correlations.json").write_text(json.dumps(
        {pair: {"across_das": side["corr"], "across_seeds": side["seeds"],
                "middle_six_spearman": side["six_spearman"], "paper_t": side["paper_t"],
                "paper_loss": side["paper_loss"]} for pair, side in sides.items()},
        indent=2, default=float) + "\n")

    fig = Figure(figsize=(5.2, 4))
    ax = fig.add_subplot(1, 1, 1)
    t = here["table"]
    ax.errorbar(t["T. stddev"], t["S. test loss"], xerr=t["T. stddev SE"],
                yerr=t["S. test loss SE"], fmt="o", capsize=3)
    for _, r in t.iterrows():
        ax.annotate(r["DA"], (r["T. stddev"], r["S. test loss"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("T. stddev (mean over seeds)")
    ax.set_ylabel("S. test loss (mean over seeds)")
    ax.set_title("error bars: SE over seeds", fontsize=8)
    save(fig, out / "scatter.png")

    digits = {"T. stddev": 6, "T. stddev SE": 6, "S. test loss": 4, "S. test loss SE": 4,
              "top-1 (%)": 2, "top-1 SE": 2}
    lines = ["## Per DA, by T. stddev (mean and SE over seeds; tiers: augkd.metrics.tiers)", "",
             md(t, digits), ""]
    for metric, text in here["tiers"].items():
        lines.append(f"- tiers by {metric}: {text}")
    lines += ["", "## Correlation of T. stddev with S. test loss across the nine DAs", "",
              md(pd.DataFrame(summary), {}), "",
              "## ANOVA of the DA effect against seed noise (one-way, per metric)", "",
              md(anova, {"F": 2}), ""]
    for pair, side in sides.items():
        six = side["six_spearman"]
        lines.append(f"- {pair}: Spearman(T. stddev, S. test loss) among the middle six "
                     f"({', '.join(MIDDLE_SIX)}): {six['r']:.3f} (p {fmt_p(six['p'])})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# study a: long-epoch ablation


def long_epochs(results: pd.DataFrame, out: Path) -> str:
    tcol = next((c for c in results.columns if c.startswith("t_stddev_")), None)
    augs = list(dict.fromkeys(results["aug"]))
    cells = arm_table(results, ["aug", "epochs"]).sort_values(["aug", "epochs"])
    cells.to_csv(out / "cells.csv", index=False)
    e_min, e_max = results["epochs"].min(), results["epochs"].max()
    gains = []
    for aug in augs:
        part = results[results["aug"] == aug]
        short_run, long_run = part[part["epochs"] == e_min], part[part["epochs"] == e_max]
        gl, ga = welch(short_run[LOSS], long_run[LOSS]), welch(short_run[ACC], long_run[ACC])
        row = {"DA": aug, f"loss gain {e_min}->{e_max}": -gl["diff"], "loss gain SE": gl["se"],
               f"top-1 gain {e_min}->{e_max}": ga["diff"], "top-1 gain SE": ga["se"],
               "top-1 gain p": ga["p"]}
        if tcol is not None and part[tcol].notna().any():
            row["T. stddev"] = part.drop_duplicates("seed")[tcol].mean()
        gains.append(row)
    gains = pd.DataFrame(gains)
    gains.to_csv(out / "gains.csv", index=False)
    # each DA against the first (the no-DA baseline) at every length: does its edge grow?
    base = augs[0]
    edge = []
    for aug in augs[1:]:
        for e in sorted(results["epochs"].unique()):
            a = results[(results["aug"] == base) & (results["epochs"] == e)]
            b = results[(results["aug"] == aug) & (results["epochs"] == e)]
            wl, wa = welch(a[LOSS], b[LOSS]), welch(a[ACC], b[ACC])
            edge.append({"DA": aug, "epochs": int(e), f"loss - {base}'s": wl["diff"],
                         "loss SE": wl["se"], "loss p": wl["p"], f"top-1 - {base}'s": wa["diff"],
                         "top-1 SE": wa["se"], "top-1 p": wa["p"]})
    edge = pd.DataFrame(edge)
    edge.to_csv(out / "edge.csv", index=False)
    anova = {m: two_way_anova(results, "aug", "epochs", col) for m, col in
             (("top1", ACC), ("loss", LOSS))}
    (out / "anova.json").write_text(json.dumps(anova, indent=2) + "\n")
    order_text = ""
    if "T. stddev" in gains:
        rho, p = stats.spearmanr(gains["T. stddev"], gains[f"top-1 gain {e_min}->{e_max}"])
        order_text = (f"- Spearman(T. stddev, top-1 gain {e_min}->{e_max}) over the {len(augs)} "
                      f"DAs: {rho:.2f} (p {fmt_p(float(p))}; with {len(augs)} DAs only a "
                      "perfect order can be significant)")

    fig = Figure(figsize=(8.6, 3.4))
    for i, (label, col) in enumerate((("student test loss", LOSS),
                                      ("student test top-1 (%)", ACC))):
        ax = fig.add_subplot(1, 2, i + 1)
        for aug in augs:
            c = cells[cells["aug"] == aug]
            key = "loss" if col == LOSS else "top1"
            ax.errorbar(c["epochs"], c[key], yerr=c[f"{key}_std"], marker="o", capsize=3,
                        label=aug)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(results["epochs"].unique()),
                      [str(e) for e in sorted(results["epochs"].unique())])
        ax.set_xlabel("student epochs")
        ax.set_title(label, fontsize=9)
        if i == 1:
            ax.legend(fontsize=7)
    fig.suptitle("mean over seeds; error bars: seed std", fontsize=8)
    save(fig, out / "long_epochs.png")

    digits = {"top1": 2, "top1_std": 2, "top1_se": 2, "loss": 4, "loss_std": 4, "loss_se": 4}
    gains["top-1 gain p"] = gains["top-1 gain p"].map(fmt_p)  # (gains.csv keeps the numbers)
    gdigits = {c: (4 if "loss" in c else 2) for c in gains.columns
               if "gain" in c and not c.endswith(" p")}
    gdigits["T. stddev"] = 5
    shown = edge.copy()
    for c in ("loss p", "top-1 p"):
        shown[c] = shown[c].map(fmt_p)
    edigits = {f"loss - {base}'s": 4, "loss SE": 4, f"top-1 - {base}'s": 2, "top-1 SE": 2}
    lines = ["## Cells (mean, seed std and SE over seeds)", "", md(cells, digits), "",
             f"## Each DA against {base} at each length (Welch, uncorrected)", "",
             md(shown, edigits), "",
             f"## Gain from {e_min} to {e_max} epochs (Welch SE)", "", md(gains, gdigits), "",
             "## Two-way ANOVA (DA x epochs)", ""]
    for metric, res in anova.items():
        lines.append(f"- {metric}: " + "; ".join(
            f"{k} F = {v['F']:.2f} (df {v['df'][0]}, {v['df'][1]}), p = {fmt_p(v['p'])}"
            for k, v in res.items()))
    if order_text:
        lines.append(order_text)
    return "\n".join(lines) + "\n"


STUDIES = {"kd-vs-crd": kd_vs_crd, "pick-any": pick_any, "long-epochs": long_epochs,
           "second-pair": second_pair}


def teacher_record(sweep: Path) -> dict:
    """The teacher run's summary (model, epochs, seed, data, test top-1) the sweep used."""
    spec = yaml.safe_load((sweep / "spec.yaml").read_text())
    pair = spec["pairs"][0]
    folder = Path(pair.get("teacher_run") or sweep / "teachers" / pair["teacher"])
    summary = json.loads((folder / "summary.json").read_text())
    config = flatten_blocks(yaml.safe_load((folder / "config.yaml").read_text()))
    return {"folder": str(folder), "model": pair["teacher"],
            "test_top1": summary["last"]["test_top1"], "test_loss": summary["last"]["test_loss"],
            "epochs": config.get("epochs"), "seed": config.get("seed"),
            "dataset": config.get("dataset"), "dataset_options": config.get("dataset_options")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("sweep", nargs="?", type=Path, help="the sweep folder (after --collect)")
    parser.add_argument("out", nargs="?", type=Path, help="the report folder")
    parser.add_argument("--reference", type=Path, metavar="CSV",
                        help="second-pair: the first pair's results.csv, copied as "
                             "reference.csv")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild the tables from a report folder's committed files")
    args = parser.parse_args()
    if args.from_committed:
        out = args.from_committed
    elif args.sweep and args.out:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.sweep / "results.csv", out / "results.csv")
        shutil.copy(args.sweep / "spec.yaml", out / "spec.yaml")
        (out / "teacher.json").write_text(json.dumps(teacher_record(args.sweep), indent=2) + "\n")
        if args.reference:
            shutil.copy(args.reference, out / "reference.csv")
    else:
        parser.error("give SWEEP and OUT, or --from-committed REPORT")
    results = pd.read_csv(out / "results.csv")
    text = STUDIES[args.study](results, out)
    (out / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
