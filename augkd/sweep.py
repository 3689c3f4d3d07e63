"""``python -m augkd.sweep SPEC``: many runs from one experiment spec, resumable and shardable.

A spec (YAML, see ``experiments/``) is a grid over teacher/student pairs, DAs, epochs, seeds,
balancers and DA modes, plus shared settings::

    name: paper_cifar10
    dataset: {name: imagefolder, root: ../shared/data/cifar10-jpeg.tar.xz}
    pairs: [{teacher: wrn_40_2, student: wrn_16_2}]   # optional per pair: teacher_run: RUN_DIR
    teacher: {epochs: 240}                  # teachers are trained once per model and reused
    grid: {aug: [identity, cutmix], epochs: [240], seed: [0, 1, 2],
           balancer: [manual], mode: [per-image]}
    student: {batch_size: 64}               # any TrainConfig field shared by the students
    tstddev: {epochs: 10, batch_size: 64, modes: [per-image, per-batch]}

It expands into jobs, each with its own folder under the sweep's output folder:

* ``teachers/<model>/``: a teacher run, trained once and shared by every job that needs it
  (a lock file keeps two shards from training the same teacher at once);
* ``tstddev/<pair>/<aug>-<mode>-s<seed>.json``: one T. stddev measurement;
* ``students/<pair>/<aug>/<balancer>-<mode>-e<epochs>-s<seed>/``: one student run.

A killed sweep restarts where it stopped: finished jobs are skipped, a half-done student run
resumes from its checkpoint. ``--shard I/N`` runs the jobs whose index is I modulo N, so N
GPUs or machines split one sweep over a shared folder. ``--dry-run`` lists the jobs. Results
collect into ``results.csv`` (one row per student run) and ``summary.csv`` (mean and std over
seeds), and into one ``results/<pair>-<balancer>-<mode>-e<epochs>-t<tmode>/`` folder per
correlation, in the format ``python -m augkd.report`` reads.

Short schedules without editing the spec: ``--set grid.epochs=[30] teacher.epochs=60``.
Paths in a spec (``dataset.root``, ``teacher_run``) are relative to the current folder.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import fcntl
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from augkd.augment import create
from augkd.augment.pipeline import Normalize
from augkd.balance import BALANCERS
from augkd.cli import run_cli
from augkd.data import DATASETS, load_dataset
from augkd.metrics import correlations, seed_bootstrap_correlations
from augkd.models import MODELS
from augkd.rank import MODES, measure_aug, needs_student_scorer
from augkd.report import write_results
from augkd.training import TrainConfig, default_lr, load_student, load_teacher, train
from augkd.training.checkpoint import atomic_write_text
from augkd.training.config import yaml_error
from augkd.training.run import RunDir, exclusive, safe_name, try_exclusive
from augkd.training.trainer import resolve_device

TOP_KEYS = ("name", "dataset", "pairs", "teacher", "student", "grid", "tstddev", "out", "device")
GRID_KEYS = ("aug", "epochs", "seed", "balancer", "mode")
TSTDDEV_KEYS = ("epochs", "batch_size", "group_size", "modes", "cross_mode")
_STUDENT_FIXED = ("role", "model", "dataset", "root", "teacher", "aug", "epochs", "seed",
                  "balancer", "per_batch")


class SpecError(ValueError):
    """An experiment spec that cannot run; the message names the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Pair:
    teacher: str
    student: str

    @property
    def name(self) -> str:
        return f"{self.teacher}-{self.student}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work of a sweep."""

    kind: str  # "teacher" | "tstddev" | "student"
    pair: Pair | None
    aug: str | None = None
    mode: str | None = None
    seed: int = 0
    epochs: int | None = None
    balancer: str | None = None
    model: str | None = None  # teacher jobs

    @property
    def key(self) -> str:
        if self.kind == "teacher":
            return f"teachers/{self.model}"
        if self.kind == "tstddev":
            return f"tstddev/{self.pair.name}/{safe_name(self.aug)}-{self.mode}-s{self.seed}.json"
        return (f"students/{self.pair.name}/{safe_name(self.aug)}/"
                f"{self.balancer}-{self.mode}-e{self.epochs}-s{self.seed}")


