"""The report of the CPU-scale CIFAR-10 study (experiments/cifar10_cpu.yaml).

    python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \\
        [--joint runs/sweeps/cifar10_cpu_joint] [--per-image runs/sweeps/cifar10_cpu_per_image] \\
        [--log study.log] --out reports/cifar10-cpu

Reads the finished sweep folders (nothing is trained here) and writes into OUT: README.md (the
study's report: commands, machine, wall time, per-DA figures with seed spreads, correlations
with p-values and bootstrap intervals over DAs and over seeds, effect size against seed noise,
the DA order beside the paper's, the two-forward ablation), the figures and the HTML report of
``augkd.report``, and the tables as CSV. All figures are last-epoch figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy import stats

from augkd.metrics import correlations, seed_bootstrap_correlations
from augkd.report import build_report

#: The DA-in-KD paper's order by T. stddev on CIFAR-100, lowest first, in all four pairs
#: (flip and identity tie at the end).
PAPER_ORDER = ["cutmixpick-t", "cutmixpick-s", "cutmix", "mixup", "autoaugment", "cutout",
               "crop+flip", "flip", "identity"]


def load_sweep(folder: Path) -> tuple[pd.DataFrame, dict]:
    """results.csv of a sweep folder and its spec."""
    results = pd.read_csv(folder / "results.csv")
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    return results, spec


def wall_seconds(folder: Path) -> float:
    """From the first to the last file written in a sweep folder (its wall time)."""
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(times) - min(times)


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


def fmt(v: float, d: int = 4) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def correlation_section(results: pd.DataFrame, tcol: str) -> tuple[str, dict]:
    table = per_da(results, tcol)
    corr = correlations(table["t_stddev"].to_numpy(), table["s_test_loss"].to_numpy())
    x = results.pivot(index="aug", columns="seed", values=tcol)
    y = results.pivot(index="aug", columns="seed", values="last_test_loss").loc[x.index]
    seeds = seed_bootstrap_correlations(x.to_numpy(), y.to_numpy())
    rows = []
    for name, label in (("pearson", "Pearson r"), ("spearman", "Spearman ρ"),
                        ("kendall", "Kendall τ")):
        c, s = corr[name], seeds[name]
        rows.append({"coefficient": label, "r": fmt(c["r"], 3), "p": f"{c['p']:.3g}",
                     "95 % CI, DAs resampled": f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]",
                     "95 % CI, seeds resampled": f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]"})
    return md_table(pd.DataFrame(rows)), {"across_das": corr, "across_seeds": seeds}


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


def joint_section(main: pd.DataFrame, joint: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """S. test loss with two forwards (default) against one joint forward, same seeds."""
    seeds = sorted(set(joint["seed"]))
    sep = main[main["seed"].isin(seeds)]
    rows = []
    for aug in PAPER_ORDER:
        a = sep.loc[sep["aug"] == aug].sort_values("seed")["last_test_loss"].to_numpy()
        b = joint.loc[joint["aug"] == aug].sort_values("seed")["last_test_loss"].to_numpy()
        if len(a) < 2 or len(b) < 2:
            continue
        diff = b.mean() - a.mean()
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        t, p = stats.ttest_ind(b, a, equal_var=False)
        rows.append({"DA": aug, "two forwards": f"{a.mean():.4f} ± {a.std(ddof=1):.4f}",
                     "joint forward": f"{b.mean():.4f} ± {b.std(ddof=1):.4f}",
                     "joint - two": f"{diff:+.4f}", "SE of the difference": f"{se:.4f}",
                     "Welch p": f"{p:.3g}", "beyond 2 SE": "yes" if abs(diff) > 2 * se else "no",
                     "_diff": diff, "_se": se, "_p": p})
    table = pd.DataFrame(rows)
    return md_table(table[[c for c in table.columns if not c.startswith("_")]]), table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--main", type=Path, required=True, help="the per-batch sweep folder")
    parser.add_argument("--joint", type=Path, help="the joint-forward ablation sweep folder")
    parser.add_argument("--per-image", type=Path, help="the per-image sweep folder")
    parser.add_argument("--log", type=Path, help="the study's log (wall time, commands)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    results, spec = load_sweep(args.main)
    mode = spec["grid"]["mode"][0]
    tcol = f"t_stddev_{mode}"
    options = spec["dataset"].get("options", {})
    teacher_model = spec["pairs"][0]["teacher"]
    student_model = spec["pairs"][0]["student"]
    teacher_summary = json.loads((args.main / "teachers" / teacher_model /
                                  "summary.json").read_text())
    table = per_da(results, tcol)
    corr_md, corr = correlation_section(results, tcol)
    loss_noise = effect_vs_noise(results, "last_test_loss")
    acc_noise = effect_vs_noise(results, "last_test_acc")
    ts_noise = effect_vs_noise(results, tcol)
    t_order = list(table.index)
    loss_order = list(table.sort_values("s_test_loss").index)
    agree_t, agree_loss = order_agreement(t_order), order_agreement(loss_order)
    walls = {"main": wall_seconds(args.main)}

    sections = []
    joint_table = None
    if args.joint and (args.joint / "results.csv").is_file():
        joint, _ = load_sweep(args.joint)
        walls["joint"] = wall_seconds(args.joint)
        joint_md, joint_table = joint_section(results, joint)
        beyond = joint_table.loc[joint_table["beyond 2 SE"] == "yes", "DA"].tolist()
        jt = per_da(joint.assign(**{tcol: 0.0}), tcol).sort_values("s_test_loss")
        sections.append(
            "## Two forwards per step (the reference) against one joint forward\n\n"
            f"The same students (seeds {sorted(set(joint['seed']))}) trained with "
            "`joint_forward: true`, i.e. one forward over [x; x~] that pools the two views' "
            "BatchNorm statistics. A difference counts as beyond seed noise when it exceeds "
            "twice its standard error (Welch).\n\n" + joint_md + "\n\n"
            + (f"Beyond seed noise: {', '.join(beyond)}" if beyond else
               "No DA's S. test loss moves beyond seed noise")
            + f" ({len(joint_table)} comparisons: about {0.05 * len(joint_table):.1f} would pass "
            "a 5 % test by chance alone)."
            + f" Order by S. test loss with the joint forward: {' < '.join(jt.index)}.\n")
    if args.per_image and (args.per_image / "results.csv").is_file():
        pi, pi_spec = load_sweep(args.per_image)
        walls["per_image"] = wall_seconds(args.per_image)
        pi_col = f"t_stddev_{pi_spec['grid']['mode'][0]}"
        pi_md, pi_corr = correlation_section(pi, pi_col)
        pi_table = per_da(pi, pi_col)
        pi_noise = effect_vs_noise(pi, "last_test_loss")
        sections.append(
            "## Per-image mode (students and T. stddev drawn per image)\n\n"
            + da_table_md(pi_table) + "\n\n" + pi_md + "\n\n"
            f"S. test loss spread across DAs {pi_noise['spread_std']:.4f} (std of the means) "
            f"against seed noise {pi_noise['seed_noise_std']:.4f} (pooled std; SE of a DA mean "
            f"{pi_noise['se_of_a_da_mean']:.4f}); ANOVA p = {pi_noise['anova_p']:.3g}.\n")
        pi_table.to_csv(out / "per_image_per_da.csv")
        json.dump(pi_corr, open(out / "per_image_correlations.json", "w"), indent=2)

    # the figures and the HTML report of augkd.report, from the sweep's results folder
    folders = sorted((args.main / "results").iterdir())
    build_report(folders, out, title="CIFAR-10 (JPEG q75, 16 px, 5,000 training images): "
                 f"{teacher_model} -> {student_model}, per-batch mode")

    # sensitivity: the coefficients without the DA farthest from the others in T. stddev
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
    log_cmds = ""
    if args.log and args.log.is_file():
        log_cmds = f"\nThe study's log: `{args.log.name}` (copied beside this report).\n"
        shutil.copy(args.log, out / args.log.name)
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    machine = (f"{cpu}, {os.cpu_count()} cores, no GPU; Python {platform.python_version()}, "
               f"torch {torch.__version__}")
    n_seeds = results["seed"].nunique()
    noise_md = md_table(pd.DataFrame([
        {"quantity": name, "spread of the 9 DA means (std)": f"{n['spread_std']:.{d}f}",
         "range": f"{n['range']:.{d}f}",
         "seed noise (pooled std)": f"{n['seed_noise_std']:.{d}f}",
         "SE of a DA mean": f"{n['se_of_a_da_mean']:.{d}f}", "ANOVA F": f"{n['anova_f']:.2f}",
         "ANOVA p": f"{n['anova_p']:.3g}"}
        for name, n, d in (("S. test loss", loss_noise, 4), ("S. test acc (%)", acc_noise, 3),
                           ("T. stddev", ts_noise, 6))]))
    walls_text = "".join(f"; {k.replace('_', '-')} sweep {v / 60:.1f} min"
                         for k, v in walls.items() if k != "main")
    agree_t_text = (f"Kendall τ with the paper's order {agree_t['kendall']:+.3f} "
                    f"(p {agree_t['kendall_p']:.3g}), Spearman ρ {agree_t['spearman']:+.3f}")
    agree_loss_text = (f"Kendall τ with the paper's order {agree_loss['kendall']:+.3f} "
                       f"(p {agree_loss['kendall_p']:.3g}), Spearman ρ "
                       f"{agree_loss['spearman']:+.3f}")
    text = f"""# Does T. stddev predict the student's test loss? CIFAR-10 at a 2-core CPU's scale

