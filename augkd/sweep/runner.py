"""Running a sweep's jobs: each claimed by one process, finished ones skipped, half-done ones
resumed; teachers trained once under a lock, cutmixpick-s's scorer trained on demand."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from augkd.augment.pipeline import Normalize
from augkd.data import load_dataset
from augkd.files import remove_stale_temporaries
from augkd.ranking.measure import measure_aug, needs_student_scorer
from augkd.sweep.spec import (
    FOLDER_DEFAULTS,
    Job,
    SpecError,
    Sweep,
    load_spec,
    student_config,
    teacher_config,
)
from augkd.training import TrainConfig, load_student, load_teacher, train
from augkd.training.api import train_once
from augkd.training.checkpoint import atomic_write_text
from augkd.training.loading import teacher_input_stats
from augkd.training.run import RunDir, exclusive, safe_name, try_exclusive
from augkd.training.trainer import resolve_device
from augkd.trust import trust_folders


def read_tstddev_record(path: Path) -> dict[str, Any]:
    """A T. stddev job's JSON record; a damaged one is a SpecError naming the file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as err:
        raise SpecError(f"{path} is not a T. stddev record (damaged JSON: {err.msg}, line "
                        f"{err.lineno}); remove it to measure that job again") from None
    if not isinstance(record, dict) or not isinstance(record.get("t_stddev"), int | float):
        raise SpecError(f"{path} is not a T. stddev record (a JSON object with a number "
                        f"t_stddev), got {type(record).__name__}; remove it to measure that job "
                        "again")
    return record


#: Spec keys that say where and how visibly a sweep runs, not what it computes.
_RUNTIME_KEYS = ("device", "out", "progress", "tensorboard")


