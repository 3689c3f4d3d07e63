"""Collecting a sweep's finished runs: results.csv (one row per student run, last-epoch figures
only), summary.csv (mean and std over seeds) and one report folder per correlation."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from augkd.metrics import correlations, seed_bootstrap_correlations
from augkd.report import write_results
from augkd.sweep.runner import SweepRunner, read_tstddev_record
from augkd.sweep.spec import axes_prefix
from augkd.training.run import RunDir, safe_name


def collect(runner: SweepRunner) -> pd.DataFrame:
    """Gather every finished run into results.csv, summary.csv and the report folders (after
    checking the folder belongs to the runner's spec and removing killed writes' leftovers)."""
    runner.check_folder()
    runner.remove_stale_temporaries()
    rows = []
    tst = {}
    for job in runner.sweep.jobs():
        if job.kind == "tstddev" and runner.is_done(job):
            rec = read_tstddev_record(runner.out / job.key)
            tst[(job.pair.name, job.aug, job.mode, job.seed)] = rec["t_stddev"]
    for job in runner.sweep.jobs():
        if job.kind != "student" or not runner.is_done(job):
            continue
        run = RunDir(runner.out / job.key)
        summary = json.loads(run.summary.read_text())
        seconds = sum(r.get("epoch_time_s", 0.0) for r in run.read_metrics())
        row = {
            "pair": job.pair.name, "teacher": job.pair.teacher, "student": job.pair.student,
            "aug": job.aug, "mode": job.mode, "epochs": job.epochs, "seed": job.seed,
            "distill": job.distill, "optimizer": job.optimizer, "schedule": job.schedule,
            "balancer": job.balancer, "joint_forward": bool(run.read_config().joint_forward),
            "agb_lambda": summary.get("agb_lambda"),
            "last_test_loss": summary["last"]["test_loss"],
            "last_test_acc": summary["last"]["test_top1"],
            "time_s": seconds,
        }
        for tmode in runner.spec["tstddev"]["modes"]:
            row[f"t_stddev_{tmode}"] = tst.get((job.pair.name, job.aug, tmode, job.seed))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(runner.out / "results.csv", index=False)
    if table.empty:
        runner.log("no finished student runs yet")
        return table
    keys = ["pair", "aug", "mode", "epochs", "distill", "optimizer", "schedule", "balancer"]
    values = [c for c in table.columns if c.startswith(("last_", "t_stddev_"))]
    grouped = table.groupby(keys, sort=False)
    summary = grouped[values].mean().join(grouped[values].std(ddof=1).add_suffix("_std"))
    summary["n_seeds"] = grouped.size()
    lambdas = grouped["agb_lambda"].agg(
        lambda v: "/".join(f"{x:g}" for x in v if pd.notna(x)))
    summary["agb_lambda"] = lambdas
    summary.reset_index().to_csv(runner.out / "summary.csv", index=False)
    _write_report_folders(runner, table)
    runner.log(f"collected {len(table)} student runs -> {runner.out / 'results.csv'}")
    return table

def _write_report_folders(runner: SweepRunner, table: pd.DataFrame) -> None:
    for (pair, distill, optimizer, schedule, balancer, mode, epochs), part in table.groupby(
        ["pair", "distill", "optimizer", "schedule", "balancer", "mode", "epochs"], sort=False
    ):
        for tmode in runner.spec["tstddev"]["modes"]:
            cross = tmode != mode
            if cross and not runner.spec["tstddev"]["cross_mode"]:
                continue  # students pair with T. stddev of their own mode
            col = f"t_stddev_{tmode}"
            if part[col].isna().any():
                continue
            per_aug = part.groupby("aug", sort=False).agg(
                t_stddev=(col, "mean"), t_stddev_std=(col, "std"),
                s_test_loss=("last_test_loss", "mean"),
                s_test_loss_std=("last_test_loss", "std"),
                s_test_acc=("last_test_acc", "mean"), s_test_acc_std=("last_test_acc", "std"),
                n_seeds=("seed", "count"),
            ).fillna(0.0).sort_values("t_stddev").reset_index()
            if part["agb_lambda"].notna().any():  # the lambda AGB's search chose, per seed
                chosen = part.groupby("aug", sort=False)["agb_lambda"].agg(
                    lambda v: "/".join(f"{x:g}" for x in v if pd.notna(x)))
                per_aug["agb_lambda"] = per_aug["aug"].map(chosen)
            teacher, student = pair.split("-", 1)
            summary: dict[str, Any] = {"protocol": {
                "dataset": runner.spec["dataset"]["name"],
                "dataset_source": runner.spec["dataset"].get("root"),
                "teacher": teacher, "student": student, "student_epochs": int(epochs),
                "distill": distill, "optimizer": optimizer, "schedule": schedule,
                "balancer": balancer, "mode": mode,
                "tstddev_mode": tmode,
                "pairing": (f"cross-mode: students {mode}, T. stddev {tmode}" if cross
                            else f"same mode ({mode})"),
                "agb_lambda": "/".join(f"{x:g}" for x in part["agb_lambda"]
                                       if pd.notna(x)) or None,
                "seeds": int(per_aug["n_seeds"].min()),
                "tstddev_epochs": runner.spec["tstddev"]["epochs"],
                "sweep": runner.spec["name"],
            }}
            if len(per_aug) >= 3:
                summary.update(correlations(per_aug["t_stddev"].to_numpy(),
                                            per_aug["s_test_loss"].to_numpy()))
                x = part.pivot(index="aug", columns="seed", values=col)
                y = part.pivot(index="aug", columns="seed", values="last_test_loss")
                if x.shape[1] >= 2 and not (x.isna().any().any() or y.isna().any().any()):
                    summary["seed_bootstrap"] = seed_bootstrap_correlations(
                        x.to_numpy(), y.loc[x.index].to_numpy())
            name = (f"{pair}-{axes_prefix(distill, optimizer, schedule)}"
                    f"{safe_name(balancer)}-{mode}-e{epochs}"
                    + (f"-cross-t{tmode}" if cross else ""))
            write_results(runner.out / "results" / name, per_aug, summary)


