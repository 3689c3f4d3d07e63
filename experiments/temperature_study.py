"""Run the temperature study of a spec (experiments/temperature/cpu.yaml): resumable, N workers.

    python experiments/temperature_study.py experiments/temperature/cpu.yaml --workers 2

Every run is a normal augkd run folder under the spec's ``out``:
``<student>/<variant>-T<T>-s<seed>/`` and ``<student>/labels-s<seed>/``; a killed study
restarts where it stopped (finished runs are skipped, a half-done run resumes). Workers take
jobs by an OS lock per job, so two commands on one folder also split the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from augkd.cli import run_worker_processes


def jobs(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run folder name, TrainConfig fields) of every run, in a fixed order."""
    d = spec["dataset"]
    base = {"dataset": d["name"], "root": d.get("root"), "dataset_options": d.get("options", {}),
            "model": spec["student"], "epochs": spec["epochs"], "progress": False}
    out = []
    for seed in spec["seeds"]:
        for student in spec["students"]:
            quant = None if student == "fp" else student
            if spec.get("labels_only"):
                out.append((f"{student}/labels-s{seed}",
                            {**base, "role": "teacher", "quant": quant, "seed": seed}))
            for t in spec["temperatures"]:
                for name, v in spec["variants"].items():
                    w_distill = 1.0 / t**2 if v["w_distill"] == "1/T^2" else float(v["w_distill"])
                    out.append((f"{student}/{name}-T{t:g}-s{seed}", {
                        **base, "role": "student", "quant": quant, "seed": seed,
                        "teacher": spec["teacher_run"], "distill": v["distill"],
                        "balancer": "manual", "w_task": float(v["w_task"]),
                        "w_distill": w_distill, "temperature": float(t)}))
    return out


def work(spec_path: str, out: Path) -> None:
    """Take unclaimed jobs one by one until none is left (one worker)."""
    from augkd.data import load_dataset
    from augkd.training import TrainConfig
    from augkd.training.api import train
    from augkd.training.run import RunDir, try_exclusive

    spec = yaml.safe_load(Path(spec_path).read_text())
    d = spec["dataset"]
    data = load_dataset(d["name"], d.get("root"), **d.get("options", {}))
    todo = jobs(spec)
    for i, (name, fields) in enumerate(todo):
        run = RunDir(out / name)
        if run.is_finished():
            continue
        lock = out / "claims" / (name.replace("/", "__") + ".lock")
        with try_exclusive(lock) as mine:
            if not mine or run.is_finished():
                continue
            cfg = TrainConfig(**fields)
            result = train(cfg, run.path, resume=run.config.is_file(), data=data,
                           log=lambda s: None)
            print(f"[{i + 1}/{len(todo)}] {name}: top-1 {result.summary['last']['test_top1']:.2f}"
                  f" loss {result.summary['last']['test_loss']:.4f}", flush=True)


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
    run_worker_processes(Path(__file__), [args.spec], args.workers, what="temperature study",
                         rerun=f"run the same command again to resume: {' '.join(sys.argv)}")
    print(f"{len(jobs(spec))} runs in {out}")


if __name__ == "__main__":
    main()
