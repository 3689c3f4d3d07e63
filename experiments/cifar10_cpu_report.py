"""The report of the CPU-scale CIFAR-10 study (experiments/cifar10_cpu.yaml).

    python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \\
        [--joint runs/sweeps/cifar10_cpu_joint] [--per-image runs/sweeps/cifar10_cpu_per_image] \\
        [--log study.log] --out reports/cifar10-cpu
    python experiments/cifar10_cpu_report.py --from-committed reports/cifar10-cpu

The first form reads the finished sweep folders (nothing is trained here); the second rebuilds
the same report from the raw files committed in the report folder (``results.csv``,
``joint_results.csv``, ``study.log``, ``spec.yaml``, ``machine.json``), so a report stays
reproducible without the run folders. Both write into the report folder: README.md (commands,
machine, wall time, per-DA figures with seed spreads, correlations with p-values and bootstrap
intervals over DAs and over seeds, effect size against seed noise, the DA order beside the
paper's, the two-forward ablation with Welch tests), the scatter (``*-scatter.png``), the
ranking and HTML report of ``augkd.report``, and the tables as CSV / JSON. All figures are
last-epoch figures.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import json
import math
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from scipy import stats  # noqa: E402

from augkd.metrics import correlations, seed_bootstrap_correlations  # noqa: E402
from augkd.report import build_report, write_results  # noqa: E402
from augkd.report.labels import label_points  # noqa: E402
from augkd.training.config import flatten_blocks

#: The DA-in-KD paper's order by T. stddev on CIFAR-100, lowest first, in all four pairs
#: (flip and identity tie at the end).
PAPER_ORDER = ["cutmixpick-t", "cutmixpick-s", "cutmix", "mixup", "autoaugment", "cutout",
               "crop+flip", "flip", "identity"]
#: The colours of augkd.report's figures (tab10 in this order), so a DA looks the same in the
#: scatter drawn here and in the ranking drawn there.
DA_COLOURS = dict(zip(["identity", "flip", "crop+flip", "cutout", "autoaugment", "mixup",
                       "cutmix", "cutmixpick-s", "cutmixpick-t"],
                      [f"C{i}" for i in range(9)], strict=True))
#: Null comparisons simulated for the false-pass rate of the "beyond 2 SE" rule.
NULL_DRAWS = 400_000
SCATTER_ALT = "T. stddev vs S. test loss"
#: what became of the committed study's teacher folder (the later studies' READMEs say more)
COMMITTED_TEACHER_NOTE = (
    " Later CPU studies read the same folder after a resnet20 was retrained there "
    "(external-da-cpu records 61.55 % for it; temperature-cpu and tuning-cpu used the same run "
    "by their author's account; for distillers-cpu it is not recorded which): this 60.24 % run "
    "is the teacher of this report only.")

_JOINT_JOB = re.compile(r"^\[worker \d+\] \[(?P<job>\d+)/\d+\] students/(?P<pair>[^/]+)/"
                        r"(?P<aug>[^/]+)/(?P<balancer>[a-z]+)-(?P<mode>per-[a-z]+)-e(?P<epochs>\d+)"
                        r"-s(?P<seed>\d+)$")
_STUDENT = re.compile(r"^\[worker \d+\] student (?P<student>\S+): test top-1 (?P<acc>[\d.]+)% "
                      r"\(loss (?P<loss>[\d.]+)\) -> (?P<path>\S+)$")
_DONE = re.compile(r"^\[worker \d+\] \[(?P<job>\d+)/\d+\] done in (?P<s>[\d.]+) s$")
_TEACHER = re.compile(r"^teacher (?P<model>\S+): test top-1 (?P<acc>[\d.]+)% "
                      r"\(loss (?P<loss>[\d.]+)\) -> (?P<path>\S+)$")
_DATE = re.compile(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \w+ \d{4}$")
_ELAPSED = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?P<t>[\d:.]+)")


# --------------------------------------------------------------------------------------------
# Raw inputs: sweep folders, or the files committed in the report folder


def load_sweep(folder: Path) -> tuple[pd.DataFrame, dict]:
    """results.csv of a sweep folder and its spec."""
    results = pd.read_csv(folder / "results.csv")
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    return results, spec


def wall_seconds(folder: Path) -> float:
    """From the first to the last file written in a sweep folder (when no log is given)."""
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(times) - min(times)


def joint_runs_from_log(text: str) -> pd.DataFrame:
    """The joint-forward students of study.log, one row per run.

    The log prints each student's test loss at 4 decimals and top-1 at 2, and each job's wall
    time at 0.1 s; those are the precisions of the returned table (``job_seconds`` is the
    whole job, start-up included, unlike results.csv's ``time_s``, the sum of epoch times).
    """
    jobs: dict[str, dict[str, Any]] = {}
    by_path: dict[str, dict[str, Any]] = {}
    for line in _joint_section_of_log(text).splitlines():
        if m := _JOINT_JOB.match(line):
            row = {"pair": m["pair"], "aug": m["aug"], "mode": m["mode"],
                   "epochs": int(m["epochs"]), "seed": int(m["seed"]),
                   "balancer": m["balancer"], "joint_forward": True}
            jobs[m["job"]] = row
            by_path[f"students/{m['pair']}/{m['aug']}/{m['balancer']}-{m['mode']}-"
                    f"e{m['epochs']}-s{m['seed']}"] = row
        elif (m := _STUDENT.match(line)) and "_joint/" in m["path"]:
            key = m["path"].split("_joint/", 1)[1]
            by_path[key].update(student=m["student"], last_test_loss=float(m["loss"]),
                                last_test_acc=float(m["acc"]))
        elif (m := _DONE.match(line)) and m["job"] in jobs and "last_test_loss" in jobs[m["job"]]:
            jobs[m["job"]]["job_seconds"] = float(m["s"])
    rows = [r for r in jobs.values() if "last_test_loss" in r]
    columns = ["pair", "student", "aug", "mode", "epochs", "seed", "balancer", "joint_forward",
               "last_test_loss", "last_test_acc", "job_seconds"]
    return pd.DataFrame(rows, columns=columns)


def _joint_section_of_log(text: str) -> str:
    """The part of study.log after the joint-forward stage's header."""
    marker = "== joint forward"
    return text[text.index(marker):] if marker in text else ""


def log_facts(text: str) -> dict[str, Any]:
    """What study.log records about the teacher and the wall time of each stage.

    Returns ``{"teacher": {model, test_top1, test_loss, run, job_seconds} | None,
    "stages": {name: seconds between the date stamps around it},
    "main_elapsed_s": /usr/bin/time's wall clock of the main sweep | None}``.
    """
    lines = text.splitlines()
    teacher = None
    for i, line in enumerate(lines):
        if m := _TEACHER.match(line):
            teacher = {"model": m["model"], "test_top1": float(m["acc"]),
                       "test_loss": float(m["loss"]), "run": m["path"], "job_seconds": None}
            for later in lines[i + 1:i + 3]:
                if d := re.match(r"^\[1/1\] done in (?P<s>[\d.]+) s$", later):
                    teacher["job_seconds"] = float(d["s"])
            break
    stamps = []  # (time, the stage named on the next line)
    for i, line in enumerate(lines):
        if _DATE.match(line.strip()):
            when = dt.datetime.strptime(re.sub(r" +", " ", line.strip()),
                                        "%a %b %d %H:%M:%S %Z %Y")
            name = lines[i + 1].removeprefix("== ").strip() if i + 1 < len(lines) else ""
            stamps.append((when, name))
    stages = {name: (stamps[k + 1][0] - when).total_seconds()
              for k, (when, name) in enumerate(stamps[:-1])}
    elapsed = None
    if m := _ELAPSED.search(text):
        parts = [float(p) for p in m["t"].split(":")]
        elapsed = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
    return {"teacher": teacher, "stages": stages, "main_elapsed_s": elapsed}


def machine_description() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, no GPU; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


# --------------------------------------------------------------------------------------------
# Tables: pure functions of the per-run tables


def per_da(results: pd.DataFrame, tcol: str) -> pd.DataFrame:
    """Mean and seed std of T. stddev, S. test loss and accuracy per DA, by T. stddev."""
    g = results.groupby("aug", sort=False)
    table = pd.DataFrame({
        "t_stddev": g[tcol].mean(), "t_stddev_std": g[tcol].std(ddof=1),
        "s_test_loss": g["last_test_loss"].mean(),
        "s_test_loss_std": g["last_test_loss"].std(ddof=1),
        "s_test_acc": g["last_test_acc"].mean(), "s_test_acc_std": g["last_test_acc"].std(ddof=1),
        "seeds": g.size(),
    })
    return table.sort_values("t_stddev")


def effect_vs_noise(results: pd.DataFrame, col: str) -> dict:
    """Spread of the per-DA means against the seed-to-seed noise, and a one-way ANOVA."""
    groups = [v[col].to_numpy() for _, v in results.groupby("aug")]
    means = np.array([g.mean() for g in groups])
    noise = math.sqrt(np.mean([g.var(ddof=1) for g in groups]))  # pooled within-DA std
    n = min(len(g) for g in groups)
    f, p = stats.f_oneway(*groups)
    return {"spread_std": float(means.std(ddof=1)), "range": float(np.ptp(means)),
            "seed_noise_std": noise, "se_of_a_da_mean": noise / math.sqrt(n),
            "anova_f": float(f), "anova_p": float(p), "seeds": n}


def order_agreement(order: list[str]) -> dict:
    """Kendall tau and Spearman rho between ``order`` (best first) and the paper's order."""
    ranks = [PAPER_ORDER.index(a) for a in order]
    tau, p_tau = stats.kendalltau(range(len(order)), ranks)
    rho, p_rho = stats.spearmanr(range(len(order)), ranks)
    return {"kendall": float(tau), "kendall_p": float(p_tau), "spearman": float(rho),
            "spearman_p": float(p_rho)}


def correlation_tables(results: pd.DataFrame, tcol: str) -> dict:
    """Across-DA coefficients with p and DA-bootstrap intervals, and seed-bootstrap intervals."""
    table = per_da(results, tcol)
    corr = correlations(table["t_stddev"].to_numpy(), table["s_test_loss"].to_numpy())
    x = results.pivot(index="aug", columns="seed", values=tcol)
    y = results.pivot(index="aug", columns="seed", values="last_test_loss").loc[x.index]
    seeds = seed_bootstrap_correlations(x.to_numpy(), y.to_numpy())
    return {"across_das": corr, "across_seeds": seeds}


def two_se_false_pass_rate(n_a: int, n_b: int, draws: int = NULL_DRAWS, seed: int = 0) -> float:
    """How often |mean_b - mean_a| > 2 SE (Welch's SE) when both groups are N(0, 1) draws of
    ``n_a`` and ``n_b`` runs: the false-pass rate of the "beyond 2 SE" rule (numpy seed 0)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((draws, n_a)), rng.standard_normal((draws, n_b))
    se = np.sqrt(a.var(axis=1, ddof=1) / n_a + b.var(axis=1, ddof=1) / n_b)
    return float(np.mean(np.abs(b.mean(axis=1) - a.mean(axis=1)) > 2 * se))


def joint_table(main: pd.DataFrame, joint: pd.DataFrame) -> pd.DataFrame:
    """S. test loss with two forwards (main sweep) against one joint forward, the joint runs'
    seeds, Welch's t-test per DA (numbers, one row per DA in the paper's order)."""
    seeds = sorted(set(joint["seed"]))
    sep = main[main["seed"].isin(seeds)]
    rows = []
    for aug in PAPER_ORDER:
        a = sep.loc[sep["aug"] == aug].sort_values("seed")["last_test_loss"].to_numpy()
        b = joint.loc[joint["aug"] == aug].sort_values("seed")["last_test_loss"].to_numpy()
        if len(a) < 2 or len(b) < 2:
            continue
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        test = stats.ttest_ind(b, a, equal_var=False)
        rows.append({"aug": aug, "two_forwards": a.mean(), "two_forwards_std": a.std(ddof=1),
                     "joint_forward": b.mean(), "joint_forward_std": b.std(ddof=1),
                     "joint_minus_two": b.mean() - a.mean(), "se_of_difference": math.sqrt(va + vb),
                     "welch_t": float(test.statistic),
                     "welch_df": (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)),
                     "welch_p": float(test.pvalue), "n_two": len(a), "n_joint": len(b)})
    return pd.DataFrame(rows)


def build_tables(results: pd.DataFrame, tcol: str, joint: pd.DataFrame | None) -> dict[str, Any]:
    """Every table of the report from the per-run tables (the main sweep's and the joint one's).

    Returns ``per_da`` (DataFrame), ``correlations``, ``effect_vs_noise`` (dicts as written to
    JSON, without the wall times) and ``joint`` (DataFrame or None).
    """
    table = per_da(results, tcol)
    t_order = list(table.index)
    loss_order = list(table.sort_values("s_test_loss").index)
    effect = {"s_test_loss": effect_vs_noise(results, "last_test_loss"),
              "s_test_acc": effect_vs_noise(results, "last_test_acc"),
              "t_stddev": effect_vs_noise(results, tcol),
              "order_vs_paper": {"t_stddev": order_agreement(t_order),
                                 "s_test_loss": order_agreement(loss_order)}}
    return {"per_da": table, "correlations": correlation_tables(results, tcol),
            "effect_vs_noise": effect,
            "joint": joint_table(results, joint) if joint is not None and len(joint) else None}


# --------------------------------------------------------------------------------------------
# Text


def fmt(v: float, d: int = 4) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def correlation_md(corr: dict) -> str:
    rows = []
    for name, label in (("pearson", "Pearson r"), ("spearman", "Spearman ρ"),
                        ("kendall", "Kendall τ")):
        c, s = corr["across_das"][name], corr["across_seeds"][name]
        rows.append({"coefficient": label, "r": fmt(c["r"], 3), "p": f"{c['p']:.3g}",
                     "95 % CI, DAs resampled": f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]",
                     "95 % CI, seeds resampled": f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]"})
    return md_table(pd.DataFrame(rows))


def da_table_md(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "rank": range(1, len(table) + 1), "DA": table.index,
        "T. stddev": [f"{m:.6f} ± {s:.6f}" for m, s in zip(table.t_stddev, table.t_stddev_std,
                                                            strict=True)],
        "S. test loss": [f"{m:.4f} ± {s:.4f}" for m, s in zip(table.s_test_loss,
                                                              table.s_test_loss_std, strict=True)],
        "S. test acc (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(table.s_test_acc,
                                                                 table.s_test_acc_std,
                                                                 strict=True)],
        "seeds": table.seeds,
    })
    return md_table(shown)


def joint_md(table: pd.DataFrame) -> str:
    return md_table(pd.DataFrame({
        "DA": table["aug"],
        "two forwards": [f"{m:.4f} ± {s:.4f}" for m, s in
                         zip(table["two_forwards"], table["two_forwards_std"], strict=True)],
        "joint forward": [f"{m:.4f} ± {s:.4f}" for m, s in
                          zip(table["joint_forward"], table["joint_forward_std"], strict=True)],
        "joint - two": [f"{v:+.4f}" for v in table["joint_minus_two"]],
        "SE of the difference": [f"{v:.4f}" for v in table["se_of_difference"]],
        "Welch t (df)": [f"{t:+.2f} ({d:.1f})" for t, d in
                         zip(table["welch_t"], table["welch_df"], strict=True)],
        "Welch p": [f"{p:.2g}" for p in table["welch_p"]],
    }))


def joint_text(table: pd.DataFrame, joint: pd.DataFrame, false_pass: float) -> str:
    """The ablation's section: the tests as they are, with the chance level of the 2 SE rule."""
    n = len(table)
    significant = table.loc[table["welch_p"] < 0.05, "aug"].tolist()
    smallest = table.sort_values("welch_p").iloc[0]
    beyond = table.loc[table["joint_minus_two"].abs() > 2 * table["se_of_difference"], "aug"]
    n_two, n_joint = int(table["n_two"].min()), int(table["n_joint"].min())
    order = joint.groupby("aug")["last_test_loss"].mean().sort_values().index
    verdict = (f"Welch p < 0.05 for {', '.join(significant)}" if significant else
               f"**no difference is significant at 5 %**: the smallest Welch p is "
               f"{smallest['welch_p']:.2g} ({smallest['aug']})")
    return (
        "## Two forwards per step (the reference) against one joint forward\n\n"
        f"The same students (seeds {sorted(set(joint['seed']))}) trained with "
        "`joint_forward: true`, i.e. one forward over [x; x~] that pools the two views' "
        "BatchNorm statistics, against the main sweep's two-forward students of the same seeds. "
        "The joint runs' figures come from `study.log`, which prints each student's test loss "
        "at 4 decimals (`joint_results.csv` holds them, one row per run; their run folders are "
        "not committed). S. test loss, mean ± seed std, Welch's t-test per DA:\n\n"
        + joint_md(table) + "\n\n"
        f"Over the {n} DAs, {verdict}. {len(beyond)} of the {n} differences exceed twice their "
        f"standard error ({', '.join(beyond) if len(beyond) else 'none'}), but with {n_two} "
        f"against {n_joint} seeds that rule is not a 5 % test: it passes "
        f"{100 * false_pass:.1f} % of comparisons between two groups with no difference at all "
        f"({NULL_DRAWS:,} simulated pairs of normal samples, equal variances), about "
        f"{n * false_pass:.1f} of {n} by chance alone. So these runs show no effect of the "
        "joint forward on S. test loss; differences smaller than about "
        f"{2 * table['se_of_difference'].median():.3f} (twice the median SE) are inside the seed "
        f"noise of {n_two} against {n_joint} runs. Order by mean S. "
        f"test loss with the joint forward: {' < '.join(order)}.\n")