@dataclasses.dataclass
class Sweep:
    """A validated spec and the jobs it expands into."""

    spec: dict[str, Any]
    out: Path

    @property
    def pairs(self) -> list[Pair]:
        return [Pair(p["teacher"], p["student"]) for p in self.spec["pairs"]]

    def jobs(self) -> list[Job]:
        """Every job in a fixed order: teachers, then T. stddev, then students."""
        grid, ts = self.spec["grid"], self.spec["tstddev"]
        teachers = sorted({p.teacher for p in self.pairs})
        jobs = [Job("teacher", None, model=m) for m in teachers]
        for pair, aug, mode, seed in itertools.product(self.pairs, grid["aug"], ts["modes"],
                                                        grid["seed"]):
            jobs.append(Job("tstddev", pair, aug=aug, mode=mode, seed=seed))
        for pair, aug, epochs, seed, balancer, mode in itertools.product(
            self.pairs, grid["aug"], grid["epochs"], grid["seed"], grid["balancer"],
            grid["mode"],
        ):
            jobs.append(Job("student", pair, aug=aug, mode=mode, seed=seed, epochs=epochs,
                            balancer=balancer))
        return jobs

    def shard(self, index: int, count: int) -> list[Job]:
        """The jobs of shard ``index`` of ``count`` (teachers are trained on demand)."""
        work = [j for j in self.jobs() if j.kind != "teacher"]
        return [j for i, j in enumerate(work) if i % count == index]


