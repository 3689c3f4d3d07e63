"""``python -m augkd.sweep``: the command line, shards, ``--workers`` and ``--launcher``.

Where a sweep's jobs run: in this process (the default); in ``--workers N`` processes on this
machine; on N machines sharing the sweep folder, ``--shard I/N`` on each; or as one job array
of K shards submitted through submitit, ``--launcher slurm`` (or ``local``), see
:mod:`augkd.sweep.launch`. However they run, every job runs once (file locks), and a rerun of
the same command continues from the finished jobs. ``--tensorboard`` gives every run of the
sweep TensorBoard scalars (``teacher.tensorboard`` and ``student.tensorboard`` of the spec).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from augkd.cli import (
    WorkersFailedError,
    add_trust_flag,
    apply_trust_flag,
    run_cli,
    run_worker_processes,
    worker_log,
)
from augkd.sweep.launch import add_launcher_arguments, describe, launch_plan, submit_shards
from augkd.sweep.results import collect
from augkd.sweep.runner import ShardWork, SweepRunner
from augkd.sweep.spec import SpecError
from augkd.training.tensorboard import summary_writer_class


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SpecError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise SpecError(f"--shard {text}: need 0 <= I < N")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augkd.sweep",
        description="Many runs from one experiment spec, resumable and shardable.",
        epilog="Short schedules: --set grid.epochs=[30] teacher.epochs=60. Split over N machines "
        "sharing the output folder: --shard I/N on each,\nor submit the shards as one Slurm job "
        "array: --launcher slurm --slurm-partition P --slurm-time 12:00:00 --max-parallel N\n"
        "(docs/cluster.md). See experiments/*.yaml. Paths in a spec (dataset.root, "
        "teacher_run) are relative to the current folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", help="experiment spec (YAML)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override spec values, e.g. grid.epochs=[30] teacher.epochs=60")
    parser.add_argument("--out", help="sweep folder (default: the spec's out or runs/sweeps/NAME)")
    parser.add_argument("--shard", default="0/1", help="run share I of N (default 0/1: all)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and exit")
    parser.add_argument("--teachers-only", action="store_true", help="train the teachers only")
    parser.add_argument("--students-only", action="store_true",
                        help="skip the T. stddev jobs (e.g. a training ablation of the students)")
    parser.add_argument("--collect", action="store_true", help="only gather finished results")
    parser.add_argument("--device", help="override the spec's device")
    parser.add_argument("--per-batch", action="store_true",
                        help="the paper's mode end to end: students and T. stddev per batch")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="N worker processes sharing the sweep (one GPU or the CPU cores); "
                        "each job runs once, claimed with a file lock")
    parser.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tensorboard", action="store_true",
                        help="TensorBoard scalars for every run, in RUN_DIR/tensorboard/ (sets "
                        "teacher.tensorboard and student.tensorboard)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are drawn only on a terminal anyway)")
    add_trust_flag(parser)
    add_launcher_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), rerun="the finished jobs are kept: rerun the same "
                   "command to continue (a run cut short resumes from its checkpoint)")


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set) + ([f"out={args.out}"] if args.out else [])
    overrides += [f"device={args.device}"] if args.device else []
    if args.per_batch:
        overrides += ["grid.mode=[per-batch]", "tstddev.modes=[per-batch]"]
    if args.tensorboard:
        overrides += ["teacher.tensorboard=true", "student.tensorboard=true"]
    return overrides


def shard_work(args: argparse.Namespace) -> ShardWork:
    """The share of the sweep this command runs, as a record."""
    index, count = parse_shard(args.shard)
    return ShardWork(args.spec, tuple(_overrides(args)), index, count,
                     teachers_only=args.teachers_only, students_only=args.students_only,
                     trust_folder=bool(args.trust_folder))


def _check_extras(sweep) -> None:
    """Fail before any run starts when the spec asks for a dependency that is missing."""
    if any(sweep.spec[role].get("tensorboard") for role in ("teacher", "student")):
        summary_writer_class()


def check_dataset_root(sweep, spec_path: str) -> None:
    """Stop, before any job and also under ``--dry-run``, when the spec's ``dataset.root`` does
    not exist here: the shipped specs point at this repository's development data
    (``../shared/...``), so a user learns which ``--set`` to give instead of seeing a loader's
    error inside the first job. A root that ``dataset.options.download`` will fill is left
    alone.

    Raises:
        SpecError: naming the root, the spec, the current folder and the overrides to give.
    """
    d = sweep.spec["dataset"]
    root = d.get("root")
    if root is None or Path(root).exists() or (d.get("options") or {}).get("download"):
        return
    raise SpecError(
        f"dataset.root {root} of {spec_path} does not exist (relative paths are read from "
        f"{Path.cwd()}); give your copy with --set dataset.root=PATH, or fetch the official "
        "CIFAR-10 release with --set dataset.name=cifar10 dataset.root=data "
        "dataset.options.download=true (docs/data.md)")


def _run(args: argparse.Namespace) -> None:
    if isinstance(args.workers, bool) or args.workers < 1:
        raise SpecError(f"--workers must be an integer >= 1, got {args.workers}")
    apply_trust_flag(args)
    plan = launch_plan(args)  # None without --launcher; bad flags fail before the spec loads
    work = shard_work(args)
    sweep = work.sweep()
    check_dataset_root(sweep, args.spec)
    log = print if args.worker_id is None else worker_log(args.worker_id)
    runner = SweepRunner(sweep, progress=not args.no_progress, log=log)
    jobs = work.jobs(sweep)
    if args.dry_run:
        for job in jobs:
            print(("done  " if runner.is_done(job) else "todo  ") + job.key)
        print(f"{len(jobs)} jobs in shard {work.index}/{work.count} -> {sweep.out}")
        if plan is not None:
            describe(plan, runner, work)
        return
    if not args.collect:
        _check_extras(sweep)
    if args.worker_id is not None:  # a task of --workers N or --launcher: run, the parent collects
        runner.run(jobs)
        return
    if plan is not None:
        # one task per shard: a worker on shard I/K; the submitter collects when all are done
        finished = submit_shards(plan, runner, work, log)
        if not finished:  # --no-wait
            return
    elif not args.collect:
        if args.workers > 1 and not args.teachers_only:
            # teachers first, with every core, then the workers share the rest
            runner.run([j for j in sweep.jobs() if j.kind == "teacher"])
            try:
                run_workers(args, args.workers, runner.device, log)
            except WorkersFailedError:  # what the other workers finished still counts
                collect(runner)
                raise
        else:
            runner.run(jobs)
    collect(runner)


def forwarded_args(args: argparse.Namespace, shard: str) -> list[str]:
    """The command line of a worker or array task: this sweep (spec, overrides, folder,
    device, modes) on ``--shard shard``, without progress bars."""
    forwarded = [args.spec, "--shard", shard, "--no-progress"]
    if args.set:
        forwarded += ["--set", *args.set]
    for flag in ("out", "device"):
        if getattr(args, flag):
            forwarded += [f"--{flag}", getattr(args, flag)]
    for flag in ("per_batch", "students_only", "tensorboard", "trust_folder"):
        if getattr(args, flag):
            forwarded.append("--" + flag.replace("_", "-"))
    return forwarded


def run_workers(args: argparse.Namespace, n: int, device, log=print) -> None:
    """Start ``n`` worker processes on this sweep (same spec, overrides and shard) and wait.

    On the CPU each worker gets ``cores // n`` threads (small CIFAR models at batch 64 are
    overhead-bound: two single-thread processes do about twice the work of one with two
    threads); on a GPU the workers share the device.
    """
    log(f"starting {n} workers")
    run_worker_processes("augkd.sweep", forwarded_args(args, args.shard), n, what="sweep",
                         rerun="rerun the sweep to continue from the finished jobs",
                         cpu_threads=device.type == "cpu")