def per_image_text(per_image: pd.DataFrame) -> tuple[str, pd.DataFrame, dict]:
    """The per-image sweep's section, its per-DA table and its correlations."""
    tcol = f"t_stddev_{per_image['mode'].iloc[0]}"
    table, corr = per_da(per_image, tcol), correlation_tables(per_image, tcol)
    noise = effect_vs_noise(per_image, "last_test_loss")
    text = ("## Per-image mode (students and T. stddev drawn per image)\n\n"
            + da_table_md(table) + "\n\n" + correlation_md(corr) + "\n\n"
            f"S. test loss spread across DAs {noise['spread_std']:.4f} (std of the means) "
            f"against seed noise {noise['seed_noise_std']:.4f} (pooled std; SE of a DA mean "
            f"{noise['se_of_a_da_mean']:.4f}); ANOVA p = {noise['anova_p']:.3g}.\n")
    return text, table, corr


def teacher_text(teacher: dict | None, spec: dict, model: str, note: str = "") -> str:
    options = spec["dataset"].get("options", {})
    seed = spec.get("teacher", {}).get("seed")
    seed_text = (f"seed {seed}" if seed is not None else
                 "seed not recorded (the spec sets none; TrainConfig's default is 0)")
    data = (f"{options.get('resize', 32)} px CIFAR-10, the {options.get('train_subset', 50000):,}"
            f"-image subset (subset seed {options.get('subset_seed', 0)})")
    if teacher is None:
        return f"{model}, {spec['teacher']['epochs']} epochs on {data}, {seed_text}; its test " \
               "top-1 is not recorded in this folder."
    source = teacher.get("source", "study.log")
    took = (f", trained in {teacher['job_seconds']:.0f} s" if teacher.get("job_seconds")
            else "")
    return (f"{model}, {spec['teacher']['epochs']} epochs on {data}, {seed_text}: test top-1 "
            f"{teacher['test_top1']:.2f} % (loss {teacher['test_loss']:.4f}){took}; run "
            f"`{teacher['run']}` (from `{source}`).{note}")