def spec_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys where the spec ``new`` differs from the spec ``old`` a folder was made
    with, less the runtime keys; a ``grid`` list may gain values, not lose them."""
    if isinstance(old, dict) and isinstance(new, dict):
        diff = []
        for key in sorted(set(old) | set(new), key=str):
            if key in _RUNTIME_KEYS:
                continue
            name = f"{prefix}{key}"
            if prefix == "grid." and isinstance(old.get(key), list) and isinstance(
                    new.get(key), list):
                lost = [v for v in old[key] if v not in new[key]]
                if lost:
                    diff.append(f"{name} drops {', '.join(map(str, lost))}")
                continue
            diff += spec_differences(old.get(key), new.get(key), name + ".")
        return diff
    if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True,
                                                                   default=str):
        return [prefix.rstrip(".")]
    return []


class SweepRunner:
    """Runs the jobs of a sweep, skipping finished ones and resuming half-done ones."""

    def __init__(self, sweep: Sweep, *, progress: bool = True, log=print) -> None:
        self.sweep = sweep
        self.spec = sweep.spec
        self.out = sweep.out
        self.progress = progress
        self.log = log
        self._data = None
        self._teachers: dict[str, Any] = {}

    @functools.cached_property
    def device(self) -> torch.device:
        """The spec's device, resolved when a job first needs it: listing, collecting and
        submitting a sweep (``--launcher slurm`` from a login node) need no GPU."""
        return resolve_device(self.spec.get("device", "auto"))

    @property
    def data(self):
        if self._data is None:
            d = self.spec["dataset"]
            self._data = load_dataset(d["name"], d.get("root"), **d.get("options", {}))
        return self._data

    @property
    def given_teachers(self) -> dict[str, str]:
        """Teacher runs named in the spec's pairs (``teacher_run``), by teacher model."""
        return {p["teacher"]: p["teacher_run"] for p in self.spec["pairs"] if "teacher_run" in p}

    def is_done(self, job: Job) -> bool:
        """Whether ``job`` has finished, with the settings the spec asks for now.

        Raises:
            SpecError: a finished job was run with other settings (a changed ``--set`` on the
                same sweep folder): its results would silently stand for the new ones.
        """
        path = self.out / job.key
        if job.kind == "teacher" and job.model in self.given_teachers:
            return True
        if job.kind != "teacher":  # results made with another teacher are stale too
            self.is_done(Job("teacher", None, model=job.pair.teacher))
        if job.kind == "tstddev":
            if not path.is_file():
                return False
            recorded = read_tstddev_record(path).get("settings") or {}
            diff = [k for k, v in self.tstddev_settings(job).items() if recorded.get(k) != v]
        else:
            run = RunDir(path)
            if not run.is_finished():
                return False
            # without the runtime fields (device, progress), which the comparison ignores
            expected = (teacher_config(self.spec, job.model) if job.kind == "teacher" else
                        student_config(self.spec, job, teacher=str(self.teacher_path(job))))
            diff = run.read_config().differences(expected)
        if diff:
            raise SpecError(
                f"{path} was run with other settings ({', '.join(diff)}) than the spec now asks "
                "for; give this sweep another --out (or remove that run)"
            )
        return True

    def teacher_path(self, job: Job) -> Path:
        """Where the teacher of a student job lives (without training it)."""
        model = job.pair.teacher
        return Path(self.given_teachers.get(model, self.out / "teachers" / model))

    def tstddev_settings(self, job: Job) -> dict[str, Any]:
        """What a T. stddev measurement depends on besides its job key."""
        settings = {**{k: self.spec["tstddev"][k] for k in ("epochs", "batch_size",
                                                             "group_size")},
                    "teacher": str(self.teacher_path(job))}
        if needs_student_scorer([job.aug]):
            settings["scorer"] = str(self.out / self.scorer_job(job).key)
        return settings

    def scorer_job(self, job: Job) -> Job:
        """The student run whose frozen weights score cutmixpick-s's pool for ``job``: the
        pair's crop+flip KD student of the same mode and seed, at the grid's first epochs
        and balancer (a run of the grid itself when crop+flip is in it)."""
        grid = self.spec["grid"]
        return Job("student", job.pair, aug="crop+flip", mode=job.mode, seed=job.seed,
                   epochs=grid["epochs"][0], balancer=grid["balancer"][0])

    def claim(self, job: Job, wait: bool = True):
        """The OS lock that makes one process at a time run ``job`` (workers, shards)."""
        path = self.out / "claims" / (safe_name(job.key) + ".lock")
        if wait:
            return exclusive(path, self.log, job.key)
        return try_exclusive(path)

    def run(self, jobs: list[Job]) -> None:
        """Run every unfinished job of ``jobs``.

        Each job is claimed with an OS lock first, so several processes (``--workers``, or
        shards that overlap) can run the same list: a job claimed by another process is put
        off, and after the pass each put-off job is waited for and run only if it is still
        unfinished. Every job therefore runs exactly once.
        """
        self.check_folder()
        self.out.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temporaries()
        atomic_write_text(yaml.safe_dump(self.spec, sort_keys=False), self.out / "spec.yaml")
        todo = [j for j in jobs if not self.is_done(j)]
        self.log(f"sweep {self.spec['name']}: {len(jobs)} jobs, {len(jobs) - len(todo)} "
                 f"already done, {len(todo)} to run -> {self.out}")
        put_off = []
        for i, job in enumerate(todo, 1):
            with self.claim(job, wait=False) as claimed:
                if not claimed:
                    put_off.append(job)
                    continue
                self._run_claimed(job, f"[{i}/{len(todo)}]")
        for job in put_off:
            with self.claim(job):
                self._run_claimed(job, "[put off]")

    def _run_claimed(self, job: Job, tag: str) -> None:
        if self.is_done(job):  # another process finished it
            return
        t0 = time.perf_counter()
        self.log(f"{tag} {job.key}")
        getattr(self, f"_run_{job.kind}")(job)
        self.log(f"{tag} done in {time.perf_counter() - t0:.1f} s")

    def teacher_dir(self, model: str) -> Path:
        """The finished teacher run of ``model``, training it first if needed (once)."""
        if model in self.given_teachers:  # trained elsewhere (load_teacher checks the data)
            return Path(self.given_teachers[model])
        run = RunDir(self.out / "teachers" / model)
        if run.is_finished():
            return run.path
        # two shards or workers never train the same teacher at once
        return train_once(self.teacher_config(model), run.path, data=self.data, log=self.log,
                          what=f"teacher {model}")

    def teacher_config(self, model: str) -> TrainConfig:
        """The TrainConfig of the teacher run of ``model`` (spec section ``teacher``)."""
        return teacher_config(self.spec, model, device=str(self.device), progress=self.progress)

    def _run_teacher(self, job: Job) -> None:
        self.teacher_dir(job.model)

    def _teacher(self, model: str):
        """The frozen teacher and its manifest."""
        if model not in self._teachers:
            self._teachers[model] = load_teacher(self.teacher_dir(model), self.data,
                                                 self.device)
        return self._teachers[model]

    def _scorer(self, job: Job):
        """The frozen trained student that scores ``job``'s pool, trained first if needed."""
        if not needs_student_scorer([job.aug]):
            return None
        scorer = self.scorer_job(job)
        if not self.is_done(scorer):
            self.log(f"  {job.aug} needs a trained student: running {scorer.key} first")
            with self.claim(scorer):
                self._run_claimed(scorer, "  [scorer]")
        return load_student(self.out / scorer.key, self.data, self.device,
                            teacher=self.teacher_dir(job.pair.teacher))[0]

    def _run_tstddev(self, job: Job) -> None:
        ts = self.spec["tstddev"]
        teacher, manifest = self._teacher(job.pair.teacher)
        student = self._scorer(job)
        data = self.data
        images = (data.train_images.to(self.device) if data.images_on(self.device)
                  else data.train_images)  # larger than the device: gathered per batch
        result = measure_aug(
            teacher, images, Normalize(*teacher_input_stats(manifest, data)),
            job.aug, job.mode, job.seed, student=student, epochs=ts["epochs"],
            batch_size=ts["batch_size"], group_size=ts["group_size"], progress=self.progress,
            teacher_name=f"teacher {self.teacher_path(job)}", base_aug=data.base_aug,
            device=self.device,
        )
        record = {"pair": job.pair.name, "aug": job.aug, "mode": job.mode, "seed": job.seed,
                  "settings": self.tstddev_settings(job),
                  "t_stddev": result.value, "n_groups": result.n_groups,
                  "seconds": result.seconds, "group_means": result.group_means.tolist()}
        path = self.out / job.key
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(record), path)
        self.log(f"  T. stddev {result.value:.6f}")

    def _run_student(self, job: Job) -> None:
        cfg = student_config(
            self.spec, job, teacher=str(self.teacher_dir(job.pair.teacher)),
            device=str(self.device), progress=self.progress,
        )
        run = RunDir(self.out / job.key)
        train(cfg, run.path, resume=run.config.is_file(), data=self.data, log=self.log)

    def remove_stale_temporaries(self) -> None:
        """Delete the temporary files that killed atomic writes left anywhere in the sweep
        folder (spec.yaml, T. stddev records, results tables, report folders, run folders);
        those of running workers and shards stay."""
        for path in remove_stale_temporaries(self.out):
            self.log(f"removed {path.relative_to(self.out)}, left by a write that was killed")

    def check_folder(self) -> None:
        """A sweep folder belongs to one spec: refuse a spec that differs from its spec.yaml
        in anything but where it runs, or that drops grid values (adding DAs, seeds, epochs...
        to a sweep is fine; collecting a subset would rewrite its tables with less).

        Raises:
            SpecError: names spec.yaml and the differing dotted keys.
        """
        path = self.out / "spec.yaml"
        if not path.is_file():
            return
        try:
            old = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise SpecError(f"{path} is not valid YAML ({err}); it names the spec of this "
                            "sweep folder") from None
        if not isinstance(old, dict):
            raise SpecError(f"{path} must hold the sweep's spec (a mapping), got "
                            f"{type(old).__name__}")
        if isinstance(old.get("grid"), dict):  # a folder from before these grid axes
            for key, value in FOLDER_DEFAULTS.items():
                old["grid"].setdefault(key, [value])
        diff = spec_differences(old, self.spec)
        if diff:
            raise SpecError(
                f"{self.out} belongs to another spec: {path} has other settings "
                f"({', '.join(diff)}); give this spec another --out (a sweep folder may "
                "gain grid values, never lose or change them)")


