"""``--launcher slurm|local``: a sweep's shards as one job array, through submitit.

::

    python -m augkd.sweep SPEC --launcher slurm --slurm-partition gpu --slurm-time 12:00:00 \\
        --max-parallel 8                 # 8 shards, one array, all 8 tasks at once
    python -m augkd.sweep SPEC --launcher slurm ... --max-parallel 8 --shards 32 --no-wait

The submitting process splits the sweep into K shards (``--shards``, default
``--max-parallel``), the same ``--shard I/K`` shares as on K machines, and submits ONE job
array whose task I runs ``python -m augkd.sweep SPEC --shard I/K`` on the shared sweep folder;
Slurm runs at most ``--max-parallel`` of them at once. The runner's file locks make every job
run once (a teacher, or cutmixpick-s's scorer student, needed by several shards is trained
by the first and waited for by the others), so the folder must be on a file system whose
``flock`` works across nodes (NFSv4, Lustre mounted with ``flock``, GPFS, BeeGFS). Then the
submitter waits and collects ``results.csv`` as a local sweep does; ``--no-wait`` prints the
job ids and returns (collect later with ``--collect``). Shards whose jobs are all finished are
not submitted, so the same command continues a sweep.

Each task's stdout and stderr go to ``<sweep out>/slurm/<job id>/``. A task that reaches its
``--slurm-time`` (or is preempted) is requeued by submitit, up to 3 times, and continues from
the finished jobs and the half-done run's last epoch checkpoint.

``--launcher local`` runs the same array on this machine with submitit's LocalExecutor (one
process per shard, all at once, sharing this machine's GPUs or CPU cores): a rehearsal of the
cluster path, and what the tests use. Without ``--launcher`` the sweep runs in this process
(or in ``--workers N`` processes), as before. Needs ``pip install "augkd[slurm]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shutil
from typing import Any

from augkd.cli import worker_log
from augkd.extras import require
from augkd.sweep.runner import ShardWork, SweepRunner
from augkd.sweep.spec import SpecError

LAUNCHERS = ("local", "slurm")
# submitit's local default kills a task after 2 minutes; a local shard runs until it is done
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
# sbatch options that augkd sets itself (or that have their own --slurm-* flag)
_OWN_SBATCH = ("array", "cpus-per-task", "error", "gpus-per-task", "job-name", "mem",
               "nodes", "ntasks-per-node", "open-mode", "output", "partition", "signal", "time")
_SLURM_FLAGS = ("slurm_partition", "slurm_time", "slurm_gpus_per_task", "slurm_cpus_per_task",
                "slurm_mem", "slurm_option")
_LAUNCH_FLAGS = ("max_parallel", "shards", "no_wait")


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--launcher`` flags of ``python -m augkd.sweep``."""
    group = parser.add_argument_group(
        "cluster (submitit)",
        "the sweep's shards as one job array (augkd/sweep/launch.py, docs/cluster.md);\n"
        'needs pip install "augkd[slurm]"')
    group.add_argument("--launcher", choices=LAUNCHERS, default=None,
                       help="submit the shards as one job array: slurm, or local (submitit's "
                       "LocalExecutor, this machine); default: run in this process (or in "
                       "--workers N)")
    group.add_argument("--max-parallel", type=int, default=None, metavar="N",
                       help="array tasks running at once (required with --launcher)")
    group.add_argument("--shards", type=int, default=None, metavar="K",
                       help="array tasks (shards --shard I/K) in all (default: --max-parallel)")
    group.add_argument("--no-wait", action="store_true",
                       help="print the job ids and return; gather the results later with "
                       "--collect")
    group.add_argument("--slurm-partition", metavar="P",
                       help="sbatch --partition (default: the cluster's default partition)")
    group.add_argument("--slurm-time", metavar="TIME",
                       help="each task's wall-clock limit (required with --launcher slurm): "
                       "MINUTES, HH:MM:SS or D-HH:MM:SS")
    group.add_argument("--slurm-gpus-per-task", type=int, default=None, metavar="G",
                       help="GPUs per task (default 1; 0 for a CPU partition)")
    group.add_argument("--slurm-cpus-per-task", type=int, default=None, metavar="C",
                       help="CPU cores per task (default: the partition's)")
    group.add_argument("--slurm-mem", metavar="MEM",
                       help="memory per task, e.g. 32G (default: the partition's)")
    group.add_argument("--slurm-option", nargs="+", default=[], metavar="KEY=VALUE",
                       help="more sbatch options, e.g. account=myproject qos=high "
                       "constraint=a100 (KEY alone for a bare flag)")


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """What to submit: the launcher, K shards, at most N at once, the executor's settings."""

    launcher: str
    max_parallel: int
    shards: int
    wait: bool
    parameters: dict[str, Any]  # submitit AutoExecutor.update_parameters, less name and folder


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name)  # 0 is a given value (and == False): compare by identity
    return not (value is None or value is False or value == [])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    if value is True:
        return _flag(name)
    if isinstance(value, list):
        return f"{_flag(name)} {' '.join(value)}"
    return f"{_flag(name)} {value}"


