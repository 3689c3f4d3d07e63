"""Does one run's bootstrap SE of T. stddev cover the seed-to-seed spread? A check on rank output.

Reads the ``per_seed.csv`` of a ``python -m augkd.rank --seeds N`` results folder (every
(DA, seed) T. stddev with its one-run bootstrap SE, ``t_stddev_se``) and compares, per DA and
pooled over DAs:

- the seed-to-seed std of T. stddev (ddof 1) with the root mean square of the one-run SEs
  (ratio 1: the one-run error explains the spread; above 1: seeds vary more than one run says);
- the calibration of the one-run SEs: for every pair of seeds of a DA,
  ``z = (x_s - x_t) / sqrt(se_s^2 + se_t^2)``; with calibrated SEs ``z`` is roughly standard
  normal, so the std of ``z`` is about 1 and about 95 % of pairs have ``|z| < 1.96``.

The normal-theory value ``T / sqrt(2 (G - 1)) / sqrt(C)`` (the SE of a sample std of ``G``
normal values, averaged over ``C`` independent classes) is shown beside the bootstrap. With
``--study per_da.csv --groups G --classes C`` it also predicts the one-run SE of a study whose
group means were not kept (its ``per_da.csv``: ``aug``, ``t_stddev``, ``t_stddev_std`` over
seeds) and sets it against that study's seed spread.

Writes ``OUT.csv`` (one row per DA, then ``pooled``) and ``OUT.md``::

    python -m augkd.rank --seeds 5 --out /tmp/unc-digits
    python benchmarks/tstddev_uncertainty.py /tmp/unc-digits \
        --out benchmarks/results/tstddev_uncertainty_digits \
        --study reports/cifar10-cpu/per_da.csv --groups 158 --classes 10
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def normal_theory_se(t_stddev, groups: int, classes: int):
    """SE of T. stddev if the group means were independent normal values per class."""
    return t_stddev / math.sqrt(2 * (groups - 1)) / math.sqrt(classes)


def check(per_seed: pd.DataFrame, classes: int) -> pd.DataFrame:
    """One row per DA and a ``pooled`` row: seeds, mean, seed std, RMS one-run SE, their ratio,
    std of the pairwise z and the share of pairs with ``|z| < 1.96``."""
    rows, all_z, seed_vars, boot_sq = [], [], [], []
    for aug, group in per_seed.groupby("aug", sort=False):
        x, se = group["t_stddev"].to_numpy(float), group["t_stddev_se"].to_numpy(float)
        z = [(x[i] - x[j]) / math.hypot(se[i], se[j])
             for i, j in itertools.combinations(range(len(x)), 2)]
        std, rms = float(x.std(ddof=1)), float(np.sqrt(np.mean(se * se)))
        theory = normal_theory_se(float(x.mean()), int(group["n_groups"].min()), classes)
        rows.append({"aug": aug, "seeds": len(x), "t_stddev": float(x.mean()),
                     "seed_std": std, "one_run_se": rms, "normal_theory_se": theory,
                     "ratio": std / rms,
                     "z_std": float(np.sqrt(np.mean(np.square(z)))),
                     "within_1.96": float(np.mean(np.abs(z) < 1.96))})
        all_z += z
        seed_vars.append(std * std)
        boot_sq.append(rms * rms)
    pooled_std, pooled_se = math.sqrt(np.mean(seed_vars)), math.sqrt(np.mean(boot_sq))
    theory = math.sqrt(np.mean([r["normal_theory_se"] ** 2 for r in rows]))
    rows.append({"aug": "pooled", "seeds": int(per_seed.groupby("aug").size().min()),
                 "t_stddev": float(per_seed["t_stddev"].mean()), "seed_std": pooled_std,
                 "one_run_se": pooled_se, "normal_theory_se": theory,
                 "ratio": pooled_std / pooled_se,
                 "z_std": float(np.sqrt(np.mean(np.square(all_z)))),
                 "within_1.96": float(np.mean(np.abs(all_z) < 1.96))})
    return pd.DataFrame(rows)


def study_check(per_da: pd.DataFrame, groups: int, classes: int) -> pd.DataFrame:
    """A study without group means: its seed std against the normal-theory one-run SE."""
    theory = normal_theory_se(per_da["t_stddev"], groups, classes)
    table = pd.DataFrame({"aug": per_da["aug"], "t_stddev": per_da["t_stddev"],
                          "seed_std": per_da["t_stddev_std"], "normal_theory_se": theory,
                          "ratio": per_da["t_stddev_std"] / theory})
    pooled_std = math.sqrt(float(np.mean(per_da["t_stddev_std"] ** 2)))
    pooled_se = math.sqrt(float(np.mean(theory ** 2)))
    pooled = {"aug": "pooled", "t_stddev": float(per_da["t_stddev"].mean()),
              "seed_std": pooled_std, "normal_theory_se": pooled_se,
              "ratio": pooled_std / pooled_se}
    return pd.concat([table, pd.DataFrame([pooled])], ignore_index=True)


_FORMATS = {"t_stddev": "{:.6f}", "seed_std": "{:.6f}", "one_run_se": "{:.6f}",
            "normal_theory_se": "{:.6f}", "ratio": "{:.2f}", "z_std": "{:.2f}",
            "within_1.96": "{:.0%}"}


def markdown_table(table: pd.DataFrame) -> list[str]:
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_FORMATS[c].format(v) if c in _FORMATS else str(v)
                              for c, v in row.items()) + " |" for row in table.to_dict("records")]
    return [head, rule, *body]


def markdown(table: pd.DataFrame, source: Path, protocol: dict,
             study: tuple[pd.DataFrame, str] | None) -> str:
    scale = ", ".join(f"{k} {protocol.get(k)}" for k in
                      ("dataset", "teacher", "teacher_test_top1", "mode", "tstddev_epochs",
                       "batch_size", "group_size", "seeds"))
    n = int(table["seeds"].min())
    low, high = (math.sqrt(stats.chi2.ppf(q, n - 1) / (n - 1)) for q in (0.025, 0.975))
    lines = ["# One-run bootstrap SE of T. stddev against the seed-to-seed spread", "",
             f"From `{source}/per_seed.csv` ({scale}). `seed_std`: std of T. stddev over the "
             "seeds; `one_run_se`: root mean square of the runs' bootstrap SEs; `ratio`: "
             f"their quotient. With {n} seeds a std alone scatters by chance: 95 % of "
             f"`ratio`s of calibrated SEs fall in [{low:.2f}, {high:.2f}] (chi-square, "
             f"{n - 1} df). `z_std` and `within_1.96`: the seed pairs' differences over their "
             "combined one-run SE (calibrated: about 1 and 95 %).", "",
             *markdown_table(table), ""]
    if study is not None:
        lines += [f"## {study[1]}", "", *markdown_table(study[0]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a rank results folder run with --seeds N")
    parser.add_argument("--out", type=Path, required=True, help="OUT.csv and OUT.md")
    parser.add_argument("--study", type=Path, help="a study's per_da.csv without group means")
    parser.add_argument("--groups", type=int, help="the study's groups per measurement")
    parser.add_argument("--classes", type=int, default=10, help="classes (both data sets)")
    args = parser.parse_args(argv)
    per_seed = pd.read_csv(args.results / "per_seed.csv")
    if "t_stddev_se" not in per_seed or per_seed.groupby("aug").size().min() < 2:
        parser.error(f"{args.results} has no one-run SEs or fewer than 2 seeds per DA")
    protocol = json.loads((args.results / "summary.json").read_text())["protocol"]
    table = check(per_seed, args.classes)
    study = None
    if args.study is not None:
        if args.groups is None:
            parser.error("--study needs --groups")
        study = (study_check(pd.read_csv(args.study), args.groups, args.classes),
                 f"{args.study}: seed std against the normal-theory one-run SE "
                 f"({args.groups} groups, {args.classes} classes)")
        study[0].to_csv(args.out.parent / (args.out.name + "_study.csv"), index=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    args.out.with_suffix(".md").write_text(markdown(table, args.results, protocol, study))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
