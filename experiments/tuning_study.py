"""Run the tuning study of a spec (experiments/tuning/cpu.yaml): resumable, N workers.

    python experiments/tuning_study.py experiments/tuning/cpu.yaml --workers 2

For every seed and method (``<method>/s<seed>/`` under the spec's ``out``):

- ``agb/``: an AGB student run with its lambda search (``agb_search.csv``) on the final schedule;
- ``manual/``: the method's hand-tuned weights on the final schedule;
- ``<tuner>/``: an ``augkd.tune`` study (its own folder: ``study.db``, ``trials/``, ``trials.csv``)
  run until its trials used the largest budget, then ``final-b<B>/`` for every budget B: the best
  beta among the trials finished within the first B epochs, on the final schedule.

Every run is a normal augkd run folder and every study resumes, so a killed study restarts where
it stopped. Workers take jobs by an OS lock per job, so two commands on one folder split the work.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from augkd.cli import run_worker_processes


def jobs(spec: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(folder, kind, method, seed) of every job, seed-major so a partial study covers all."""
    out = []
    for seed in spec["seeds"]:
        for method in spec["methods"]:
            for kind in ("agb", "manual", *spec["tuners"]):
                out.append((f"{method}/s{seed}/{kind}", kind, method, seed))
    return out


def student_fields(spec: dict[str, Any], method: str, seed: int) -> dict[str, Any]:
    d = spec["dataset"]
    return {"role": "student", "dataset": d["name"], "root": d.get("root"),
            "dataset_options": d.get("options", {}), "model": spec["student"],
            "teacher": spec["teacher_run"], "distill": method, "seed": seed,
            "epochs": spec["epochs"], "batch_size": spec["batch_size"], "progress": False}


def best_within(trials_csv: Path, budget: int) -> dict[str, Any] | None:
    """The best complete trial among those finished within the first ``budget`` epochs."""
    with trials_csv.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["number"]))
    spent, best = 0, None
    for row in rows:
        if row["state"] not in ("complete", "pruned"):
            continue
        spent += int(row["epochs"])
        if spent > budget:
            break
        if row["state"] == "complete" and (best is None or float(row["holdout_top1"])
                                           > float(best["holdout_top1"])):
            best = {**row, "spent": spent}
    return best


def run_job(spec: dict[str, Any], out: Path, job: tuple[str, str, str, int], data) -> str:
    from augkd.training import TrainConfig
    from augkd.training.api import train
    from augkd.training.run import RunDir
    from augkd.tune import TuneConfig, tune

    folder, kind, method, seed = job
    base = student_fields(spec, method, seed)
    quiet = dict(data=data, log=lambda s: None)
    if kind in ("agb", "manual"):
        fields = {**base, "balancer": kind}
        if kind == "agb":
            fields.update(agb_search=True, agb_search_epochs=spec["agb"]["search_epochs"],
                          agb_search_lambdas=tuple(spec["agb"]["lambdas"]))
        run = RunDir(out / folder)
        result = train(TrainConfig(**fields), run.path, resume=run.config.is_file(), **quiet)
        return f"test top-1 {result.summary['last']['test_top1']:.2f}"
    tuner = spec["tuners"][kind]
    trial_student = TrainConfig(**{**base, "epochs": tuner["trial_epochs"]})
    study = out / folder
    budgets = sorted(spec["budgets"])
    tune(trial_student, TuneConfig(trials=10_000, max_epochs=budgets[-1], seed=seed,
                                   sampler=tuner["sampler"], pruner=tuner["pruner"]),
         study, **quiet)
    finals = {}
    for budget in budgets:
        best = best_within(study / "trials.csv", budget)
        if best is None:  # no trial finished within this budget
            finals[budget] = None
            continue
        same = [v for v in finals.values() if v and v["trial"] == int(best["number"])]
        if same:  # the same best trial as a smaller budget: the same final run
            finals[budget] = {**same[0], "spent": best["spent"]}
            continue
        run = RunDir(study / f"final-b{budget}")
        cfg = TrainConfig(**{**base, "balancer": "manual", "w_task": 1.0,
                             "w_distill": float(best["w_distill"])})
        result = train(cfg, run.path, resume=run.config.is_file(), **quiet)
        finals[budget] = {"w_distill": float(best["w_distill"]), "trial": int(best["number"]),
                          "holdout_top1": float(best["holdout_top1"]), "spent": best["spent"],
                          "test_top1": result.summary["last"]["test_top1"],
                          "test_loss": result.summary["last"]["test_loss"]}
    (study / "finals.json").write_text(json.dumps(finals, indent=2) + "\n")
    return ", ".join(f"b{b}: " + (f"{v['test_top1']:.2f}" if v else "-")
                     for b, v in finals.items())


def is_done(out: Path, job: tuple[str, str, str, int]) -> bool:
    folder, kind = out / job[0], job[1]
    return (folder / ("summary.json" if kind in ("agb", "manual") else "finals.json")).is_file()


def work(spec_path: str, out: Path) -> None:
    """Take unclaimed jobs one by one until none is left (one worker)."""
    from augkd.data import load_dataset
    from augkd.training.run import try_exclusive

    spec = yaml.safe_load(Path(spec_path).read_text())
    d = spec["dataset"]
    data = load_dataset(d["name"], d.get("root"), **d.get("options", {}))
    todo = jobs(spec)
    for i, job in enumerate(todo):
        if is_done(out, job):
            continue
        with try_exclusive(out / "claims" / (job[0].replace("/", "__") + ".lock")) as mine:
            if not mine or is_done(out, job):
                continue
            print(f"[{i + 1}/{len(todo)}] {job[0]}: {run_job(spec, out, job, data)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    out = Path(spec["out"])
    (out / "claims").mkdir(parents=True, exist_ok=True)
    (out / "spec.yaml").write_text(Path(args.spec).read_text())
    if args.worker_id is not None or args.workers == 1:
        work(args.spec, out)
        return
    # one process a core: small models are overhead-bound (augkd.cli.run_worker_processes)
    run_worker_processes(Path(__file__), [args.spec], args.workers, what="tuning study",
                         rerun=f"run the same command again to resume: {' '.join(sys.argv)}")
    print(f"{len(jobs(spec))} jobs in {out}")


if __name__ == "__main__":
    main()