@dataclasses.dataclass(frozen=True)
class ShardWork:
    """One share of a sweep as a record: what a ``--workers`` process, a ``--shard`` command or
    a submitted array task runs (picklable; :meth:`run` runs it in this process).

    Attributes:
        spec: the spec file; relative paths in it are relative to the current folder.
        overrides: ``key=value`` overrides of the spec (``--set`` and the flags that map onto
            spec keys), in order.
        index, count: shard ``index`` of ``count`` (0 of 1: every job).
        teachers_only: run the teacher jobs only (all of them, whatever the shard).
        students_only: skip the T. stddev jobs.
        trust_folder: trust the folders read (:func:`augkd.trust.trust_folders`).
    """

    spec: str
    overrides: tuple[str, ...] = ()
    index: int = 0
    count: int = 1
    teachers_only: bool = False
    students_only: bool = False
    trust_folder: bool = False

    def sweep(self) -> Sweep:
        return load_spec(self.spec, list(self.overrides))

    def jobs(self, sweep: Sweep) -> list[Job]:
        """The jobs of this share of ``sweep``."""
        if self.teachers_only:
            jobs = [j for j in sweep.jobs() if j.kind == "teacher"]
        else:
            jobs = sweep.shard(self.index, self.count)
        if self.students_only:
            jobs = [j for j in jobs if j.kind != "tstddev"]
        return jobs

    def of_shard(self, index: int, count: int) -> ShardWork:
        return dataclasses.replace(self, index=index, count=count)

    def run(self, *, progress: bool = False, log=print) -> None:
        """Run this share's unfinished jobs (each claimed with a file lock, so shares of one
        sweep run at once in any number of processes)."""
        trust_folders(self.trust_folder)
        sweep = self.sweep()
        SweepRunner(sweep, progress=progress, log=log).run(self.jobs(sweep))