def walls_from_log(facts: dict) -> dict[str, float]:
    """Seconds per sweep from study.log: the main sweep by /usr/bin/time's elapsed wall clock
    where the log has it, else (and every other stage) between the date stamps around it."""
    walls: dict[str, float] = {}
    for name, seconds in facts["stages"].items():
        key = name.split()[0].replace("-", "_")  # "main (per-batch, ...)" -> "main"
        walls[key] = walls.get(key, 0.0) + seconds
    if facts.get("main_elapsed_s"):
        walls["main"] = facts["main_elapsed_s"]
    return walls


def timing_text(facts: dict | None, walls: dict) -> str:
    if facts and facts["stages"]:
        stages = "; ".join(f"{name} {seconds / 60:.1f} min"
                           for name, seconds in facts["stages"].items())
        text = f"between the date stamps of `study.log`: {stages}"
        if facts.get("main_elapsed_s"):
            t = facts.get("teacher") or {}
            teacher_part = (f", of which the teacher {t['job_seconds'] / 60:.1f} min"
                            if t.get("job_seconds") else "")
            text += (f". `/usr/bin/time`'s elapsed wall clock of the main sweep (teacher, 45 "
                     f"students, 45 T. stddev measurements): {facts['main_elapsed_s'] / 60:.1f} "
                     f"min{teacher_part}")
        return text + ". What else ran on the machine at the time is not recorded"
    parts = "; ".join(f"{k.replace('_', '-')} sweep {v / 60:.1f} min" for k, v in walls.items())
    return f"{parts} (from the first to the last file written in each sweep folder)"