_generated {dt.datetime.now():%Y-%m-%d %H:%M} by `experiments/cifar10_cpu_report.py` from the
sweep folders; every figure is a last-epoch figure, computed in fp32._

## How it was made

```bash
python -m pip install -e .
bash benchmarks/cifar10_cpu_study.sh        # the main sweep and the ablation, resumable
python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \\
    --joint runs/sweeps/cifar10_cpu_joint --log study.log --out reports/cifar10-cpu
```

The main sweep is `python -m augkd.sweep experiments/cifar10_cpu.yaml --workers 2` (the spec
holds every setting); the script then runs the two-forward ablation on the same teacher
(`--students-only --set student.joint_forward=true 'grid.seed=[0,1,2]'`). The per-image mode
(`bash benchmarks/cifar10_cpu_study.sh --per-image`, about 45 more minutes here) is not part
of this report: the session's time on the 2-core machine ran out.
{log_cmds}
- Machine: {machine}. Two sweep workers, one thread each.
- Wall time: main sweep (teacher, {len(results)} students, {len(results)} T. stddev
  measurements) {walls['main'] / 60:.1f} min{walls_text} (from the first to the last file
  written; the machine was shared with development work part of the time).
- Data: real CIFAR-10, the JPEG q75 copy (not the PNG-exact release), resized once at load to
  {options.get('resize', 32)}x{options.get('resize', 32)} (antialiased bilinear), a seeded
  class-stratified training subset of {options.get('train_subset', 50000):,} images (subset seed
  {options.get('subset_seed', 0)}), the full 10,000-image test set; normalized by the subset's
  own channel statistics.