# ----------------------------------------------------------------------------- the spec
def load_spec(path: str | Path, overrides: list[str] = ()) -> Sweep:
    """Read, override and validate a spec; raise :class:`SpecError` before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"experiment spec not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(yaml_error(path, err)) from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path} must hold a mapping of settings")
    for item in overrides:
        apply_override(spec, item)
    spec = validate_spec(spec, source=str(path))
    out = Path(spec.get("out") or Path("runs") / "sweeps" / spec["name"])
    return Sweep(spec, out)


def apply_override(spec: dict[str, Any], item: str) -> None:
    """Apply ``a.b=value`` (value parsed as YAML) to ``spec`` in place."""
    if "=" not in item:
        raise SpecError(f"override {item!r} must look like key.sub=value")
    dotted, raw = item.split("=", 1)
    keys = dotted.split(".")
    node = spec
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SpecError(f"override {item!r}: {key!r} is not a mapping")
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise SpecError(yaml_error(f"override {item!r}", err)) from None


def _unknown(section: str, given: dict, known: tuple[str, ...]) -> None:
    bad = sorted(set(given) - set(known))
    if bad:
        raise SpecError(f"unknown key(s) {', '.join(bad)} in {section}; known: {', '.join(known)}")


def validate_spec(spec: dict[str, Any], source: str = "spec") -> dict[str, Any]:
    """Check every key and value of a spec; return it with defaults filled in."""
    spec = copy.deepcopy(spec)
    _unknown(source, spec, TOP_KEYS)
    spec.setdefault("name", Path(source).stem)
    dataset = spec.get("dataset", {"name": "digits"})
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise SpecError("dataset must be a name or a mapping with 'name' (and 'root')")
    _unknown("dataset", dataset, ("name", "root", "options"))
    if dataset["name"] not in DATASETS:
        raise SpecError(f"unknown dataset {dataset['name']!r}; known: {', '.join(DATASETS)}")
    spec["dataset"] = dataset
    pairs = spec.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise SpecError("pairs must be a non-empty list of {teacher: MODEL, student: MODEL}")
    for pair in pairs:
        if not isinstance(pair, dict):
            raise SpecError(f"each pair must be a mapping, got {pair!r}")
        _unknown("a pair", pair, ("teacher", "student", "teacher_run"))
        if "teacher_run" in pair:
            pair["teacher_run"] = str(pair["teacher_run"])
        for role in ("teacher", "student"):
            if pair.get(role) not in MODELS:
                raise SpecError(f"unknown {role} model {pair.get(role)!r} in pairs; "
                                f"known: {', '.join(MODELS)}")
    grid = spec.get("grid")
    if not isinstance(grid, dict):
        raise SpecError(f"grid must be a mapping with keys {', '.join(GRID_KEYS)}")
    _unknown("grid", grid, GRID_KEYS)
    defaults = {"epochs": [240], "seed": [0], "balancer": ["manual"], "mode": ["per-image"]}
    for key in GRID_KEYS:
        values = grid.get(key, defaults.get(key))
        if values is None:
            raise SpecError(f"grid.{key} is required (a non-empty list)")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise SpecError(f"grid.{key} must be a non-empty list")
        if len(set(map(str, values))) != len(values):
            raise SpecError(f"grid.{key} lists a value twice: {values}")
        grid[key] = values
    for aug in grid["aug"]:
        try:
            create(aug)
        except ValueError as err:
            raise SpecError(f"grid.aug: {err}") from None
    for key in ("epochs", "seed"):
        for v in grid[key]:
            if not isinstance(v, int) or v < (1 if key == "epochs" else 0):
                raise SpecError(f"grid.{key} values must be integers >= "
                                f"{1 if key == 'epochs' else 0}, got {v!r}")
    for name in grid["balancer"]:
        if name not in BALANCERS:
            raise SpecError(f"unknown balancer {name!r} in grid; known: {', '.join(BALANCERS)}")
    for mode in grid["mode"]:
        if mode not in MODES:
            raise SpecError(f"unknown mode {mode!r} in grid; known: {', '.join(MODES)}")
    teacher = spec.setdefault("teacher", {})
    if not isinstance(teacher, dict):
        raise SpecError("teacher must be a mapping of TrainConfig fields")
    student = spec.setdefault("student", {})
    if not isinstance(student, dict):
        raise SpecError("student must be a mapping of TrainConfig fields")
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    allowed = tuple(f for f in fields if f not in _STUDENT_FIXED)
    _unknown("teacher", teacher, allowed + ("epochs",))
    _unknown("student", student, allowed)
    try:  # every value a run will see, checked now rather than after hours of other runs
        for pair in spec["pairs"]:
            teacher_config(spec, pair["teacher"])
            for aug, balancer in itertools.product(grid["aug"], grid["balancer"]):
                job = Job("student", Pair(pair["teacher"], pair["student"]), aug=aug,
                          mode=grid["mode"][0], epochs=grid["epochs"][0], balancer=balancer)
                student_config(spec, job, teacher="(checked later)")
    except (ValueError, TypeError) as err:
        raise SpecError(f"{source}: {err}") from None
    ts = spec.setdefault("tstddev", {})
    if not isinstance(ts, dict):
        raise SpecError(f"tstddev must be a mapping with keys {', '.join(TSTDDEV_KEYS)}")
    _unknown("tstddev", ts, TSTDDEV_KEYS)
    ts.setdefault("epochs", 10)
    ts.setdefault("batch_size", 64)
    ts.setdefault("group_size", 10)
    ts.setdefault("modes", list(grid["mode"]))
    ts.setdefault("cross_mode", False)
    if not isinstance(ts["cross_mode"], bool):
        raise SpecError(f"tstddev.cross_mode must be true or false, got {ts['cross_mode']!r}")
    if not isinstance(ts["modes"], list) or not ts["modes"]:
        raise SpecError(f"tstddev.modes must be a non-empty list of {', '.join(MODES)}, "
                        f"got {ts['modes']!r}")
    for key in ("epochs", "batch_size", "group_size"):
        if isinstance(ts[key], bool) or not isinstance(ts[key], int) or ts[key] < 1:
            raise SpecError(f"tstddev.{key} must be an integer >= 1, got {ts[key]!r}")
    if not ts["cross_mode"] and not set(grid["mode"]) & set(ts["modes"]):
        raise SpecError(
            f"grid.mode {grid['mode']} and tstddev.modes {ts['modes']} share no mode: students "
            "pair with T. stddev of their own mode; set tstddev.cross_mode: true to pair "
            "across modes"
        )
    for mode in ts["modes"]:
        if mode not in MODES:
            raise SpecError(f"unknown mode {mode!r} in tstddev.modes; known: {', '.join(MODES)}")
    return spec


# ----------------------------------------------------------------------------- running
def teacher_config(spec: dict[str, Any], model: str, **runtime: Any) -> TrainConfig:
    """The teacher run of ``model``: the spec's ``teacher`` section over the recipe's defaults."""
    d, settings = spec["dataset"], {"epochs": 240, **spec["teacher"], **runtime}
    return TrainConfig(role="teacher", model=model, dataset=d["name"], root=d.get("root"),
                       dataset_options=d.get("options", {}),
                       lr=settings.pop("lr", default_lr(model)), **settings)


def student_config(spec: dict[str, Any], job: Job, teacher: str, **runtime: Any) -> TrainConfig:
    """The student run of ``job``: grid point + the spec's ``student`` section."""
    d, settings = spec["dataset"], {**spec["student"], **runtime}
    return TrainConfig(
        role="student", model=job.pair.student, dataset=d["name"], root=d.get("root"),
        dataset_options=d.get("options", {}), teacher=teacher, aug=job.aug,
        per_batch=job.mode == "per-batch", epochs=job.epochs, seed=job.seed,
        balancer=job.balancer, lr=settings.pop("lr", default_lr(job.pair.student)), **settings,
    )