def launch_plan(args: argparse.Namespace) -> LaunchPlan | None:
    """The plan of ``--launcher`` (None without it), every flag checked.

    Raises:
        SpecError: a flag that does not apply, or a bad value; the message names both.
    """
    launcher = args.launcher
    where = f"--launcher {launcher}" if launcher else "no --launcher"
    for name in _SLURM_FLAGS:
        if _given(args, name) and launcher != "slurm":
            raise SpecError(f"{_shown(args, name)} applies to --launcher slurm only (got {where})")
    for name in _LAUNCH_FLAGS:
        if _given(args, name) and launcher is None:
            raise SpecError(f"{_shown(args, name)} applies to --launcher local or slurm only")
    if launcher is None:
        return None
    if args.workers != 1:
        raise SpecError(f"--workers {args.workers} runs processes on this machine; with "
                        f"--launcher {launcher} the array's tasks run in parallel "
                        "(--max-parallel N)")
    if args.shard != "0/1":
        raise SpecError(f"--shard {args.shard}: --launcher {launcher} makes the shards itself "
                        "(--shards K); drop --shard")
    if args.collect:
        raise SpecError(f"--collect only gathers finished results; drop --launcher {launcher}")
    if args.teachers_only:
        raise SpecError(f"--teachers-only with --launcher {launcher} would train every teacher "
                        "in every task; run it without --launcher, or let the shards train the "
                        "teachers they need (once each, under a lock)")
    if args.max_parallel is None:
        raise SpecError(f"--launcher {launcher} needs --max-parallel N: how many array tasks "
                        "run at once")
    for name in ("max_parallel", "shards"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SpecError(f"{_flag(name)} must be an integer >= 1, got {value}")
    shards = args.shards if args.shards is not None else args.max_parallel
    if launcher == "local":
        if shards > args.max_parallel:
            raise SpecError(f"--launcher local starts every shard at once: --shards {shards} > "
                            f"--max-parallel {args.max_parallel}; drop --shards or raise "
                            "--max-parallel")
        parameters = {"timeout_min": LOCAL_TIMEOUT_MIN}
    else:
        parameters = _slurm_parameters(args)
    return LaunchPlan(launcher, args.max_parallel, shards, not args.no_wait, parameters)


def _slurm_parameters(args: argparse.Namespace) -> dict[str, Any]:
    if args.slurm_time is None:
        raise SpecError("--launcher slurm needs --slurm-time, each task's wall-clock limit (e.g. "
                        "12:00:00 or 2-00:00:00); submitit would ask for 5 minutes")
    parameters: dict[str, Any] = {
        "timeout_min": parse_slurm_time(args.slurm_time), "nodes": 1, "tasks_per_node": 1,
        "slurm_array_parallelism": args.max_parallel,
    }
    if args.slurm_partition is not None:
        parameters["slurm_partition"] = args.slurm_partition
    gpus = 1 if args.slurm_gpus_per_task is None else args.slurm_gpus_per_task
    if gpus < 0:
        raise SpecError(f"--slurm-gpus-per-task must be an integer >= 0, got {gpus}")
    if gpus:
        parameters["slurm_gpus_per_task"] = gpus
    if args.slurm_cpus_per_task is not None:
        if args.slurm_cpus_per_task < 1:
            raise SpecError(f"--slurm-cpus-per-task must be an integer >= 1, got "
                            f"{args.slurm_cpus_per_task}")
        parameters["cpus_per_task"] = args.slurm_cpus_per_task
    if args.slurm_mem is not None:
        if not re.fullmatch(r"[1-9]\d*[KMGT]?", args.slurm_mem):
            raise SpecError(f"--slurm-mem must be a size such as 32G or 64000M (K, M, G, T; "
                            f"no suffix: MB), got {args.slurm_mem!r}")
        parameters["slurm_mem"] = args.slurm_mem
    extra: dict[str, Any] = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", key) or (sep and not value):
            raise SpecError(f"--slurm-option must look like KEY=VALUE (e.g. account=myproject) "
                            f"or KEY, got {item!r}")
        if key.replace("_", "-") in _OWN_SBATCH:
            raise SpecError(f"--slurm-option {item}: augkd sets sbatch --{key} itself; use "
                            f"its --slurm-* flag or leave it")
        extra[key] = value if sep else True
    if extra:
        parameters["slurm_additional_parameters"] = extra
    return parameters


def parse_slurm_time(text: str) -> int:
    """Slurm's time formats (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``) -> whole minutes, rounded up.

    Raises:
        SpecError: another format, or a zero time.
    """
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if match is None:
        raise SpecError(f"--slurm-time must look like MINUTES, HH:MM:SS or D-HH:MM:SS, got "
                        f"{text!r}")
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    if days is None:  # M, M:S or H:M:S
        if second is None:
            seconds = 60 * first
        elif third is None:
            seconds = 60 * first + second
        else:
            seconds = 3600 * first + 60 * second + third
    else:  # D-H, D-H:M or D-H:M:S
        seconds = 86400 * days + 3600 * first + 60 * (second or 0) + (third or 0)
    if seconds <= 0:
        raise SpecError(f"--slurm-time must be longer than 0, got {text!r}")
    return math.ceil(seconds / 60)


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One array task: a shard of the sweep (:class:`~augkd.sweep.runner.ShardWork`), run in
    folder ``cwd``.

    A picklable callable: submitit runs it in the task's process. ``environ`` is set first
    (None unsets a variable), ``threads`` caps torch's CPU threads. ``checkpoint`` makes a task
    that is timed out or preempted requeue itself: the shard then continues from its finished
    jobs and checkpoints. An error is raised as it is, so the task's log shows it.
    """

    work: ShardWork
    cwd: str
    environ: tuple[tuple[str, str | None], ...] = ()
    threads: int | None = None

    def __call__(self) -> None:
        os.chdir(self.cwd)  # the spec's relative paths are relative to the submitting folder
        for name, value in self.environ:
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        self.work.run(log=worker_log(self.work.index))

    def checkpoint(self) -> Any:
        """What submitit requeues when the task is timed out or preempted: this same task."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def pending_shards(runner: SweepRunner, count: int, work: ShardWork) -> list[int]:
    """The shards of ``count`` that hold an unfinished job (the ones worth submitting)."""
    sweep = runner.sweep
    return [i for i in range(count)
            if not all(runner.is_done(j) for j in work.of_shard(i, count).jobs(sweep))]


def shard_count(plan: LaunchPlan, runner: SweepRunner, log=print) -> int:
    """``plan.shards``, less when the sweep has fewer (non-teacher) jobs than that."""
    n_jobs = sum(1 for j in runner.sweep.jobs() if j.kind != "teacher")
    if plan.shards > n_jobs:
        log(f"--shards {plan.shards} but the sweep has {n_jobs} jobs: {n_jobs} shards")
    return min(plan.shards, n_jobs)


def describe(plan: LaunchPlan, runner: SweepRunner,
             work: ShardWork, log=print) -> None:
    """What ``--dry-run`` says ``plan`` would submit."""
    count = shard_count(plan, runner, log)
    todo = pending_shards(runner, count, work)
    log(f"--launcher {plan.launcher} would submit {len(todo)} of {count} shards as one job "
        f"array, at most {plan.max_parallel} at once")


def submit_shards(
    plan: LaunchPlan, runner: SweepRunner, work: ShardWork, log=print,
) -> bool:
    """Submit the unfinished shards as one job array and (unless ``--no-wait``) wait for it.

    Args:
        work: this command's share of the sweep; each task runs ``work.of_shard(I, K)``.

    Returns:
        Whether every task has finished (False after ``--no-wait``).

    Raises:
        RuntimeError: tasks failed; the message names their shards and logs.
    """
    submitit = require("submitit", package="submitit", extra="slurm",
                       feature=f"--launcher {plan.launcher}")
    missing = [c for c in ("sbatch", "srun") if plan.launcher == "slurm" and not shutil.which(c)]
    if missing:
        raise SpecError(f"--launcher slurm: {' and '.join(missing)} not found on PATH; submit "
                        "from a machine of the Slurm cluster (or try --launcher local here)")
    count = shard_count(plan, runner, log)
    todo = pending_shards(runner, count, work)
    if not todo:
        log(f"sweep {runner.spec['name']}: every job is done, nothing to submit")
        return True
    environ, threads = (), None
    if plan.launcher == "local":
        # submitit hides the GPUs from a local task unless told which; the shards share this
        # machine's as --workers do (and its cores, one share each, on the CPU)
        environ = (("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES")),)
        if runner.device.type == "cpu":
            threads = max(1, (os.cpu_count() or 1) // len(todo))
    logs = runner.out / "slurm"
    executor = submitit.AutoExecutor(folder=logs / "%j", cluster=plan.launcher)
    executor.update_parameters(name=f"augkd-{runner.spec['name']}", **plan.parameters)
    tasks = [ShardTask(work.of_shard(i, count), os.getcwd(), environ, threads)
             for i in todo]
    with executor.batch():
        jobs = [executor.submit(task) for task in tasks]
    ids = " ".join(job.job_id for job in jobs)
    log(f"submitted {len(jobs)} {plan.launcher} task(s), shards "
        f"{', '.join(f'{i}/{count}' for i in todo)}, at most {plan.max_parallel} at once: "
        f"job ids {ids}; logs in {logs}")
    if not plan.wait:
        print(ids)
        log("gather the results when they are done: python -m augkd.sweep SPEC --collect "
            f"--out {runner.out}")
        return False
    return wait_for(jobs, todo, count, plan, log)


def wait_for(jobs: list, todo: list[int], count: int, plan: LaunchPlan, log=print) -> bool:
    """Wait until every task has ended; raise naming the failed ones and their logs."""
    from submitit.helpers import as_completed

    shard_of = {job.job_id: i for job, i in zip(jobs, todo, strict=True)}
    failed = []
    try:
        for job in as_completed(
                jobs, poll_frequency=1 if plan.launcher == "local" else 30):
            error = job.exception()
            state = "failed" if error is not None else "finished"
            log(f"shard {shard_of[job.job_id]}/{count} (job {job.job_id}) {state}")
            if error is not None:
                failed.append(job)
    except KeyboardInterrupt:
        if plan.launcher == "slurm":
            stop = "scancel " + " ".join(sorted({j.job_id.split("_")[0] for j in jobs}))
        else:
            stop = "kill " + " ".join(j.job_id for j in jobs)
        log(f"stopped waiting; the tasks keep running (stop them with: {stop}); gather "
            "the results later with --collect")
        raise
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(jobs)} sweep task(s) failed: "
            + "; ".join(f"shard {shard_of[j.job_id]}/{count}, log {j.paths.stderr}"
                        for j in failed)
            + ". Rerun the same command to continue from the finished jobs")
    return True