- Teacher: {teacher_model}, {spec['teacher']['epochs']} epochs, test top-1
  {teacher_summary['last']['test_top1']:.2f} % (loss {teacher_summary['last']['test_loss']:.4f}).
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

## Correlation of T. stddev with S. test loss across the nine DAs

{corr_md}

The correlation is **{verdict}** (two-sided p from scipy; 9 points). The "DAs resampled"
interval bootstraps the nine (DA, mean) points; the "seeds resampled" interval redraws the
{n_seeds} seeds with replacement (the same draw for every DA) and recomputes the coefficient
of the per-DA means. {loo_text}

## Is the DA effect larger than seed noise?

{noise_md}

## The DA order beside the paper's

- Paper (its published figures, CIFAR-100, all four pairs, by T. stddev): {' < '.join(PAPER_ORDER)}
  (flip ~ identity).
- Here by T. stddev: {' < '.join(t_order)}; {agree_t_text}.
- Here by S. test loss: {' < '.join(loss_order)}; {agree_loss_text}.

{chr(10).join(sections)}
## Files

- `per_da.csv`: the table above; `results.csv`: one row per student run (with its T. stddev);
  `correlations.json`: every coefficient with p and both intervals; `effect_vs_noise.json`.
- `report.html` / `report.md` and the PNGs: the scatter and ranking plots of `augkd.report`.
"""
    (out / "README.md").write_text(text, encoding="utf-8")
    table.to_csv(out / "per_da.csv")
    results.to_csv(out / "results.csv", index=False)
    json.dump(corr, open(out / "correlations.json", "w"), indent=2)
    json.dump({"s_test_loss": loss_noise, "s_test_acc": acc_noise, "t_stddev": ts_noise,
               "order_vs_paper": {"t_stddev": agree_t, "s_test_loss": agree_loss},
               "wall_seconds": walls}, open(out / "effect_vs_noise.json", "w"), indent=2)
    if joint_table is not None:
        joint_table.drop(columns=[c for c in joint_table.columns if c.startswith("_")]).to_csv(
            out / "joint_forward_ablation.csv", index=False)
    print(f"report -> {out / 'README.md'}")


if __name__ == "__main__":
    main()