class SweepRunner:
    """Runs the jobs of a sweep, skipping finished ones and resuming half-done ones."""

    def __init__(self, sweep: Sweep, *, progress: bool = True, log=print) -> None:
        self.sweep = sweep
        self.spec = sweep.spec
        self.out = sweep.out
        self.progress = progress
        self.log = log
        self.device = resolve_device(self.spec.get("device", "auto"))
        self._data = None
        self._teachers: dict[str, Any] = {}

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
            recorded = json.loads(path.read_text()).get("settings") or {}
            diff = [k for k, v in self.tstddev_settings(job).items() if recorded.get(k) != v]
        else:
            run = RunDir(path)
            if not run.is_finished():
                return False
            expected = (self.teacher_config(job.model) if job.kind == "teacher" else
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
        self.out.mkdir(parents=True, exist_ok=True)
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
        run.path.parent.mkdir(parents=True, exist_ok=True)
        # An OS lock, released when its holder exits or is killed, so two shards never train
        # the same teacher at once and a killed sweep never leaves a stale lock behind.
        with open(run.path.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log(f"waiting for another shard to train teacher {model}")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if not run.is_finished():
                cfg = self.teacher_config(model)
                train(cfg, run.path, resume=run.config.is_file(), data=self.data, log=self.log)
        return run.path

    def teacher_config(self, model: str) -> TrainConfig:
        """The TrainConfig of the teacher run of ``model`` (spec section ``teacher``)."""
        return teacher_config(self.spec, model, device=str(self.device), progress=self.progress)

    def _run_teacher(self, job: Job) -> None:
        self.teacher_dir(job.model)

    def _teacher(self, model: str):
        if model not in self._teachers:
            self._teachers[model] = load_teacher(self.teacher_dir(model), self.data,
                                                 self.device)[0]
        return self._teachers[model]

    def _scorer(self, job: Job):
        """The frozen trained student that scores ``job``'s pool, trained first if needed."""
        if not needs_student_scorer([job.aug]):
            return None
        scorer = self.scorer_job(job)
        if not self.is_done(scorer):
            self.log(f"  {job.aug} needs a trained student: running {scorer.key} first")
            with self.claim(scorer):
                if not self.is_done(scorer):
                    self._run_student(scorer)
        return load_student(self.out / scorer.key, self.data, self.device,
                            teacher=self.teacher_dir(job.pair.teacher))[0]

    def _run_tstddev(self, job: Job) -> None:
        ts = self.spec["tstddev"]
        teacher = self._teacher(job.pair.teacher)
        student = self._scorer(job)
        result = measure_aug(
            teacher, self.data.train_images.to(self.device), Normalize(self.data.mean,
                                                                        self.data.std),
            job.aug, job.mode, job.seed, student=student, epochs=ts["epochs"],
            batch_size=ts["batch_size"], group_size=ts["group_size"], progress=self.progress,
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

    # ------------------------------------------------------------------------- results
    def collect(self) -> pd.DataFrame:
        """Gather every finished run into results.csv, summary.csv and the report folders."""
        rows = []
        tst = {}
        for job in self.sweep.jobs():
            if job.kind == "tstddev" and self.is_done(job):
                rec = json.loads((self.out / job.key).read_text())
                tst[(job.pair.name, job.aug, job.mode, job.seed)] = rec["t_stddev"]
        for job in self.sweep.jobs():
            if job.kind != "student" or not self.is_done(job):
                continue
            run = RunDir(self.out / job.key)
            summary = json.loads(run.summary.read_text())
            seconds = sum(r.get("epoch_time_s", 0.0) for r in run.read_metrics())
            row = {
                "pair": job.pair.name, "teacher": job.pair.teacher, "student": job.pair.student,
                "aug": job.aug, "mode": job.mode, "epochs": job.epochs, "seed": job.seed,
                "balancer": job.balancer,
                "joint_forward": bool(run.read_config().joint_forward),
                "agb_lambda": summary.get("agb_lambda"),
                "last_test_loss": summary["last"]["test_loss"],
                "last_test_acc": summary["last"]["test_top1"],
                "time_s": seconds,
            }
            for tmode in self.spec["tstddev"]["modes"]:
                row[f"t_stddev_{tmode}"] = tst.get((job.pair.name, job.aug, tmode, job.seed))
            rows.append(row)
        table = pd.DataFrame(rows)
        table.to_csv(self.out / "results.csv", index=False)
        if table.empty:
            self.log("no finished student runs yet")
            return table
        keys = ["pair", "aug", "mode", "epochs", "balancer"]
        values = [c for c in table.columns if c.startswith(("last_", "t_stddev_"))]
        grouped = table.groupby(keys, sort=False)
        summary = grouped[values].mean().join(grouped[values].std(ddof=1).add_suffix("_std"))
        summary["n_seeds"] = grouped.size()
        lambdas = grouped["agb_lambda"].agg(
            lambda v: "/".join(f"{x:g}" for x in v if pd.notna(x)))
        summary["agb_lambda"] = lambdas
        summary.reset_index().to_csv(self.out / "summary.csv", index=False)
        self._write_report_folders(table)
        self.log(f"collected {len(table)} student runs -> {self.out / 'results.csv'}")
        return table

    def _write_report_folders(self, table: pd.DataFrame) -> None:
        for (pair, balancer, mode, epochs), part in table.groupby(
            ["pair", "balancer", "mode", "epochs"], sort=False
        ):
            for tmode in self.spec["tstddev"]["modes"]:
                cross = tmode != mode
                if cross and not self.spec["tstddev"]["cross_mode"]:
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
                teacher, student = pair.split("-", 1)
                summary: dict[str, Any] = {"protocol": {
                    "dataset": self.spec["dataset"]["name"],
                    "dataset_source": self.spec["dataset"].get("root"),
                    "teacher": teacher, "student": student, "student_epochs": int(epochs),
                    "balancer": balancer, "mode": mode, "tstddev_mode": tmode,
                    "pairing": (f"cross-mode: students {mode}, T. stddev {tmode}" if cross
                                else f"same mode ({mode})"),
                    "agb_lambda": "/".join(f"{x:g}" for x in part["agb_lambda"]
                                           if pd.notna(x)) or None,
                    "seeds": int(per_aug["n_seeds"].min()),
                    "tstddev_epochs": self.spec["tstddev"]["epochs"],
                    "sweep": self.spec["name"],
                }}
                if len(per_aug) >= 3:
                    summary.update(correlations(per_aug["t_stddev"].to_numpy(),
                                                per_aug["s_test_loss"].to_numpy()))
                    x = part.pivot(index="aug", columns="seed", values=col)
                    y = part.pivot(index="aug", columns="seed", values="last_test_loss")
                    if x.shape[1] >= 2 and not (x.isna().any().any() or y.isna().any().any()):
                        summary["seed_bootstrap"] = seed_bootstrap_correlations(
                            x.to_numpy(), y.loc[x.index].to_numpy())
                name = (f"{pair}-{balancer}-{mode}-e{epochs}"
                        + (f"-cross-t{tmode}" if cross else ""))
                write_results(self.out / "results" / name, per_aug, summary)


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
        prog="python -m augkd.sweep", description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="Short schedules: --set grid.epochs=[30] teacher.epochs=60. Split over N machines "
        "sharing the output folder: --shard I/N on each. See experiments/*.yaml. Paths in a "
        "spec (dataset.root, teacher_run) are relative to the current folder.",
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
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set) + ([f"out={args.out}"] if args.out else [])
    overrides += [f"device={args.device}"] if args.device else []
    if args.per_batch:
        overrides += ["grid.mode=[per-batch]", "tstddev.modes=[per-batch]"]
    return overrides


def _run(args: argparse.Namespace) -> None:
    if isinstance(args.workers, bool) or args.workers < 1:
        raise SpecError(f"--workers must be an integer >= 1, got {args.workers}")
    sweep = load_spec(args.spec, _overrides(args))
    index, count = parse_shard(args.shard)
    log = print if args.worker_id is None else (lambda m: print(f"[worker {args.worker_id}] {m}",
                                                                flush=True))
    runner = SweepRunner(sweep, progress=not args.no_progress, log=log)
    if args.teachers_only:
        jobs = [j for j in sweep.jobs() if j.kind == "teacher"]
    else:
        jobs = sweep.shard(index, count)
    if args.students_only:
        jobs = [j for j in jobs if j.kind != "tstddev"]
    if args.dry_run:
        for job in jobs:
            print(("done  " if runner.is_done(job) else "todo  ") + job.key)
        print(f"{len(jobs)} jobs in shard {index}/{count} -> {sweep.out}")
        return
    if args.worker_id is not None:  # one of --workers N: run, the parent collects
        runner.run(jobs)
        return
    if not args.collect:
        if args.workers > 1 and not args.teachers_only:
            # teachers first, with every core, then the workers share the rest
            runner.run([j for j in sweep.jobs() if j.kind == "teacher"])
            run_workers(args, args.workers, runner.device, log)
        else:
            runner.run(jobs)
    runner.collect()


def run_workers(args: argparse.Namespace, n: int, device, log=print) -> None:
    """Start ``n`` worker processes on this sweep (same spec, overrides and shard) and wait.

    On the CPU each worker gets ``cores // n`` threads (small CIFAR models at batch 64 are
    overhead-bound: two single-thread processes do about twice the work of one with two
    threads); on a GPU the workers share the device.
    """
    forwarded = [args.spec, "--shard", args.shard, "--no-progress"]
    for flag in ("set",):
        if getattr(args, flag):
            forwarded += ["--set", *getattr(args, flag)]
    for flag in ("out", "device"):
        if getattr(args, flag):
            forwarded += [f"--{flag}", getattr(args, flag)]
    for flag in ("per_batch", "students_only"):
        if getattr(args, flag):
            forwarded.append("--" + flag.replace("_", "-"))
    env = dict(os.environ)
    if device.type == "cpu":
        threads = str(max(1, (os.cpu_count() or 1) // n))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    log(f"starting {n} workers")
    procs = [subprocess.Popen([sys.executable, "-m", "augkd.sweep", *forwarded,
                               "--worker-id", str(i)], env=env) for i in range(n)]
    try:
        codes = [proc.wait() for proc in procs]
    except BaseException:  # Ctrl-C or a kill of the parent: stop the workers too
        for proc in procs:
            proc.terminate()
        raise
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise RuntimeError(f"sweep worker(s) {', '.join(map(str, failed))} failed (exit codes "
                           f"{', '.join(str(codes[i]) for i in failed)}); rerun the sweep to "
                           "continue from the finished jobs")


if __name__ == "__main__":
    sys.exit(main())
