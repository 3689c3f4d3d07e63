"""Experiment specs: reading, overriding and validating them, and the jobs a grid expands into.

Every value a run will see is checked here, before the first teacher trains, and each error
names the key; :func:`teacher_config` and :func:`student_config` map a spec and a job to the
:class:`~augkd.training.TrainConfig` of the run.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from augkd.augment import create
from augkd.data import DATASETS, accepted_options
from augkd.data.dataset import TRANSFORM_OPTIONS, USE_OPTIONS
from augkd.distill import DEFAULT_DISTILLER, resolve_method
from augkd.models import MODELS
from augkd.ranking.config import MODES
from augkd.training import TrainConfig, default_lr
from augkd.training.config import MAX_SEED, yaml_error
from augkd.training.optim import resolve_optimizer, resolve_schedule
from augkd.training.run import safe_name

TOP_KEYS = ("name", "dataset", "pairs", "teacher", "student", "grid", "tstddev", "out", "device")
GRID_KEYS = ("aug", "epochs", "seed", "balancer", "mode", "distill", "optimizer", "schedule")
#: Grid values that leave a student's folder name as it was before their axis existed.
FOLDER_DEFAULTS = {"optimizer": "sgd", "schedule": "multistep"}
TSTDDEV_KEYS = ("epochs", "batch_size", "group_size", "modes", "cross_mode")
_STUDENT_FIXED = ("role", "model", "dataset", "root", "dataset_options", "teacher", "aug",
                  "epochs", "seed",
                  "balancer", "per_batch", "distill", "optimizer", "schedule")


class SpecError(ValueError):
    """An experiment spec that cannot run; the message names the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Pair:
    teacher: str
    student: str

    @property
    def name(self) -> str:
        # a folder name: library specs hold ':', '(' and paths (tv:resnet18(weights=/w.pth))
        return safe_name(f"{self.teacher}-{self.student}")


def axes_prefix(distill: str, optimizer: str, schedule: str) -> str:
    """The part of a student's folder name its method, optimizer and schedule add, e.g.
    ``crd-adamw-cosine_warmup_5_-``; "" for KD with the defaults, so the folders of sweeps from
    before these axes keep their names."""
    values = {"distill": distill, "optimizer": optimizer, "schedule": schedule}
    defaults = {"distill": DEFAULT_DISTILLER, **FOLDER_DEFAULTS}
    return "".join(f"{safe_name(v)}-" for k, v in values.items() if v != defaults[k])


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
    distill: str = DEFAULT_DISTILLER
    optimizer: str = FOLDER_DEFAULTS["optimizer"]
    schedule: str = FOLDER_DEFAULTS["schedule"]


    @property
    def key(self) -> str:
        if self.kind == "teacher":
            return f"teachers/{safe_name(self.model)}"
        if self.kind == "tstddev":
            return f"tstddev/{self.pair.name}/{safe_name(self.aug)}-{self.mode}-s{self.seed}.json"
        return (f"students/{self.pair.name}/{safe_name(self.aug)}/"
                f"{axes_prefix(self.distill, self.optimizer, self.schedule)}"
                f"{safe_name(self.balancer)}-{self.mode}-e{self.epochs}-s{self.seed}")


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
        for pair, aug, epochs, seed, distill, optimizer, schedule, balancer, mode in (
            itertools.product(self.pairs, grid["aug"], grid["epochs"], grid["seed"],
                              grid["distill"], grid["optimizer"], grid["schedule"],
                              grid["balancer"], grid["mode"])):
            jobs.append(Job("student", pair, aug=aug, mode=mode, seed=seed, epochs=epochs,
                            balancer=balancer, distill=distill, optimizer=optimizer,
                            schedule=schedule))
        return jobs

    def shard(self, index: int, count: int) -> list[Job]:
        """The jobs of shard ``index`` of ``count`` (teachers are trained on demand)."""
        work = [j for j in self.jobs() if j.kind != "teacher"]
        return [j for i, j in enumerate(work) if i % count == index]


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
    bad = sorted((k for k in given if k not in known), key=repr)
    if bad:
        shown = ", ".join(k if isinstance(k, str) and k.isprintable() else repr(k) for k in bad)
        raise SpecError(f"unknown key(s) {shown} in {section}; known: {', '.join(known)}")