# --------------------------------------------------------------------------------------------
# Figures


def _frame(annotation, name: str) -> None:
    """Outline a point's label in the point's colour, so it is read as that point's."""
    box = annotation.get_bbox_patch()
    box.set_edgecolor(DA_COLOURS.get(name, "0.3"))
    box.set_linewidth(1.3)
    box.set_alpha(1.0)


def scatter_png(table: pd.DataFrame, corr: dict, n_seeds: int, path: Path,
                band: float = 0.2) -> None:
    """T. stddev against S. test loss, one point per DA (mean ± seed std), with a zoomed panel
    for the DAs whose T. stddev lies within ``band`` x its range of the median (the crowded
    middle); every label on a leader line where its point is crowded.

    Args:
        table: one row per DA (index: the DA's name) with ``t_stddev``, ``t_stddev_std``,
            ``s_test_loss`` and ``s_test_loss_std``.
        corr: ``{"pearson" | "spearman" | "kendall": {"r", "p", ...}}`` across the DAs.
        n_seeds: seeds behind each mean (for the legend).
        path: the PNG to write.
    """
    x = table["t_stddev"].to_numpy() * 100
    y = table["s_test_loss"].to_numpy()
    xe, ye = table["t_stddev_std"].to_numpy() * 100, table["s_test_loss_std"].to_numpy()
    names = list(table.index)
    crowded = np.abs(x - np.median(x)) < band * np.ptp(x)
    fig = Figure(figsize=(10.5, 5.4), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    full, zoom = fig.subplots(1, 2, width_ratios=[1.05, 1.0])
    slope, intercept = np.polyfit(x, y, 1)
    for ax in (full, zoom):
        ax.errorbar(x, y, xerr=xe, yerr=ye, fmt="none", ecolor="0.6", elinewidth=0.9,
                    capsize=2.5, zorder=2)
        ax.scatter(x, y, c=[DA_COLOURS.get(a, "0.3") for a in names], s=55 if ax is full else 45,
                   edgecolors="white", linewidths=1.0, zorder=3)
        ax.grid(alpha=0.3)
        ax.set_xlabel("T. stddev, teacher only (×10$^{-2}$)")
    xs = np.array([x.min() - 0.03, x.max() + 0.03])
    full.plot(xs, intercept + slope * xs, ls="--", lw=1.1, color="0.45", zorder=1)
    full.margins(x=0.12, y=0.1)
    full.set_ylabel("S. test loss")
    pad_x = max(0.15 * float(np.ptp(x[crowded])), 0.01)
    pad_y = max(0.2 * float(np.ptp(y[crowded])), 0.003)
    lo_x, hi_x = x[crowded].min() - pad_x, x[crowded].max() + pad_x
    lo_y, hi_y = y[crowded].min() - pad_y, y[crowded].max() + pad_y
    full.add_patch(Rectangle((lo_x, lo_y), hi_x - lo_x, hi_y - lo_y, fill=False, lw=0.9,
                             ls=":", color="0.3", zorder=1))
    full.annotate("enlarged on the right", (lo_x, lo_y), xytext=(0, -4), va="top",
                  textcoords="offset points", fontsize=8.5, color="0.3", zorder=4,
                  bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
    zoom.set_xlim(lo_x, hi_x)
    zoom.set_ylim(lo_y, hi_y)
    zoom_xs = np.array([lo_x, hi_x])
    zoom.plot(zoom_xs, intercept + slope * zoom_xs, ls="--", lw=1.1, color="0.45", zorder=1)
    zoom.set_title(f"the {int(crowded.sum())} DAs in the dotted box (error bars cut at the "
                   "edges)", fontsize=10, loc="left")
    # every marker is an obstacle for the labels of the left panel, but only the DAs outside
    # the box keep theirs there; a label's frame takes its point's colour
    for ann, name, inside in zip(label_points(full, x, y, names, 55), names, crowded,
                                 strict=True):
        if inside:
            ann.remove()
        else:
            _frame(ann, name)
    for ann, name in zip(label_points(zoom, x[crowded], y[crowded],
                                      [n for n, c in zip(names, crowded, strict=True) if c], 45),
                         [n for n, c in zip(names, crowded, strict=True) if c], strict=True):
        _frame(ann, name)
    c = corr
    fig.suptitle(f"{len(names)} DAs: Pearson r = {c['pearson']['r']:.3f} "
                 f"(p = {c['pearson']['p']:.2g}), Spearman ρ = {c['spearman']['r']:.3f} "
                 f"(p = {c['spearman']['p']:.2g}), Kendall τ = {c['kendall']['r']:.3f} "
                 f"(p = {c['kendall']['p']:.2g})", fontsize=10.5, x=0.01, ha="left")
    full.set_title("all DAs", fontsize=10, loc="left")
    handles = [
        Line2D([], [], marker="o", ls="none", color="0.35", mec="white",
               label=f"one DA: mean over {n_seeds} seeds"),
        Line2D([], [], marker="|", ls="-", color="0.6", markersize=8,
               label="error bars: ± 1 std over the seeds (both axes)"),
        Line2D([], [], ls="--", color="0.45",
               label=f"least squares: S. test loss = {intercept:.3f} + {slope * 100:.2f} × "
                     "T. stddev"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    fig.savefig(path, dpi=150, facecolor="white")


def embed_png(report_html: Path, alt: str, png: Path, nth: int = 0) -> None:
    """Put ``png`` in place of the ``nth`` image with ``alt`` that augkd.report embedded in its
    HTML (one per panel; same display scale as augkd.report: 96 CSS px per inch at 150 dpi)."""
    data = png.read_bytes()
    width, height = (round(int.from_bytes(data[i:i + 4], "big") * 96 / 150) for i in (16, 20))
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    tag = f'<img alt="{html.escape(alt)}" width="{width}" height="{height}" src="{src}">'
    text = report_html.read_text(encoding="utf-8")
    found = list(re.finditer(rf'<img alt="{re.escape(html.escape(alt))}"[^>]*>', text))
    if len(found) <= nth:
        raise SystemExit(f"no image {alt!r} number {nth + 1} in {report_html}")
    hit = found[nth]
    report_html.write_text(text[:hit.start()] + tag + text[hit.end():], encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The report


def with_tiers(per_aug: pd.DataFrame, results: pd.DataFrame, tcol: str) -> pd.DataFrame:
    """``per_aug`` plus the ranking's tiers and standard errors from the per-seed values
    (augkd.metrics.tiers: the seeds' spread over sqrt(n), tiers by Welch tests against the tier's
    best, Bonferroni), as ``augkd.rank`` writes them."""
    from augkd.metrics.tiers import estimate, leader_tiers

    out = per_aug.copy()
    for column, source in (("t_stddev", tcol), ("s_test_loss", "last_test_loss")):
        estimates = {aug: estimate(group[source].tolist())
                     for aug, group in results.groupby("aug")}
        tiers = leader_tiers(estimates)
        prefix = "" if column == "t_stddev" else "s_test_loss_"
        out[f"{prefix}tier"] = out["aug"].map(tiers.tier_of)
        out[f"{column}_se"] = out["aug"].map(lambda a, e=estimates: e[a].se)
    return out


def results_folder_from_table(table: pd.DataFrame, corr: dict, spec: dict, into: Path,
                              results: pd.DataFrame | None = None, tcol: str = "") -> Path:
    """augkd.report's results folder of the main sweep, rebuilt from the per-DA table (with the
    tiers of the per-seed ``results`` when given)."""
    pair = spec["pairs"][0]
    mode = spec["grid"]["mode"][0]
    epochs = spec["grid"]["epochs"][0]
    balancer = spec["grid"]["balancer"][0]
    per_aug = table.reset_index().rename(columns={"seeds": "n_seeds"})
    if results is not None:
        per_aug = with_tiers(per_aug, results, tcol)
    protocol = {"dataset": spec["dataset"]["name"], "dataset_source": spec["dataset"].get("root"),
                "teacher": pair["teacher"], "student": pair["student"], "student_epochs": epochs,
                "balancer": balancer, "mode": mode, "tstddev_mode": spec["tstddev"]["modes"][0],
                "pairing": f"same mode ({mode})", "agb_lambda": None,
                "seeds": int(per_aug["n_seeds"].min()),
                "tstddev_epochs": spec["tstddev"]["epochs"], "sweep": spec["name"]}
    folder = into / f"{pair['teacher']}-{pair['student']}-{balancer}-{mode}-e{epochs}"
    write_results(folder, per_aug, {"protocol": protocol, **corr["across_das"]})
    return folder


def readme(tables: dict, results: pd.DataFrame, spec: dict, *, machine: str, teacher: str,
           timing: str, source: str, joint: pd.DataFrame | None, per_image_md: str = "") -> str:
    table, corr, effect = tables["per_da"], tables["correlations"], tables["effect_vs_noise"]
    mode = spec["grid"]["mode"][0]
    options = spec["dataset"].get("options", {})
    student_model = spec["pairs"][0]["student"]
    n_seeds = results["seed"].nunique()
    far = (table["t_stddev"] - table["t_stddev"].median()).abs().idxmax()
    rest = table.drop(far)
    loo = {name: fn(rest["t_stddev"], rest["s_test_loss"]) for name, fn in
           (("Pearson", stats.pearsonr), ("Spearman", stats.spearmanr),
            ("Kendall", stats.kendalltau))}
    loo_text = (f"Without {far} (the DA farthest from the median T. stddev): "
                + ", ".join(f"{n} {r[0]:.3f} (p {r[1]:.3g})" for n, r in loo.items()) + ".")
    p = corr["across_das"]
    significant = [n for n in ("pearson", "spearman", "kendall") if p[n]["p"] < 0.05]
    verdict = (f"significant at 5 % for {', '.join(significant)}" if significant
               else "not significant at 5 % for any coefficient")
    with_zero = [n.capitalize() for n in ("pearson", "spearman", "kendall")
                 if p[n]["ci_low"] <= 0 <= p[n]["ci_high"]]
    zero_text = (f" The DA-resampled intervals of {' and '.join(with_zero)} include 0: these rank "
                 "coefficients are not robust to which nine DAs were studied."
                 if with_zero else "")
    noise_md = md_table(pd.DataFrame([
        {"quantity": name, "spread of the 9 DA means (std)": f"{n['spread_std']:.{d}f}",
         "range": f"{n['range']:.{d}f}",
         "seed noise (pooled std)": f"{n['seed_noise_std']:.{d}f}",
         "SE of a DA mean": f"{n['se_of_a_da_mean']:.{d}f}", "ANOVA F": f"{n['anova_f']:.2f}",
         "ANOVA p": f"{n['anova_p']:.3g}"}
        for name, n, d in (("S. test loss", effect["s_test_loss"], 4),
                           ("S. test acc (%)", effect["s_test_acc"], 3),
                           ("T. stddev", effect["t_stddev"], 6))]))
    agree = effect["order_vs_paper"]

    def agree_text(a: dict) -> str:
        return (f"Kendall τ with the paper's order {a['kendall']:+.3f} (p {a['kendall_p']:.3g}), "
                f"Spearman ρ {a['spearman']:+.3f}")

    t_order = list(table.index)
    loss_order = list(table.sort_values("s_test_loss").index)
    joint_part = ""
    if tables["joint"] is not None:
        joint_part = joint_text(tables["joint"], joint, two_se_false_pass_rate(
            int(tables["joint"]["n_two"].min()), int(tables["joint"]["n_joint"].min())))
    per_image_note = (
        "The per-image sweep (`bash benchmarks/cifar10_cpu_study.sh --per-image`) is the last "
        "section." if per_image_md else
        "The per-image mode is not part of this report: the session's time on the 2-core "
        "machine ran out.")
    return f"""# Does T. stddev predict the student's test loss? CIFAR-10 at a 2-core CPU's scale

_generated {dt.datetime.now():%Y-%m-%d} by `experiments/cifar10_cpu_report.py` from {source};
every figure is a last-epoch figure, computed in fp32._

## How it was made

```bash
python -m pip install -e .
bash benchmarks/cifar10_cpu_study.sh        # the main sweep and the ablation, resumable
python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \\
    --joint runs/sweeps/cifar10_cpu_joint --log study.log --out reports/cifar10-cpu
# or, from the files committed here (no run folders needed):
python experiments/cifar10_cpu_report.py --from-committed reports/cifar10-cpu
```

The main sweep is `python -m augkd.sweep experiments/cifar10_cpu.yaml --workers 2` (the spec
holds every setting; `spec.yaml` here is its copy); the script then runs the two-forward ablation
on the same teacher (`--students-only --set student.joint_forward=true 'grid.seed=[0,1,2]'`).
{per_image_note}
The study's log: `study.log`.

- Machine: {machine}. Two sweep workers, one thread each.
- Wall time: {timing}.
- Data: real CIFAR-10, the JPEG q75 copy (not the PNG-exact release), resized once at load to
  {options.get('resize', 32)}x{options.get('resize', 32)} (antialiased bilinear), a seeded
  class-stratified training subset of {options.get('train_subset', 50000):,} images (subset seed
  {options.get('subset_seed', 0)}), the full 10,000-image test set; normalized by the subset's
  own channel statistics.
- Teacher: {teacher}
- Students: {student_model}, {spec['grid']['epochs'][0]} epochs (lr 0.05, x0.1 at 62.5/75/87.5 %
  of them), batch 64, the paper's manual balancer 0.1 CE + 0.9 KD at T = 4 on both views, two
  forwards per step, {n_seeds} seeds (0..{n_seeds - 1}); the DA's parameters drawn once per batch
  (the paper's mode) for the students and for T. stddev. cutmixpick-s ranks its pool with the
  frozen crop+flip KD student of the same seed.
- T. stddev: {spec['tstddev']['epochs']} epochs over the training subset, batch 64, groups of
  {spec['tstddev']['group_size']} probability tensors (the paper's procedure), one measurement
  per seed.

## Results ({mode} mode), ranked by T. stddev (lowest first), mean ± std over seeds

{da_table_md(table)}

![T. stddev against S. test loss](resnet20-resnet8-manual-per-batch-e15-scatter.png)

## Correlation of T. stddev with S. test loss across the nine DAs

{correlation_md(corr)}

The correlation is **{verdict}** (two-sided p from scipy; 9 points). The "DAs resampled"
interval bootstraps the nine (DA, mean) points; the "seeds resampled" interval redraws the
{n_seeds} seeds with replacement (the same draw for every DA) and recomputes the coefficient
of the per-DA means.{zero_text} {loo_text}

## Is the DA effect larger than seed noise?

{noise_md}

## The DA order beside the paper's

- Paper (its published figures, CIFAR-100, all four pairs, by T. stddev): {' < '.join(PAPER_ORDER)}
  (flip ~ identity).
- Here by T. stddev: {' < '.join(t_order)}; {agree_text(agree['t_stddev'])}.
- Here by S. test loss: {' < '.join(loss_order)}; {agree_text(agree['s_test_loss'])}.

{joint_part}
{per_image_md}
## Files

- `results.csv`: one row per main-sweep student run (with its T. stddev); `joint_results.csv`:
  one row per joint-forward run, from `study.log` (loss at 4 decimals, top-1 at 2, the job's
  wall time at 0.1 s); `spec.yaml`: the sweep's spec; `machine.json`: the machine line above;
  `study.log`: the study's log (teacher, wall times).
- Tables rebuilt from those by `--from-committed` (and checked by
  `tests/test_reports_reproduce.py`): `per_da.csv` (the results table), `correlations.json`
  (every coefficient with p and both intervals), `effect_vs_noise.json`,
  `joint_forward_ablation.csv` (the ablation's table, with Welch t, df and p).
- `resnet20-resnet8-manual-per-batch-e15-scatter.png`: the scatter above (drawn by this script);
  `report.html` / `report.md` and the ranking PNG: `augkd.report`'s rendering of the per-DA
  table (its HTML embeds the scatter above).
"""


def write_report(out: Path, results: pd.DataFrame, spec: dict, joint: pd.DataFrame | None, *,
                 machine: str, teacher: str, timing: str, source: str,
                 walls: dict[str, float], report_folders: list[Path] | None = None,
                 per_image: pd.DataFrame | None = None) -> dict:
    """Write every table, figure and README.md of the report into ``out``; returns the tables."""
    mode = spec["grid"]["mode"][0]
    tcol = f"t_stddev_{mode}"
    tables = build_tables(results, tcol, joint)
    per_image_md = ""
    if per_image is not None:
        per_image_md, pi_table, pi_corr = per_image_text(per_image)
        pi_table.to_csv(out / "per_image_per_da.csv")
        (out / "per_image_correlations.json").write_text(json.dumps(pi_corr, indent=2))
    pair = spec["pairs"][0]
    with tempfile.TemporaryDirectory() as tmp:
        folders = report_folders or [results_folder_from_table(
            tables["per_da"], tables["correlations"], spec, Path(tmp), results, tcol)]
        build_report(folders, out, title="CIFAR-10 (JPEG q75, 16 px, 5,000 training images): "
                     f"{pair['teacher']} → {pair['student']}, per-batch mode")
    scatter = out / "resnet20-resnet8-manual-per-batch-e15-scatter.png"
    scatter_png(tables["per_da"], tables["correlations"]["across_das"],
                results["seed"].nunique(), scatter)
    embed_png(out / "report.html", SCATTER_ALT, scatter)
    (out / "README.md").write_text(
        readme(tables, results, spec, machine=machine, teacher=teacher, timing=timing,
               source=source, joint=joint, per_image_md=per_image_md), encoding="utf-8")
    tables["per_da"].to_csv(out / "per_da.csv")
    (out / "correlations.json").write_text(json.dumps(tables["correlations"], indent=2))
    (out / "effect_vs_noise.json").write_text(
        json.dumps({**tables["effect_vs_noise"], "wall_seconds": walls}, indent=2))
    if tables["joint"] is not None:
        tables["joint"].to_csv(out / "joint_forward_ablation.csv", index=False)
    return tables


def from_committed(folder: Path) -> dict:
    """Rebuild the report in ``folder`` from the raw files committed there."""
    results = pd.read_csv(folder / "results.csv")
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    log = (folder / "study.log").read_text()
    joint = pd.read_csv(folder / "joint_results.csv")
    facts = log_facts(log)
    walls = walls_from_log(facts)
    machine = json.loads((folder / "machine.json").read_text())["machine"]
    per_image = folder / "per_image_results.csv"
    return write_report(
        folder, results, spec, joint, machine=machine,
        teacher=teacher_text(facts["teacher"], spec, spec["pairs"][0]["teacher"],
                             note=COMMITTED_TEACHER_NOTE),
        timing=timing_text(facts, walls), walls=walls,
        source="the raw files committed beside it (`--from-committed`)",
        per_image=pd.read_csv(per_image) if per_image.is_file() else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--main", type=Path, help="the per-batch sweep folder")
    parser.add_argument("--joint", type=Path, help="the joint-forward ablation sweep folder")
    parser.add_argument("--per-image", type=Path, help="the per-image sweep folder")
    parser.add_argument("--log", type=Path, help="the study's log (wall time, teacher)")
    parser.add_argument("--out", type=Path, help="the report folder")
    parser.add_argument("--from-committed", type=Path, metavar="REPORT",
                        help="rebuild REPORT from the raw files committed in it")
    args = parser.parse_args()
    if args.from_committed:
        from_committed(args.from_committed)
        print(f"report -> {args.from_committed / 'README.md'}")
        return
    if args.main is None or args.out is None:
        parser.error("give --main and --out, or --from-committed REPORT")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results, spec = load_sweep(args.main)
    teacher_model = spec["pairs"][0]["teacher"]
    given = spec["pairs"][0].get("teacher_run")  # a teacher trained outside the sweep
    teacher_dir = Path(given) if given else args.main / "teachers" / teacher_model
    summary = json.loads((teacher_dir / "summary.json").read_text())
    config = flatten_blocks(yaml.safe_load((teacher_dir / "config.yaml").read_text()))
    teacher = {"test_top1": summary["last"]["test_top1"],
               "test_loss": summary["last"]["test_loss"], "run": str(teacher_dir),
               "source": f"{teacher_dir}/summary.json", "job_seconds": None}
    spec.setdefault("teacher", {}).setdefault("seed", config.get("seed"))
    joint = None
    walls = {"main": wall_seconds(args.main)}
    if args.joint and (args.joint / "results.csv").is_file():
        joint, _ = load_sweep(args.joint)
        walls["joint"] = wall_seconds(args.joint)
        joint.to_csv(out / "joint_results.csv", index=False)
    per_image = None
    if args.per_image and (args.per_image / "results.csv").is_file():
        per_image, _ = load_sweep(args.per_image)
        walls["per_image"] = wall_seconds(args.per_image)
        per_image.to_csv(out / "per_image_results.csv", index=False)
    facts = None
    if args.log and args.log.is_file():
        shutil.copy(args.log, out / "study.log")
        facts = log_facts(args.log.read_text())
        walls = {**walls, **walls_from_log(facts)}
        if facts["teacher"]:
            teacher["job_seconds"] = facts["teacher"]["job_seconds"]
    machine = machine_description()
    (out / "machine.json").write_text(json.dumps({"machine": machine}, indent=2) + "\n")
    (out / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    results.to_csv(out / "results.csv", index=False)
    write_report(out, results, spec, joint, machine=machine,
                 teacher=teacher_text(teacher, spec, teacher_model),
                 timing=timing_text(facts, walls), walls=walls, source="the sweep folders",
                 report_folders=sorted((args.main / "results").iterdir()), per_image=per_image)
    print(f"report -> {out / 'README.md'}")


if __name__ == "__main__":
    main()
