"""``python -m augkd.sweep SPEC``: many runs from one experiment spec, resumable and shardable.

A spec (YAML, see ``experiments/``) is a grid over teacher/student pairs, DAs, epochs, seeds,
distillation methods, balancers and DA modes, plus shared settings::

    name: paper_cifar10
    dataset: {name: imagefolder, root: PATH/cifar10-jpeg.tar.xz}
    pairs: [{teacher: wrn_40_2, student: wrn_16_2}]   # optional per pair: teacher_run: RUN_DIR
    teacher: {epochs: 240}                  # teachers are trained once per model and reused
    grid: {aug: [identity, cutmix], epochs: [240], seed: [0, 1, 2],
           balancer: [manual], mode: [per-image], distill: [kd, crd]}
    student: {batch_size: 64}               # any TrainConfig field shared by the students
    tstddev: {epochs: 10, batch_size: 64, modes: [per-image, per-batch]}   # modes: [] skips it

It expands into jobs, each with its own folder under the sweep's output folder:

* ``teachers/<model>/``: a teacher run, trained once and shared by every job that needs it
  (a lock file keeps two shards from training the same teacher at once);
* ``tstddev/<pair>/<aug>-<mode>-s<seed>.json``: one T. stddev measurement;
* ``students/<pair>/<aug>/[<method>-]<balancer>-<mode>-e<epochs>-s<seed>/``: one student run
  (the method prefix for every method but the default ``kd``).

A killed sweep restarts where it stopped: finished jobs are skipped, a half-done student run
resumes from its checkpoint. ``--shard I/N`` runs the jobs whose index is I modulo N, so N
GPUs or machines split one sweep over a shared folder. ``--dry-run`` lists the jobs. Results
collect into ``results.csv`` (one row per student run) and ``summary.csv`` (mean and std over
seeds), and into one ``results/<pair>-<balancer>-<mode>-e<epochs>/`` folder per correlation
(students and T. stddev of the same mode; ``-cross-t<tmode>`` for a cross-mode pairing), in the
format ``python -m augkd.report`` reads. ``--workers N`` runs N processes on one machine;
``--launcher slurm --max-parallel N`` submits the shards as one Slurm job array through
submitit and collects when it is done (``--launcher local``: the same on this machine; see
``docs/cluster.md``). ``--tensorboard`` gives every run TensorBoard scalars.

Short schedules without editing the spec: ``--set grid.epochs=[30] teacher.epochs=60``.
Paths in a spec (``dataset.root``, ``teacher_run``) are relative to the current folder.

The package, one idea a module: :mod:`~augkd.sweep.spec` (reading and validating specs, the
grid's jobs), :mod:`~augkd.sweep.runner` (running jobs: claims, teachers, scorers, resumes),
:mod:`~augkd.sweep.results` (collecting finished runs into tables and report folders),
:mod:`~augkd.sweep.launch` (a sweep's shards as one submitit job array, ``--launcher``) and
:mod:`~augkd.sweep.cli` (the command line, shards and ``--workers``).
"""

from augkd.sweep.cli import build_parser, main, parse_shard, run_workers
from augkd.sweep.runner import SweepRunner
from augkd.sweep.spec import (
    Job,
    Pair,
    SpecError,
    Sweep,
    apply_override,
    load_spec,
    student_config,
    teacher_config,
    validate_spec,
)

__all__ = [
    "Job", "Pair", "SpecError", "Sweep", "SweepRunner", "apply_override", "build_parser",
    "load_spec", "main", "parse_shard", "run_workers", "student_config", "teacher_config",
    "validate_spec",
]