def validate_spec(spec: dict[str, Any], source: str = "spec") -> dict[str, Any]:
    """Check every key and value of a spec; return it with defaults filled in."""
    spec = copy.deepcopy(spec)
    _unknown(source, spec, TOP_KEYS)
    spec.setdefault("name", Path(source).stem)
    name = spec["name"]
    if not isinstance(name, str) or not name or safe_name(name) != name or name in (".", ".."):
        raise SpecError(f"name must be a non-empty file name (letters, digits, -_.+), got "
                        f"{name!r}")
    if "out" in spec and spec["out"] is not None and not isinstance(spec["out"], str):
        raise SpecError(f"out must be a folder path, got {spec['out']!r}")
    if "device" in spec and not (isinstance(spec["device"], str)
                                 and re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec["device"])):
        raise SpecError(f"device must be auto, cpu, cuda or cuda:N, got {spec['device']!r}")
    dataset = spec.get("dataset", {"name": "digits"})
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise SpecError("dataset must be a name or a mapping with 'name' (and 'root')")
    _unknown("dataset", dataset, ("name", "root", "options"))
    if dataset["name"] not in DATASETS:
        raise SpecError(f"unknown dataset {dataset['name']!r}; known: {', '.join(DATASETS)}")
    options = dataset.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"dataset.options must be a mapping, got {options!r}")
    accepted = accepted_options(dataset["name"]) + list(TRANSFORM_OPTIONS) + list(USE_OPTIONS)
    _unknown("dataset.options", options, tuple(accepted))
    for key in ("resize", "train_subset"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise SpecError(f"dataset.options.{key} must be a positive integer, got {value!r}")
    spec["dataset"] = dataset
    pairs = spec.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise SpecError("pairs must be a non-empty list of {teacher: MODEL, student: MODEL}")
    for pair in pairs:
        if not isinstance(pair, dict):
            raise SpecError(f"each pair must be a mapping, got {pair!r}")
        _unknown("a pair", pair, ("teacher", "student", "teacher_run"))
        if "teacher_run" in pair:
            if not isinstance(pair["teacher_run"], str) or not pair["teacher_run"]:
                raise SpecError(f"pairs: teacher_run must be a path, got {pair['teacher_run']!r}")
        for role in ("teacher", "student"):
            if pair.get(role) not in MODELS:
                raise SpecError(f"unknown {role} model {pair.get(role)!r} in pairs; "
                                f"known: {', '.join(MODELS)}")
    grid = spec.get("grid")
    if not isinstance(grid, dict):
        raise SpecError(f"grid must be a mapping with keys {', '.join(GRID_KEYS)}")
    _unknown("grid", grid, GRID_KEYS)
    defaults = {"epochs": [240], "seed": [0], "balancer": ["manual"], "mode": ["per-image"],
                "distill": [DEFAULT_DISTILLER], "optimizer": [FOLDER_DEFAULTS["optimizer"]],
                "schedule": [FOLDER_DEFAULTS["schedule"]]}
    for key in GRID_KEYS:
        values = grid.get(key, defaults.get(key))
        if values is None:
            raise SpecError(f"grid.{key} is required (a non-empty list)")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise SpecError(f"grid.{key} must be a non-empty list")
        nested = [v for v in values if isinstance(v, list | dict)]
        if nested:
            raise SpecError(f"grid.{key} must list plain values, got {nested[0]!r} inside")
        if len(set(map(str, values))) != len(values):
            raise SpecError(f"grid.{key} lists a value twice: {values}")
        grid[key] = values
    for key in ("aug", "distill", "optimizer", "schedule"):  # parts of job folder names
        folders: dict[str, Any] = {}
        for value in grid[key]:
            name = safe_name(str(value))
            if name in folders:
                raise SpecError(
                    f"grid.{key}: {folders[name]!r} and {value!r} map to one job folder name "
                    f"{name!r} (characters other than letters, digits and -_.+ become _); "
                    "write one of them differently")
            folders[name] = value
    for aug in grid["aug"]:
        try:
            for mode in grid["mode"]:  # e.g. an albumentations DA has no per-batch draw
                create(aug, per_batch=True if mode == "per-batch" else None)
        except ValueError as err:
            raise SpecError(f"grid.aug: {err}") from None
    for key in ("epochs", "seed"):
        for v in grid[key]:
            if (isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "epochs" else 0)
                    or v > MAX_SEED):
                raise SpecError(f"grid.{key} values must be integers in "
                                f"[{1 if key == 'epochs' else 0}, 2**63 - 1], got {v!r}")
    for method in grid["distill"]:
        try:
            resolve_method(method)
        except ValueError as err:
            raise SpecError(f"grid.distill: {err}") from None
    for balancer in grid["balancer"]:
        try:
            TrainConfig(balancer=balancer).balancer_options(check=True)
        except ValueError as err:
            raise SpecError(f"grid.balancer: {err}") from None
    for mode in grid["mode"]:
        if mode not in MODES:
            raise SpecError(f"unknown mode {mode!r} in grid; known: {', '.join(MODES)}")
    for optimizer in grid["optimizer"]:
        try:
            resolve_optimizer(str(optimizer))
        except ValueError as err:
            raise SpecError(f"grid.optimizer: {err}") from None
    for schedule in grid["schedule"]:
        try:
            resolve_schedule(str(schedule)).check(min(grid["epochs"]))
        except ValueError as err:
            raise SpecError(f"grid.schedule: {err}") from None
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
    # every value a run will see, checked now rather than after hours of other runs; a field's
    # message starts with its name, which becomes the full dotted key
    for pair in spec["pairs"]:
        try:
            teacher_config(spec, pair["teacher"])
        except (ValueError, TypeError) as err:
            raise SpecError(f"{source}: teacher.{err}") from None
        for aug, balancer, epochs, distill, optimizer, schedule in itertools.product(
            grid["aug"], grid["balancer"], grid["epochs"], grid["distill"], grid["optimizer"],
            grid["schedule"],
        ):
            job = Job("student", Pair(pair["teacher"], pair["student"]), aug=aug,
                      mode=grid["mode"][0], epochs=epochs, balancer=balancer, distill=distill,
                      optimizer=optimizer, schedule=schedule)
            try:
                student_config(spec, job, teacher="(checked later)")
            except (ValueError, TypeError) as err:
                raise SpecError(f"{source}: student.{err}") from None
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
    if (not isinstance(ts["modes"], list)
            or not all(isinstance(m, str) for m in ts["modes"])):
        raise SpecError(f"tstddev.modes must be a list of {', '.join(MODES)} (empty: no "
                        f"T. stddev, students only), got {ts['modes']!r}")
    for key in ("epochs", "batch_size", "group_size"):
        if isinstance(ts[key], bool) or not isinstance(ts[key], int) or ts[key] < 1:
            raise SpecError(f"tstddev.{key} must be an integer >= 1, got {ts[key]!r}")
    if ts["modes"] and not ts["cross_mode"] and not set(grid["mode"]) & set(ts["modes"]):
        raise SpecError(
            f"grid.mode {grid['mode']} and tstddev.modes {ts['modes']} share no mode: students "
            "pair with T. stddev of their own mode; set tstddev.cross_mode: true to pair "
            "across modes"
        )
    for mode in ts["modes"]:
        if mode not in MODES:
            raise SpecError(f"unknown mode {mode!r} in tstddev.modes; known: {', '.join(MODES)}")
    return spec


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
        balancer=job.balancer, distill=job.distill, optimizer=job.optimizer,
        schedule=job.schedule,
        lr=settings.pop("lr", default_lr(job.pair.student)), **settings,
    )


