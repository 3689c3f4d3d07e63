"""Property-based fuzzing of augkd's input surfaces: DA specs, training configs, sweep specs, CLIs.

Every generated input goes through the real entry point and its outcome is classified:

* ``accepted``: the call returned;
* ``rejected``: a clean user error, i.e. an exception the CLIs turn into one ``error: ...``
  line (``augkd.cli.USER_ERRORS``: ValueError incl. SpecError/UnknownNameError, OSError incl.
  FileNotFoundError, KeyError) whose message is one non-empty line, or argparse's
  ``SystemExit(2)``;
* ``traceback``: any other exception type, or a clean type with a multi-line/empty message
  (the CLI would print a traceback, or a broken error line);
* ``hang``: the call ran longer than ``--case-timeout`` seconds.

Independently, an oracle written from augkd's documented ranges (see README.md) says which
inputs are valid. An accepted input the oracle calls invalid, or an accepted result whose
values break the documented ranges, is ``accepted-but-invalid``. A rejected input the oracle
calls valid is counted as ``rejected-but-valid`` (informational: the oracle may be stricter or
looser than the docs in corner cases; it is not asserted).

Targets: ``augment`` (``augkd.augment.create``), ``trainconfig`` (``TrainConfig.from_dict``),
``yaml`` (YAML text -> ``TrainConfig.from_yaml``, i.e. ``read_yaml_mapping`` + ``from_dict``),
``sweep`` (``augkd.sweep.load_spec`` on mutations of experiments/digits_smoke.yaml, with and
without ``--set`` overrides), ``cli-train`` (``augkd.train.config_from_args`` on parsed argv)
and ``cli-rank`` (``augkd.rank.RankConfig`` built from parsed argv as ``augkd.rank.main`` does).
Nothing trains: every entry point stops at validation.

    python benchmarks/fuzz/fuzz.py --examples 2000 --seed 0 --out benchmarks/fuzz/result.md

``tests/test_fuzz.py`` imports this file by path and runs a quick profile of the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import math
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SMOKE_SPEC = REPO / "experiments" / "digits_smoke.yaml"

ACCEPTED, REJECTED, TRACEBACK, HANG = "accepted", "rejected", "traceback", "hang"
INF, NAN = float("inf"), float("nan")
MAX_SEED = 2**63 - 1


# ----------------------------------------------------------------------------------------------
# classification


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that runs too long (BaseException: never 'clean')."""


@dataclasses.dataclass
class Record:
    target: str
    input: str  # a repr of the input, as a reproducer
    outcome: str  # accepted | rejected | traceback | hang
    detail: str = ""  # the exception (type: message @ file:line), or empty
    invalid: list[str] = dataclasses.field(default_factory=list)  # oracle violations if accepted
    rejected_valid: bool = False  # rejected although the oracle found the input valid
    seconds: float = 0.0

    @property
    def accepted_invalid(self) -> bool:
        return self.outcome == ACCEPTED and bool(self.invalid)


def _clean_errors() -> tuple[type[BaseException], ...]:
    try:
        from augkd.cli import USER_ERRORS

        return tuple(USER_ERRORS)
    except ImportError:  # pragma: no cover - the CLI module moved
        return (ValueError, OSError, KeyError)


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):  # the innermost frame inside augkd, else the innermost
        if "/augkd/" in frame.filename.replace("\\", "/"):
            return f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})"
    if frames:
        return f"{Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})"
    return "?"


def _short(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def classify(
    target: str,
    shown: str,
    call: Callable[[], Any],
    input_problems: list[str] | None = None,
    post: Callable[[Any], list[str]] | None = None,
    timeout: float = 10.0,
) -> Record:
    """Run ``call`` and classify what it did (see the module docstring).

    ``input_problems``: the oracle's verdict on the input (``[]`` valid, a list of reasons if
    invalid, None if the oracle has no opinion); ``post``: the oracle on an accepted result.
    """
    clean = _clean_errors()

    def alarm(signum, frame):
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    try:
        try:
            value = call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CaseTimeout:
        return Record(target, shown, HANG, f"no answer within {timeout:g} s",
                      seconds=time.perf_counter() - t0)
    except SystemExit as err:
        seconds = time.perf_counter() - t0
        if err.code == 2:
            return Record(target, shown, REJECTED, "SystemExit(2) (argparse)",
                          rejected_valid=input_problems == [], seconds=seconds)
        return Record(target, shown, TRACEBACK, f"SystemExit({err.code!r})", seconds=seconds)
    except Exception as err:  # noqa: BLE001 - classifying every exception is the point
        seconds = time.perf_counter() - t0
        message = str(err)
        detail = f"{type(err).__name__}: {_short(message)!r} @ {_where(err)}"
        one_line = bool(message.strip()) and "\n" not in message and "\r" not in message
        if isinstance(err, clean) and one_line:
            return Record(target, shown, REJECTED, detail, rejected_valid=input_problems == [],
                          seconds=seconds)
        if isinstance(err, clean):
            detail = "multi-line or empty message: " + detail
        return Record(target, shown, TRACEBACK, detail, seconds=seconds)
    finally:
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    problems = list(input_problems or [])
    if post is not None and not problems:  # the result's values, unless the input was bad
        try:
            problems += [p for p in post(value) if p not in problems]
        except Exception as err:  # noqa: BLE001 - an accepted value the oracle cannot read
            problems.append(f"oracle could not read the accepted value: {err!r}")
    return Record(target, shown, ACCEPTED, invalid=problems, seconds=seconds)


# ----------------------------------------------------------------------------------------------
# the oracle: what the documentation says is valid (written independently of the checks)


def _num(v: Any) -> float | None:
    """``v`` as a float if it is a real number (bools excluded) and representable, else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def _finite(v: Any) -> bool:
    x = _num(v)
    return x is not None and math.isfinite(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# DA parameters: name -> param -> check(value, all_params) -> problem or None
def _float_in(lo: float, hi: float, lo_open: bool) -> Callable[[Any, dict], str | None]:
    def check(v: Any, _: dict) -> str | None:
        x = _num(v)
        if x is None or not math.isfinite(x):
            return f"{v!r} is not a finite number"
        if (x <= lo if lo_open else x < lo) or x > hi:
            return f"{v!r} outside {'(' if lo_open else '['}{lo:g}, {hi:g}]"
        return None
    return check


def _int_in(lo: int, hi: int | None = None) -> Callable[[Any, dict], str | None]:
    def check(v: Any, _: dict) -> str | None:
        if not _is_int(v):
            return f"{v!r} is not an integer"
        if v < lo or (hi is not None and v > hi):
            return f"{v!r} outside [{lo}, {'inf' if hi is None else hi}]"
        return None
    return check


def _choice(*options: str) -> Callable[[Any, dict], str | None]:
    def check(v: Any, _: dict) -> str | None:
        return None if isinstance(v, str) and v in options else f"{v!r} not one of {options}"
    return check


def _bool(v: Any, _: dict) -> str | None:
    return None if isinstance(v, bool) else f"{v!r} is not true/false"


def _magnitude(v: Any, params: dict) -> str | None:
    bins = params.get("num_magnitude_bins", 31)
    if not _is_int(bins):
        return None  # reported on num_magnitude_bins
    return _int_in(0, bins - 1)(v, params)


MAX_SIDE, MAX_CONC, MAX_POOL = 4096, 1e4, 64
DA_RULES: dict[str, dict[str, Callable[[Any, dict], str | None]]] = {
    "identity": {},
    "flip": {"p": _float_in(0, 1, False)},
    "crop": {"padding": _int_in(0, MAX_SIDE)},
    "crop+flip": {"padding": _int_in(0, MAX_SIDE), "p": _float_in(0, 1, False)},
    "cutout": {"size": _int_in(1, MAX_SIDE)},
    "mixup": {"alpha": _float_in(0, MAX_CONC, True)},
    "cutmix": {"beta": _float_in(0, MAX_CONC, True)},
    "cutmixpick": {"score": _choice("teacher", "student", "kl"), "k": _int_in(1, MAX_POOL),
                   "beta": _float_in(0, MAX_CONC, True)},
    "autoaugment": {"policy": _choice("cifar10", "imagenet", "svhn")},
    "randaugment": {"num_ops": _int_in(1), "magnitude": _magnitude,
                    "num_magnitude_bins": _int_in(2)},
    "trivialaugment": {"num_magnitude_bins": _int_in(2)},
}
for _rules in DA_RULES.values():
    _rules["per_batch"] = _bool
DA_ALIASES = {"cutmixpick-t": ("cutmixpick", {"score": "teacher"}),
              "cutmixpick-s": ("cutmixpick", {"score": "student"})}
# parameters whose default is None (None is a valid attribute value, not writable in a spec)
DA_OPTIONAL = {("crop", "padding"), ("crop+flip", "padding"), ("cutout", "size")}

_TOO_LONG = object()  # an integer literal Python refuses to convert (over 4300 digits)


def da_value(raw: str) -> Any:
    """A spec value as the grammar documents: quoted -> str, true/false -> bool, int, float, str."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", raw):
        try:
            return int(raw)
        except ValueError:
            return _TOO_LONG
    try:
        return float(raw)
    except ValueError:
        return raw


def _da_registered() -> set[str]:
    from augkd.augment import AUGMENTATIONS

    return set(AUGMENTATIONS.names())


def _da_signature(name: str) -> set[str] | None:
    from augkd.augment import AUGMENTATIONS
    from augkd.augment.spec import spec_parameters

    if name not in AUGMENTATIONS:
        return None
    return set(spec_parameters(AUGMENTATIONS.get(name)))


def _split_pick(spec: str) -> tuple[str, str] | None:
    """``("autoaugment", "by=teacher")`` for ``pick(autoaugment, by=teacher)``: the nested DA
    spec (up to the first comma outside brackets and quotes) and the rest; None when ``spec``
    is not ``pick(`` with a first argument that is not key=value."""
    m = re.fullmatch(r"\s*pick\s*\((.*)\)\s*", spec, re.DOTALL)
    if m is None:
        return None
    args, depth, quote, end = m.group(1), 0, "", len(m.group(1))
    for i, char in enumerate(args):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            end = i
            break
    nested = args[:end].strip()
    if not nested or re.match(r"[A-Za-z_]\w*\s*=", nested):
        return None
    return nested, args[end + 1:]


def da_spec_problems(spec: Any) -> list[str]:
    """Why ``spec`` is not a valid DA spec (empty list: valid)."""
    if not isinstance(spec, str):
        return [f"spec is a {type(spec).__name__}, not a string"]
    if re.match(r"\s*(kornia|albumentations):", spec):
        return []  # external DAs: their libraries judge the values, not this oracle
    picked = _split_pick(spec)
    if picked is not None:  # pick(SPEC, key=value, ...): the nested DA judged on its own
        nested, rest = picked
        if _split_pick(nested) is not None:
            return ["pick of a pick"]
        return [f"in pick: {p}" for p in da_spec_problems(nested)] + da_spec_problems(
            f"pick({rest})")
    m = re.fullmatch(r"\s*([A-Za-z][\w+\-]*)\s*(?:\((.*)\))?\s*", spec, re.DOTALL)
    if m is None:
        return ["not name or name(key=value, ...)"]
    name, args = m.group(1), m.group(2)
    params: dict[str, Any] = {}
    if args is not None and args.strip():
        for item in args.split(","):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key) or not raw or "(" in raw \
                    or ")" in raw:
                return [f"{item.strip()!r} is not key=value"]
            if key in params:
                return [f"{key!r} given twice"]
            params[key] = da_value(raw)
    if name in DA_ALIASES:
        target, fixed = DA_ALIASES[name]
        if set(fixed) & set(params):
            return [f"{name} fixes {sorted(set(fixed) & set(params))}"]
        name, params = target, {**fixed, **params}
    if name not in _da_registered():
        return [f"unknown DA {name!r}"]
    rules = DA_RULES.get(name)
    signature = _da_signature(name) or set()
    problems = []
    for key, value in params.items():
        if value is _TOO_LONG:
            problems.append(f"{name}.{key}: integer literal too long")
            continue
        rule = (rules or {}).get(key)
        if rule is None:
            if key not in signature:
                problems.append(f"{name}: unknown parameter {key!r}")
            continue  # a parameter the oracle does not know: not judged
        problem = rule(value, params)
        if problem:
            problems.append(f"{name}.{key}: {problem}")
    return problems


def da_object_problems(aug: Any) -> list[str]:
    """Range violations in the attributes of an accepted DA object."""
    name = getattr(type(aug), "name", None)
    rules = DA_RULES.get(name)
    if rules is None:
        return []
    params = {k: getattr(aug, k) for k in rules if hasattr(aug, k)}
    problems = []
    for key, value in params.items():
        if value is None and (name, key) in DA_OPTIONAL:
            continue
        problem = rules[key](value, params)
        if problem:
            problems.append(f"accepted {name} has {key}={value!r}: {problem}")
    return problems


# TrainConfig
ROLES = ("teacher", "student")
MAX_TEMPERATURE = 1000.0


def _train_fields() -> dict[str, str]:
    from augkd.training.config import TrainConfig

    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def _train_defaults() -> dict[str, Any]:
    from augkd.training.config import TrainConfig

    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _type_problem(name: str, value: Any, hint: str) -> str | None:
    if value is None and "None" in hint:
        return None
    base = hint.replace(" | None", "")
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "int": _is_int,
        "float": lambda v: _num(v) is not None or (_is_int(v)),
        "str": lambda v: isinstance(v, str),
    }.get(base)
    if ok is None and base.startswith("tuple"):
        ok = lambda v: isinstance(v, list | tuple) and all(  # noqa: E731
            _is_int(x) or isinstance(x, float) for x in v)
    if ok is None and base.startswith("dict"):
        ok = lambda v: isinstance(v, dict)  # noqa: E731
    if ok is None or ok(value):
        return None
    return f"{name}={value!r} is not {hint}"


def config_problems(data: Any) -> list[str]:
    """Why ``data`` (a dict of TrainConfig fields) is not a valid config (empty list: valid).

    Not judged here (checked later, before any work, by design): whether ``dataset`` exists,
    ``dataset_options`` (load_dataset), ``device`` (resolved when a run starts), the length of
    mean/std against the image channels, and the teacher path.
    """
    from augkd.balance import BALANCERS
    from augkd.models import MODELS

    if not isinstance(data, dict):
        return [f"config is a {type(data).__name__}, not a mapping"]
    fields = _train_fields()
    problems = [f"unknown key {k!r}" for k in data if not (isinstance(k, str) and k in fields)]
    cfg = {**_train_defaults(), **{k: v for k, v in data.items() if k in fields}}
    for name, hint in fields.items():
        if name in cfg:
            p = _type_problem(name, cfg[name], hint)
            if p:
                problems.append(p)
    if problems:
        return problems

    def need(ok: bool, text: str) -> None:
        if not ok:
            problems.append(text)

    def rng(name: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
        v = cfg.get(name)
        x = _num(v)
        ok = x is not None and math.isfinite(x) and (x > lo if lo_open else x >= lo) and (
            x < hi if hi_open else x <= hi)
        need(ok, f"{name}={v!r} outside {'(' if lo_open else '['}{lo:g}, {hi:g}"
                 f"{')' if hi_open else ']'}")

    need(cfg.get("role") in ROLES, f"role={cfg.get('role')!r}")
    need(cfg.get("recipe") in (None, "cifar", "tinyimagenet", "imagenet"),
         f"recipe={cfg.get('recipe')!r}")
    for name in ("epochs", "batch_size"):
        need(cfg.get(name, 1) >= 1, f"{name}={cfg.get(name)!r} < 1")
    if cfg.get("agb_search_epochs") is not None:
        need(cfg["agb_search_epochs"] >= 1, f"agb_search_epochs={cfg['agb_search_epochs']!r}")
    rng("lr", 0, INF, True, True)
    rng("momentum", 0, 1, False, True)
    rng("weight_decay", 0, INF, False, True)
    rng("lr_decay_rate", 0, 1, True, False)
    need(0 <= cfg.get("seed", 0) <= MAX_SEED, f"seed={cfg.get('seed')!r} outside [0, 2**63-1]")
    for f in cfg.get("lr_decay_fractions", ()):
        x = _num(f)
        need(x is not None and 0 < x <= 1, f"lr_decay_fractions has {f!r}")
    rng("agb_lambda", 0, 1, False, False)
    lams = cfg.get("agb_search_lambdas", (0.5,))
    need(len(lams) > 0, "agb_search_lambdas is empty")
    for lam in lams:
        x = _num(lam)
        need(x is not None and 0 <= x <= 1, f"agb_search_lambdas has {lam!r}")
    for name, strict in (("mean", False), ("std", True)):
        stats = cfg.get(name)
        if stats is not None:
            for v in stats:
                x = _num(v)
                need(x is not None and math.isfinite(x) and (x > 0 if strict else x >= 0),
                     f"{name} has {v!r}")
    rng("holdout_fraction", 0, 1, True, True)
    rng("temperature", 0, MAX_TEMPERATURE, True, False)
    for name in ("w_task", "w_distill"):  # None: the method's hand-tuned weight
        if cfg.get(name) is not None:
            rng(name, 0, INF, False, True)
    if cfg.get("role") == "student":
        need(bool(cfg.get("teacher")), "a student without a teacher")
    if cfg.get("role") == "teacher":
        for k in ("teacher", "aug", "per_batch", "joint_forward"):
            need(not cfg.get(k), f"teacher run with {k}={cfg.get(k)!r}")
        need(cfg.get("distill", "kd") == "kd", f"teacher run with distill={cfg.get('distill')!r}")
    if cfg.get("aug") is not None:
        problems += [f"aug: {p}" for p in da_spec_problems(cfg["aug"])]
    need(cfg.get("balancer") in BALANCERS.names(), f"balancer={cfg.get('balancer')!r}")
    need(cfg.get("model") in MODELS.names(), f"model={cfg.get('model')!r}")
    if cfg.get("teacher_model") is not None:
        need(cfg["teacher_model"] in MODELS.names(), f"teacher_model={cfg['teacher_model']!r}")
    return problems


def trainconfig_object_problems(cfg: Any) -> list[str]:
    return [f"accepted config: {p}" for p in config_problems(cfg.to_dict())]


def yaml_text_problems(text: str) -> list[str]:
    """The oracle for a config file: a YAML mapping (or an empty document) of valid fields."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return [f"not YAML: {str(err).splitlines()[0]}"]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return [f"the document is a {type(data).__name__} ({data!r:.40}), not a mapping"]
    return config_problems(data)


# sweep specs
TOP_KEYS = ("name", "dataset", "pairs", "teacher", "student", "grid", "tstddev", "out", "device")
GRID_KEYS = ("aug", "epochs", "seed", "balancer", "mode", "distill", "optimizer", "schedule")
TSTDDEV_KEYS = ("epochs", "batch_size", "group_size", "modes", "cross_mode")
STUDENT_FIXED = ("role", "model", "dataset", "root", "teacher", "aug", "epochs", "seed",
                 "balancer", "per_batch", "distill", "optimizer", "schedule")
OPTIMIZER_NAMES = ("sgd", "adamw")
SCHEDULE_NAMES = ("multistep", "cosine", "constant")
MODES = ("per-image", "per-batch")
TRANSFORM_OPTIONS = ("resize", "train_subset", "subset_seed")


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def sweep_problems(spec: Any) -> list[str]:
    """Why ``spec`` (a parsed sweep spec) cannot run (empty list: valid); validate_spec's
    contract is that it checks every key and value of a spec before anything runs."""
    from augkd.balance import BALANCERS
    from augkd.data import DATASETS
    from augkd.data.dataset import accepted_options
    from augkd.models import MODELS

    if not isinstance(spec, dict):
        return [f"spec is a {type(spec).__name__}"]
    problems = [f"unknown top-level key {k!r}" for k in spec if k not in TOP_KEYS]
    if problems:
        return problems

    def need(ok: bool, text: str) -> bool:
        if not ok:
            problems.append(text)
        return ok

    out = spec.get("out")
    if out is not None and out != "":
        need(isinstance(out, str), f"out={out!r} is not a path string")
    if "name" in spec:  # the default folder is runs/sweeps/NAME
        need(isinstance(spec["name"], str), f"name={spec['name']!r} is not a string")
        if isinstance(spec["name"], str) and not out:
            need(spec["name"].strip() != "", f"name={spec['name']!r} is empty, so the sweep "
                 "folder would be runs/sweeps itself")
    if "device" in spec:  # the name itself is resolved (and checked) when the sweep starts
        need(isinstance(spec["device"], str),
             f"device={spec['device']!r} is not a device name (auto | cpu | cuda | cuda:N)")
    dataset = spec.get("dataset", {"name": "digits"})
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    ds_name = "digits"
    options: dict = {}
    if need(isinstance(dataset, dict) and "name" in dataset, f"dataset={dataset!r}"):
        need(all(k in ("name", "root", "options") for k in dataset), f"dataset keys {dataset}")
        ds_name = dataset["name"]
        if not need(isinstance(ds_name, str) and ds_name in DATASETS.names(),
                    f"dataset name {ds_name!r}"):
            ds_name = None
        root = dataset.get("root")
        need(root is None or isinstance(root, str), f"dataset.root={root!r}")
        options = dataset.get("options", {})
        if need(isinstance(options, dict), f"dataset.options={options!r} is not a mapping") \
                and ds_name is not None:
            allowed = list(accepted_options(ds_name)) + list(TRANSFORM_OPTIONS)
            for k, v in options.items():
                need(k in allowed, f"dataset.options has unknown option {k!r}")
                if k in ("resize", "train_subset", "max_member_bytes", "max_image_pixels") \
                        and v is not None:
                    need(_is_int(v) and v >= 1, f"dataset.options.{k}={v!r} (positive integer)")
                if k == "subset_seed" and options.get("train_subset") is not None:
                    need(_is_int(v) and v >= 0, f"dataset.options.subset_seed={v!r} "
                         "(an integer >= 0)")
        else:
            options = {}
    pairs = spec.get("pairs")
    models = MODELS.names()
    if need(isinstance(pairs, list) and len(pairs) > 0, f"pairs={pairs!r}"):
        for pair in pairs:
            if not need(isinstance(pair, dict), f"pair {pair!r} is not a mapping"):
                continue
            need(all(k in ("teacher", "student", "teacher_run") for k in pair),
                 f"pair keys {list(pair)}")
            for role in ("teacher", "student"):
                need(isinstance(pair.get(role), str) and pair.get(role) in models,
                     f"pair {role}={pair.get(role)!r}")
            if "teacher_run" in pair:
                need(isinstance(pair["teacher_run"], str | int | float)
                     and not isinstance(pair["teacher_run"], bool)
                     and str(pair["teacher_run"]) != "",
                     f"teacher_run={pair['teacher_run']!r} is not a path")
    grid = spec.get("grid")
    values: dict[str, list] = {}
    if need(isinstance(grid, dict), f"grid={grid!r}"):
        need(all(k in GRID_KEYS for k in grid), f"grid keys {list(grid)}")
        defaults = {"epochs": [240], "seed": [0], "balancer": ["manual"], "mode": ["per-image"],
                    "distill": ["kd"], "optimizer": ["sgd"], "schedule": ["multistep"]}
        for key in GRID_KEYS:
            v = grid.get(key, defaults.get(key))
            if not need(v is not None, f"grid.{key} missing"):
                continue
            v = v if isinstance(v, list) else [v]
            need(len(v) > 0, f"grid.{key} empty")
            need(len({repr(x) for x in v}) == len(v) and len({str(x) for x in v}) == len(v),
                 f"grid.{key} repeats a value")
            values[key] = v
        for aug in values.get("aug", []):
            problems.extend(f"grid.aug {aug!r}: {p}" for p in da_spec_problems(aug))
        for e in values.get("epochs", []):
            need(_is_int(e) and e >= 1, f"grid.epochs has {e!r}")
        for s in values.get("seed", []):
            need(_is_int(s) and 0 <= s <= MAX_SEED, f"grid.seed has {s!r} (0..2**63-1)")
        for b in values.get("balancer", []):
            need(isinstance(b, str) and b in BALANCERS.names(), f"grid.balancer has {b!r}")
        for m in values.get("mode", []):
            need(isinstance(m, str) and m in MODES, f"grid.mode has {m!r}")
        for method in values.get("distill", []):
            need(isinstance(method, str) and _method_ok(method), f"grid.distill has {method!r}")
        for key, names in (("optimizer", OPTIMIZER_NAMES), ("schedule", SCHEDULE_NAMES)):
            for v in values.get(key, []):  # a plain name (options are not generated here)
                need(isinstance(v, str) and v in names, f"grid.{key} has {v!r}")
    fields = list(_train_fields())
    allowed = [f for f in fields if f not in STUDENT_FIXED]
    for section, extra in (("teacher", ["epochs"]), ("student", [])):
        sec = spec.get(section, {})
        if sec is None:
            sec = None
        if not need(isinstance(sec, dict), f"{section}={sec!r} is not a mapping"):
            continue
        bad = [k for k in sec if k not in allowed + extra]
        if not need(not bad, f"{section} has unknown keys {bad}"):
            continue
        if not need("dataset_options" not in sec, f"{section}.dataset_options (the dataset's "
                    "options belong in dataset.options)"):
            continue
        if problems or not isinstance(pairs, list):
            continue  # the configs below need the rest to be valid
        for pair in pairs:
            base = {"dataset": ds_name, "root": dataset.get("root"),
                    "dataset_options": options}
            if section == "teacher":
                cfgs = [{"role": "teacher", "model": pair["teacher"], "epochs": 240, **base,
                         **sec}]
            else:
                cfgs = [{"role": "student", "model": pair["student"], "teacher": "x",
                         "aug": aug, "per_batch": mode == "per-batch", "epochs": e, "seed": s,
                         "balancer": b, "distill": method, **base, **sec}
                        for aug in values["aug"] for e in values["epochs"]
                        for s in values["seed"] for b in values["balancer"]
                        for mode in values["mode"] for method in values.get("distill", ["kd"])]
            for c in cfgs[:64]:
                c.pop("dataset_options")  # judged above
                c.pop("dataset")
                for p in config_problems(c):
                    if p not in problems:
                        problems.append(f"{section}: {p}")
    ts = spec.get("tstddev", {})
    if need(isinstance(ts, dict), f"tstddev={ts!r}"):
        need(all(k in TSTDDEV_KEYS for k in ts), f"tstddev keys {list(ts)}")
        for key in ("epochs", "batch_size", "group_size"):
            v = ts.get(key, 1)
            need(_is_int(v) and v >= 1, f"tstddev.{key}={v!r}")
        cross = ts.get("cross_mode", False)
        need(isinstance(cross, bool), f"tstddev.cross_mode={cross!r}")
        modes = ts.get("modes", values.get("mode", ["per-image"]))
        if need(isinstance(modes, list), f"tstddev.modes={modes!r}"):  # []: no T. stddev
            for m in modes:
                need(isinstance(m, str) and m in MODES, f"tstddev.modes has {m!r}")
            if cross is False and "mode" in values and modes:
                need(any(_hashable(m) and m in values["mode"] for m in modes),
                     "grid.mode and tstddev.modes share no mode")
    return problems


def _method_ok(spec: str) -> bool:
    """Whether a distillation-method spec names a registered method with valid options."""
    from augkd.distill import resolve_method

    try:
        resolve_method(spec)
    except ValueError:
        return False
    return True


def apply_overrides(spec: dict, overrides: list[str]) -> dict | list[str]:
    """The documented ``--set a.b=value`` semantics (value parsed as YAML), or problems."""
    spec = copy.deepcopy(spec)
    for item in overrides:
        if "=" not in item:
            return [f"override {item!r} has no '='"]
        dotted, raw = item.split("=", 1)
        keys = dotted.split(".")
        node = spec
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                return [f"override {item!r}: {key!r} is not a mapping"]
        try:
            node[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            return [f"override {item!r}: value is not YAML"]
    return spec


def sweep_object_problems(sweep: Any) -> list[str]:
    problems = [f"accepted spec: {p}" for p in sweep_problems(sweep.spec)]
    if not isinstance(sweep.out, Path):
        problems.append(f"accepted spec: out is a {type(sweep.out).__name__}")
    return problems


# RankConfig
RANK_POSITIVE = ("epochs", "batch_size", "group_size", "seeds", "teacher_epochs",
                 "student_epochs", "scorer_epochs")


def rank_problems(cfg: Any) -> list[str]:
    from augkd.balance import BALANCERS
    from augkd.models import MODELS

    problems = []
    for name in RANK_POSITIVE:
        v = getattr(cfg, name)
        if not (_is_int(v) and v >= 1):
            problems.append(f"accepted rank config: {name}={v!r} < 1")
    lam = cfg.agb_lambda
    if lam is not None and not (_num(lam) is not None and 0 <= lam <= 1):
        problems.append(f"accepted rank config: agb_lambda={lam!r}")
    for m in cfg.modes:
        if m not in MODES:
            problems.append(f"accepted rank config: mode {m!r}")
    for aug in cfg.augs:
        problems += [f"accepted rank config: aug {aug!r}: {p}" for p in da_spec_problems(aug)]
    if cfg.student not in MODELS.names():
        problems.append(f"accepted rank config: student={cfg.student!r}")
    if cfg.balancer not in BALANCERS.names():
        problems.append(f"accepted rank config: balancer={cfg.balancer!r}")
    return problems


# ----------------------------------------------------------------------------------------------
# generators

SPECIAL_FLOATS = [0.0, -0.0, 1e308, -1e308, 1.7976931348623157e308, 1e-308, 5e-324, INF, -INF,
                  NAN, 1e4, 10000.000001, 0.5, 1.0, 1.0000000000000002, 0.9999999999999999,
                  -1.0, 1000.0, 1000.0000001, 2.5]
HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30, 10**400]
WEIRD_TEXTS = ["", " ", "nan", "inf", "1e3", "true", "yes", "null", "teacher", "cutmix",
               "\u2603", "a\nb", "\x00", "-", "0x10", "\u0661\u0662", "   5   ", "per-image"]


def wild() -> st.SearchStrategy:
    """Any scalar or small container of the kinds YAML produces."""
    scalars = st.one_of(
        st.booleans(), st.none(), st.integers(-10, 10), st.sampled_from(HUGE_INTS),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(SPECIAL_FLOATS),
        st.text(max_size=8), st.sampled_from(WEIRD_TEXTS),
    )
    return st.one_of(
        scalars, scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=4), scalars, max_size=2),
    )


DA_NAMES = ["identity", "flip", "crop", "crop+flip", "cutout", "mixup", "cutmix", "cutmixpick",
            "autoaugment", "randaugment", "trivialaugment", "cutmixpick-t", "cutmixpick-s"]
DA_NEAR_NAMES = ["CutMix", "cutmix_", "cut-mix", "cutmixx", "mix-up", "crop+", "crop+flip+",
                 "flip+crop", "cutmixpick-x", "cutmixpick-", "cutmixpick-T", "identity2",
                 "Identity", "autoaugment2", "rand_augment", "cutmix ", " cutmix", "crop + flip",
                 "c\u00fctmix", "cutout-", "_cutmix", "1cutmix", "cutmix-s"]
DA_KEYS = ["p", "padding", "size", "alpha", "beta", "score", "k", "policy", "num_ops",
           "magnitude", "num_magnitude_bins", "per_batch"]
DA_NEAR_KEYS = ["Beta", "beta_", " size ", "_k", "p2", "per-batch", "perbatch", "alpha ", "K",
                "\u03b2", "s\u00efze", "1k", "", "beta beta", "per_batch_"]
DA_RAWS = ["inf", "-inf", "nan", "NaN", "1e308", "1e309", "-1e308", "-0", "-0.0", "+0", "0",
           "1", "2", "8", "64", "65", "4096", "4097", "10000", "10000.0", "1e4", "10000.000001",
           "1e-300", "5e-324", "0.5", "1.0", "1.5", "-1", "true", "false", "True", "FALSE",
           "yes", "null", "None", "'8'", '"1.0"', "'teacher'", "teacher", "student", "kl",
           "cifar10", "imagenet", "svhn", "0x10", "1_0", "\u0661\u0662", "\u00bd", "\u221e",
           "9" * 30, "9" * 400, "1" + "0" * 4400, "30", "31", "'", "''", "\"cifar10'", "2.0",
           "007", "+8", "1e2"]


def _render_number(draw, v: Any) -> str:
    if isinstance(v, bool):
        return draw(st.sampled_from(["true", "True", "TRUE"] if v else ["false", "False"]))
    if isinstance(v, int):
        return draw(st.sampled_from([str(v), f"+{v}" if v >= 0 else str(v)]))
    return draw(st.sampled_from([repr(v), f"{v:e}" if math.isfinite(v) else repr(v),
                                 f"{v:g}" if math.isfinite(v) else repr(v)]))


@st.composite
def da_raw_value(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind < 4:
        return draw(st.sampled_from(DA_RAWS))
    if kind < 6:
        return _render_number(draw, draw(st.integers(-5, 5000) | st.sampled_from(HUGE_INTS)))
    if kind < 8:
        return _render_number(draw, draw(st.floats(allow_nan=True, allow_infinity=True)
                                         | st.sampled_from(SPECIAL_FLOATS)))
    text = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="(),="), min_size=1,
                        max_size=8))
    quote = draw(st.sampled_from(["", "'", '"']))
    return f"{quote}{text}{quote}"


GARBLE_CHARS = list("()=,'\" \t\n+-_.") + ["\u00e9", "\u03b2", "\u2603", "\x00", "\u200b"]


# per DA parameter: values near and inside its documented range (most of them valid)
DA_TYPED: dict[str, st.SearchStrategy] = {
    "p": st.floats(0, 1) | st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1.0000000000000002, -1e-300]),
    "padding": st.integers(-1, 40) | st.sampled_from([0, MAX_SIDE, MAX_SIDE + 1]),
    "size": st.integers(-1, 40) | st.sampled_from([1, MAX_SIDE, MAX_SIDE + 1]),
    "alpha": st.floats(1e-6, 100) | st.sampled_from([MAX_CONC, 10000.000000000002, 5e-324, 1]),
    "beta": st.floats(1e-6, 100) | st.sampled_from([MAX_CONC, 10000.000000000002, 5e-324, 1]),
    "k": st.integers(0, 70),
    "num_ops": st.integers(0, 5) | st.sampled_from([10**6, 2**63]),
    "magnitude": st.integers(-1, 40),
    "num_magnitude_bins": st.integers(0, 40) | st.sampled_from([10**6, 2**63]),
    "per_batch": st.booleans(),
    "score": st.sampled_from(["teacher", "student", "kl", "Teacher", "'kl'"]),
    "policy": st.sampled_from(["cifar10", "imagenet", "svhn", "'svhn'", "cifar100"]),
}


@st.composite
def da_specs(draw) -> Any:
    roll = draw(st.integers(0, 99))
    if roll < 4:
        return draw(st.sampled_from([5, None, b"cutmix", ["cutmix"], 1.5, {"name": "cutmix"}]))
    if roll < 8:
        return draw(st.text(max_size=30))
    name = draw(st.sampled_from(DA_NAMES) | st.sampled_from(DA_NAMES)
                | st.sampled_from(DA_NEAR_NAMES))
    own = sorted(DA_RULES.get(DA_ALIASES.get(name, (name,))[0], {}))
    keys = st.sampled_from(own) if own else st.sampled_from(DA_KEYS)
    n = draw(st.integers(0, 3))
    items, used = [], set()
    for _ in range(n):
        key = draw(keys | keys | keys | st.sampled_from(DA_KEYS) | st.sampled_from(DA_NEAR_KEYS))
        if key in used and draw(st.integers(0, 3)) > 0:
            continue  # mostly no repeated keys
        used.add(key)
        eq = draw(st.sampled_from(["=", "=", " = ", "= ", "=="]))
        if key in DA_TYPED and draw(st.integers(0, 2)) > 0:
            value = draw(DA_TYPED[key])
            raw = value if isinstance(value, str) else _render_number(draw, value)
        else:
            raw = draw(da_raw_value())
        items.append(f"{key}{eq}{raw}")
    sep = draw(st.sampled_from([",", ", ", ", ", " , ", ",,"]))
    text = name
    if items or draw(st.booleans()):
        text += draw(st.sampled_from(["(", "(", " ("])) + sep.join(items) + draw(
            st.sampled_from([")", ")", ")", ")", " )", "", "))", ")x", "),"]))
    text = draw(st.sampled_from(["", "", " ", "\t"])) + text + draw(
        st.sampled_from(["", "", " ", "\n"]))
    if roll >= 85:  # garble: insert, delete or replace a few characters
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(text)))
            op = draw(st.integers(0, 2))
            c = draw(st.sampled_from(GARBLE_CHARS))
            text = (text[:i] + c + text[i:] if op == 0 else
                    text[:i] + text[i + 1:] if op == 1 else text[:i] + c + text[i + 1:])
    return text


TRAIN_NEAR_KEYS = ["learning_rate", "Epochs", "batch-size", "lr ", "seed2", "epoch", "T",
                   "agb_lambdas", "weightdecay", "teacher_run", "", "a\nb", 1, None, True, 1.5]
AUG_SAMPLES = ["cutmix", "cutmix(beta=0)", "cutmix(beta=nan)", "mixup(alpha=0.4)",
               "cutmixpick-s", "cutmixpick-t(score=kl)", "crop+flip", "cutout(size=8)",
               "bogus", "", " ", "cutmix(", "randaugment(magnitude=31)"]


def _field_values(name: str, hint: str) -> st.SearchStrategy:
    from augkd.balance import BALANCERS
    from augkd.models import MODELS

    specific: dict[str, list] = {
        "role": ["teacher", "student", "Teacher", "", "both"],
        "model": MODELS.names()[:4] + ["resnet", "ResNet8", "resnet8 "],
        "teacher_model": [None, "resnet20", "bogus"],
        "balancer": BALANCERS.names() + ["AGB", "none", ""],
        "aug": [None, *AUG_SAMPLES],
        "teacher": [None, "", "runs/t", "x"],
        "device": ["cpu", "auto", "cuda:0", "banana", ""],
        "dataset": ["digits", "cifar10", "nope"],
        "dataset_options": [{}, {"resize": 8}, {"resize": -1}, [], {"x": 1}],
        "epochs": [0, 1, 2, -1, 240, 10**30],
        "batch_size": [0, 1, 64, -64],
        "agb_search_epochs": [None, 0, 1, -1],
        "lr": [0, -0.0, 1e-300, 0.05, 1e308, 10**400, 2**64],
        "momentum": [0, 0.9, 1, 0.9999999999999999, -0.0, 10**400, -1e-300],
        "weight_decay": [0, 5e-4, -1e-12, 10**400, 1e308],
        "lr_decay_rate": [0, 0.1, 1, 1.0000000000000002, 10**400],
        "seed": [0, -1, MAX_SEED, MAX_SEED + 1, 2**64, 10**400],
        "lr_decay_fractions": [[], [0.5], [0], [1], [1.5], [NAN], [10**400], [True]],
        "agb_lambda": [0, 1, 0.5, -0.0, 1.0000000000000002, 10**400],
        "agb_search_lambdas": [[], [0.5], [0, 1], [1.5], [NAN], [10**400]],
        "mean": [None, [], [0.5], [0.5, 0.5, 0.5], [-0.1], [NAN], [INF], [10**400]],
        "std": [None, [], [0.2], [0], [-0.0], [NAN], [INF], [1e-300]],
        "holdout_fraction": [0, 0.1, 1, 0.9999999999999999, 5e-324, 10**400],
        "temperature": [0, 1e-300, 4, 1000, 1000.0000001, 10**400, 5e-324],
        "w_task": [0, 0.1, -0.0, -1e-300, 10**400, 1e308],
        "w_distill": [0, 0.9, 10**400],
    }
    valid: dict[str, st.SearchStrategy] = {
        "epochs": st.integers(1, 300), "batch_size": st.integers(1, 512),
        "agb_search_epochs": st.integers(1, 10), "seed": st.integers(0, MAX_SEED),
        "lr": st.floats(1e-6, 10), "momentum": st.floats(0, 0.999),
        "weight_decay": st.floats(0, 1), "lr_decay_rate": st.floats(1e-3, 1),
        "lr_decay_fractions": st.lists(st.floats(1e-3, 1), max_size=3),
        "agb_lambda": st.floats(0, 1), "agb_search_lambdas": st.lists(st.floats(0, 1),
                                                                      min_size=1, max_size=3),
        "mean": st.lists(st.floats(0, 1), min_size=1, max_size=3),
        "std": st.lists(st.floats(1e-3, 1), min_size=1, max_size=3),
        "holdout_fraction": st.floats(1e-3, 0.999), "temperature": st.floats(1e-3, 1000),
        "w_task": st.floats(0, 10), "w_distill": st.floats(0, 10),
        "bf16": st.booleans(), "channels_last": st.booleans(), "compile": st.booleans(),
        "progress": st.booleans(), "agb_search": st.booleans(),
    }
    values = specific.get(name, [])
    options = []
    if name in valid:
        options += [valid[name]] * 2
    if values:
        options += [st.sampled_from(values)] * 2
    return st.one_of(*options, wild())


@st.composite
def train_dicts(draw) -> dict:
    fields = _train_fields()
    role = draw(st.sampled_from(ROLES))
    data: dict[Any, Any] = {"role": role}
    if role == "student":
        data["teacher"] = "runs/t"
    names = sorted(fields)
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        data[name] = draw(_field_values(name, fields[name]))
    if draw(st.integers(0, 19)) == 0:
        data[draw(st.sampled_from(TRAIN_NEAR_KEYS))] = draw(wild())
    return data


YAML_SNIPPETS = ["", "null", "~", "0", "false", "[]", "''", "- epochs: 2", "epochs: 2\n",
                 "epochs: [unclosed", "epochs: 2\nepochs: 3", "lr: .nan", "lr: .inf",
                 "lr: 1e309", "\tepochs: 2", "epochs:\t2", ": :", "{epochs: 2", "&a [*a]",
                 "a: &a [*a]", "!!python/object/apply:os.system ['true']", "!!binary aGk=",
                 "epochs: !!float 2", "epochs: !!str 2", "seed: 0o17", "seed: 0x10",
                 "seed: 1_000", "lr: 1_0.5", "? [a, b]\n: 1", "epochs: 2 # c", "---\n---",
                 "%YAML 1.1\n---\nepochs: 2", "role: student", "lr: 0.1\nlr: -1",
                 "\ufeffepochs: 2", "epochs: 2\x00", "\x85epochs: 2", "epochs: \u0661"]


@st.composite
def yaml_texts(draw) -> str | bytes:
    roll = draw(st.integers(0, 9))
    if roll < 5:
        return yaml.safe_dump(draw(train_dicts()), sort_keys=False, allow_unicode=True)
    if roll < 7:
        parts = draw(st.lists(st.sampled_from(YAML_SNIPPETS), min_size=1, max_size=3))
        return "\n".join(parts)
    if roll < 8:
        return draw(st.binary(max_size=16)) + b"\nepochs: 2\n"
    text = yaml.safe_dump(draw(train_dicts()), sort_keys=False)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        c = draw(st.sampled_from(list(":-[]{}&*!|>'\"#%@`\t\n ,?") + ["\u2603"]))
        text = text[:i] + c + text[i + 1:]
    return text


def _key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            paths += _key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            paths += _key_paths(v, prefix + (i,))
    return paths


# candidate values by the key they replace (valid ones, boundaries, wrong types)
SWEEP_BY_KEY: dict[str, list] = {
    "name": ["smoke2", "", " ", 5, None, ["a"], True, "a b"],
    "dataset": ["digits", "cifar10", "nope", {"name": "digits"}, {"name": ["digits"]},
                {"name": "digits", "options": {"resize": 0}},
                {"name": "digits", "options": {"resize": 8}},
                {"name": "digits", "options": {"resize": None}},
                {"name": "digits", "options": {"bogus": 1}},
                {"name": "digits", "options": {"train_subset": True}},
                {"name": "digits", "options": {"subset_seed": -1, "train_subset": 100}},
                {"name": "digits", "options": {"subset_seed": 3}},
                {"name": "digits", "options": {1: 2}}, {"name": "digits", "options": []},
                {"name": "digits", "root": 5}, {"name": "digits", "extra": 1}, 5, None, []],
    "teacher": ["resnet8", "resnet20", "resnet", ["resnet8"], None, 5],  # in a pair
    "student": ["resnet8", "wrn_16_1", "resnet", ["resnet8"], None, {"a": 1}],  # in a pair
    "teacher_run": ["runs/t", None, 5, True, ["x"], ""],
    "aug": [["cutmix"], "cutmix", ["identity", "cutmix(beta=2)"], ["cutmix(beta=0)"], [5],
            [["cutmix"]], ["identity", "identity"], ["identity", "identity "], [],
            ["cutmixpick-s"], ["cutout(size=4)"], [None]],
    "epochs": [[1], [1, 2], [0], [True], 1, "1", [1.0], [2, True], [], 2, [10**30], None,
               0, True, 10**30],  # grid.epochs or tstddev.epochs
    "seed": [[0], [0, 1], [True], [-1], [MAX_SEED], [MAX_SEED + 1], [2**64], 0, "0", [0.0],
             [0, 0], 3, None],
    "balancer": [["agb"], "manual", [["manual"]], ["nope"], [None], ["manual", "agb"], []],
    "mode": [["per-batch"], "per-image", [["per-image"]], ["x"], ["per-image", "per-batch"],
             None],
    "modes": [["per-image"], "per-image", [["per-image"]], ["per-batch"], [],
              ["per-image", "per-batch"], [None], 5],
    "batch_size": [1, 64, 0, -1, True, 2.0, "64"], "group_size": [1, 10, 0, True, 1.5],
    "cross_mode": [True, False, "yes", 1, None],
    "out": ["runs/x", 5, None, "", ["a"], True],
    "device": ["cpu", "cuda", "auto", 5, "banana", None, "", "cuda:0"],
    "pairs": [[], [{"teacher": "resnet8", "student": "resnet8"}], "resnet8", None,
              [{"teacher": "resnet8"}], [["resnet8", "resnet8"]],
              [{"teacher": "resnet8", "student": "resnet8", "extra": 1}]],
    "grid": [None, 5, [], {}, {"aug": ["cutmix"]}],
    "tstddev": [None, {}, {"epochs": 1}, 5, {"cross_mode": True}],
}
SECTION_VALUES = [{}, {"epochs": 1}, {"epochs": 0}, {"lr": 10**400}, {"temperature": NAN},
                  {"seed": 1}, {"batch_size": 16}, {"momentum": 0.5}, {"bogus": 1}, None, 5, []]
SWEEP_NEW_KEYS = {
    (): ["grids", "Grid", "out", "device", "name", "student", "teacher", 1, None, True, "seed"],
    "grid": ["epoch", "seeds", "mode ", "modes", "aug", 1],
    "tstddev": ["cross_mode", "batch_size", "group_size", "mode", "modes"],
    "dataset": ["options", "root", "Name"],
    "pairs": ["teacher_run", "Teacher", "epochs"],
}


@st.composite
def _sweep_value(draw, key: Any) -> Any:
    choices = SWEEP_BY_KEY.get(key) if isinstance(key, str) else None
    if key in ("teacher", "student") and draw(st.booleans()):
        choices = SECTION_VALUES  # as the top-level section
    if choices and draw(st.integers(0, 3)) > 0:
        return copy.deepcopy(draw(st.sampled_from(choices)))
    return draw(wild())


@st.composite
def _section_entries(draw, section: str) -> dict:
    """A few TrainConfig fields for the spec's teacher/student section."""
    fields = [f for f in _train_fields() if f not in STUDENT_FIXED] + (
        ["epochs"] if section == "teacher" else []) + ["seed", "bogus"]
    out = {}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=2,
                              unique=True)):
        out[name] = draw(_field_values(name, _train_fields().get(name, "")))
    return out


OVERRIDES = ["grid.epochs=[0]", "grid.epochs=[1]", "grid.seed=[true]", "grid.seed=-1",
             "teacher.epochs=1", "teacher.epochs=0", "tstddev.modes=per-image", "a.b.c=1", "=",
             "grid=5", "name.x=1", "grid.aug=[cutmix(beta=0)]", "grid.aug=cutmix(beta=2)",
             "student.lr=.nan", "student.lr=1e-3", "x", "dataset=cifar10", "device=cpu",
             "out=", "grid.mode=[per-batch]", "tstddev.modes=[per-batch]", "pairs=[]",
             "grid.epochs=[1, 2]", "grid.epochs=[", "student.temperature=1e400",
             "grid.balancer=[[agb]]", "tstddev.epochs=true", "name=7", "out=3",
             "dataset.options.resize=0", "grid.seed=[9223372036854775808]"]


@st.composite
def sweep_inputs(draw) -> tuple[dict, list[str], str]:
    spec = yaml.safe_load(SMOKE_SPEC.read_text())
    desc: list[str] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        op = draw(st.integers(0, 11))
        paths = [p for p in _key_paths(spec) if p]
        if op <= 5 and paths:  # replace a value
            path = draw(st.sampled_from(paths))
            node = _get(spec, path[:-1])
            key = path[-1] if not isinstance(path[-1], int) else (
                path[-2] if len(path) > 1 else None)
            if isinstance(path[-1], int) and key in ("aug", "epochs", "seed", "balancer",
                                                     "mode", "modes"):
                node[path[-1]] = draw(wild())  # one list element
            else:
                node[path[-1]] = draw(_sweep_value(key))
            desc.append(f"set {_dotted(path)} = {node[path[-1]]!r}")
        elif op == 6 and any(not isinstance(p[-1], int) for p in paths):  # delete a key
            path = draw(st.sampled_from([p for p in paths if not isinstance(p[-1], int)]))
            _get(spec, path[:-1]).pop(path[-1], None)
            desc.append(f"delete {_dotted(path)}")
        elif op <= 8:  # add (or replace) a teacher/student section field
            section = draw(st.sampled_from(["teacher", "student"]))
            if not isinstance(spec.get(section), dict):
                spec[section] = {}
            entries = draw(_section_entries(section))
            spec[section].update(entries)
            desc += [f"set {section}.{k} = {v!r}" for k, v in entries.items()]
        else:  # add a key to some mapping
            maps = [()] + [p for p in paths if isinstance(_get(spec, p), dict)]
            path = draw(st.sampled_from(maps))
            where = path[0] if path else ()
            names = SWEEP_NEW_KEYS.get(where, SWEEP_NEW_KEYS[()])
            key = draw(st.sampled_from(names))
            _get(spec, path)[key] = draw(_sweep_value(key))
            desc.append(f"set {_dotted(path + (key,))} = {_get(spec, path)[key]!r}")
    overrides = []
    if draw(st.integers(0, 4)) == 0:
        overrides = draw(st.lists(st.sampled_from(OVERRIDES), min_size=1, max_size=2))
    return spec, overrides, "; ".join(desc)


def _dotted(path: tuple) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else str(k))
                   if isinstance(k, str) else f"[{k!r}]" for i, k in enumerate(path))


def _get(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


TRAIN_NUMERIC = ["epochs", "batch-size", "lr", "momentum", "weight-decay", "seed", "temperature",
                 "agb-lambda", "agb-search-epochs", "holdout-fraction", "w-task", "w-distill",
                 "resize", "train-subset", "subset-seed"]
RANK_NUMERIC = ["teacher-epochs", "epochs", "batch-size", "group-size", "seeds", "scorer-epochs",
                "resize", "train-subset", "subset-seed", "agb-lambda", "student-epochs"]
NUMERIC_TEXTS = ["0", "1", "2", "-1", "-0", "+3", "1e3", "1.5", "0.5", "nan", "NaN", "inf",
                 "-inf", "1e308", "1e309", "-1e308", "5e-324", "1e-300", "0.9999999999999999",
                 "1.0000000000000002", "1000", "1000.0000001", str(MAX_SEED), str(MAX_SEED + 1),
                 str(2**64), "9" * 400, "9" * 5000, "0x10", "1_000", "\u0661\u0662", " 5",
                 "5 ", "", "abc", "5.0", "true", "\u221e", "-9" * 3]


@st.composite
def numeric_argv(draw, options: list[str]) -> list[str]:
    argv: list[str] = []
    for opt in draw(st.lists(st.sampled_from(options), min_size=1, max_size=4, unique=True)):
        text = draw(st.sampled_from(NUMERIC_TEXTS)
                    | st.integers(-3, 10**6).map(str)
                    | st.floats(allow_nan=True, allow_infinity=True).map(repr))
        if draw(st.booleans()):
            argv.append(f"--{opt}={text}")
        else:
            argv += [f"--{opt}", text]
    return argv


@st.composite
def train_argv(draw) -> list[str]:
    role = draw(st.sampled_from(["teacher", "student", "student", None, "bogus"]))
    argv = [role] if role else []
    if role == "student" and draw(st.integers(0, 9)) > 0:
        argv += ["--teacher", "runs/some-teacher"]
        if draw(st.booleans()):
            argv += ["--aug", draw(st.sampled_from(AUG_SAMPLES[:9]))]
    return argv + draw(numeric_argv(TRAIN_NUMERIC))


@st.composite
def rank_argv(draw) -> list[str]:
    argv = draw(numeric_argv(RANK_NUMERIC))
    roll = draw(st.integers(0, 9))
    if roll == 0:
        argv += ["--per-batch"]
    elif roll == 1:
        argv += ["--both-modes"]
    elif roll == 2:
        argv += ["--per-batch", "--both-modes"]
    if draw(st.integers(0, 3)) == 0:
        argv += ["--augs", *draw(st.lists(st.sampled_from(AUG_SAMPLES[:9]), min_size=1,
                                          max_size=2))]
    if draw(st.integers(0, 5)) == 0:
        argv += ["--balancer", draw(st.sampled_from(["manual", "agb", "nope"]))]
    return argv


# ----------------------------------------------------------------------------------------------
# targets: each turns one generated input into a Record


@dataclasses.dataclass
class Target:
    name: str
    what: str
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[Any, Path, float], Record]


def _check_augment(spec: Any, tmp: Path, timeout: float) -> Record:
    from augkd.augment import create

    return classify("augment", repr(spec), lambda: create(spec), da_spec_problems(spec),
                    da_object_problems, timeout)


def _check_trainconfig(data: dict, tmp: Path, timeout: float) -> Record:
    from augkd.training.config import TrainConfig

    return classify("trainconfig", f"TrainConfig.from_dict({data!r})",
                    lambda: TrainConfig.from_dict(copy.deepcopy(data)), config_problems(data),
                    trainconfig_object_problems, timeout)


def _check_yaml(text: str | bytes, tmp: Path, timeout: float) -> Record:
    from augkd.training.config import TrainConfig

    path = tmp / "config.yaml"
    if isinstance(text, _Special):
        path = tmp / ("no-such-file.yaml" if text == MISSING_FILE else "")
        return classify("yaml", f"TrainConfig.from_yaml({text})",
                        lambda: TrainConfig.from_yaml(path), [str(text)],
                        trainconfig_object_problems, timeout)
    if isinstance(text, bytes):
        path.write_bytes(text)
        try:
            problems = yaml_text_problems(text.decode("utf-8"))
        except UnicodeDecodeError:
            problems = ["not UTF-8"]
    else:
        path.write_text(text, encoding="utf-8")
        problems = yaml_text_problems(text)
    return classify("yaml", f"TrainConfig.from_yaml(<file holding {text!r}>)",
                    lambda: TrainConfig.from_yaml(path), problems, trainconfig_object_problems,
                    timeout)


def _check_sweep(item: tuple[dict, list[str], str], tmp: Path, timeout: float) -> Record:
    from augkd.sweep import load_spec

    spec, overrides, desc = item
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    reread = yaml.safe_load(path.read_text(encoding="utf-8"))
    applied = apply_overrides(reread, overrides)
    problems = applied if isinstance(applied, list) else sweep_problems(applied)
    shown = (f"load_spec(experiments/digits_smoke.yaml with: {desc or 'no change'}, "
             f"overrides={overrides!r})")
    return classify("sweep", shown, lambda: load_spec(path, list(overrides)), problems,
                    sweep_object_problems, timeout)


def _quiet(call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return call()
    return run


def _check_cli_train(argv: list[str], tmp: Path, timeout: float) -> Record:
    import augkd.train as cli

    call = _quiet(lambda: cli.config_from_args(cli.build_parser().parse_args(argv)))
    return classify("cli-train", f"augkd.train argv {argv!r}", call, None,
                    trainconfig_object_problems, timeout)


def rank_config_from_argv(argv: list[str]) -> Any:
    """Parse ``argv`` with augkd.rank's parser and build the RankConfig as ``main`` does."""
    import augkd.rank as rank
    from augkd.ranking import MODES, RankConfig

    args = rank.build_parser().parse_args(argv)
    modes = MODES if args.both_modes else (
        ("per-batch",) if args.per_batch else ("per-image",))
    kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(RankConfig)
              if hasattr(args, f.name)}
    kwargs.update(augs=tuple(args.augs), modes=modes, progress=not args.no_progress)
    return RankConfig(**kwargs)


def _check_cli_rank(argv: list[str], tmp: Path, timeout: float) -> Record:
    return classify("cli-rank", f"augkd.rank argv {argv!r}",
                    _quiet(lambda: rank_config_from_argv(argv)), None, rank_problems, timeout)


def _smoke_with(*changes: tuple[tuple, Any], overrides: tuple[str, ...] = ()) -> tuple:
    """digits_smoke.yaml with ``(path, value)`` changes (value ``DELETE`` removes the key)."""
    spec = yaml.safe_load(SMOKE_SPEC.read_text())
    desc = []
    for path, value in changes:
        node = _get(spec, path[:-1])
        if value is DELETE:
            node.pop(path[-1], None)
            desc.append(f"delete {_dotted(path)}")
        else:
            node[path[-1]] = value
            desc.append(f"set {_dotted(path)} = {value!r}")
    return spec, list(overrides), "; ".join(desc)


DELETE = object()

def explicit_inputs(name: str) -> list[Any]:
    """Inputs every run tries first, before the generated ones: known-sharp corners."""
    return _explicit().get(name, [])


def _explicit() -> dict[str, list[Any]]:
    return {
    "augment": [*(
        "cutmix", "cutmix(beta=1.0)", "cutout(size=8, per_batch=true)", "cutmixpick-t",
        "mixup(alpha=" + "9" * 400 + ")", "cutmix(beta=1" + "0" * 400 + ")",
        "cutout(size=" + "9" * 5000 + ")", "flip(p=nan)", "flip(p=-0)", "cutmix(beta=1e309)",
        "mixup(alpha=10000)", "mixup(alpha=10000.000000000002)", "cutout(size=\u0661\u0662)",
        "cutmixpick-t(score=kl)", "cutmixpick(k=true)", "randaugment(magnitude=31)",
        "randaugment(num_magnitude_bins=2, magnitude=1)", "crop(padding=-0)", "cutmix()",
        "cutmix(beta=1,)", "autoaugment(policy='svhn')", "cutmix(beta='1')", "",
    )] + [5, None],
    "trainconfig": [*(
        {}, {"role": "student", "teacher": "t"}, {1: 2}, {"a\nb": 1}, {None: 1},
        {"lr": 10**400}, {"weight_decay": 10**400}, {"w_task": 10**400}, {"momentum": 10**400},
        {"mean": []}, {"std": []}, {"seed": 2**63}, {"seed": True}, {"temperature": 5e-324},
        {"lr_decay_fractions": [10**400]}, {"agb_search_lambdas": []}, {"epochs": 10**30},
    )],
    "yaml": [*(
        "", "null", "[]", "0", "false", "''", "1: 2", "a\nb: 1", "lr: 1" + "0" * 400,
        "epochs: [unclosed", "!!python/object/apply:os.system ['true']", "&a [*a]",
        b"\xff\xfeepochs: 2", "epochs: 2\x00", "? [a, b]\n: 1",
    )] + [MISSING_FILE, A_DIRECTORY],
    "sweep": [
        _smoke_with(),
        _smoke_with((("grid", "seed"), [True])),
        _smoke_with((("grid", "seed"), [2**64])),
        _smoke_with((("grid", "epochs"), [2, True])),
        _smoke_with((("grid", "balancer"), [["manual"]])),
        _smoke_with((("pairs", 0, "teacher"), ["resnet20"])),
        _smoke_with((("dataset",), {"name": ["digits"]})),
        _smoke_with((("tstddev", "modes"), [["per-image"]])),
        _smoke_with((("tstddev", "modes"), "per-image")),
        _smoke_with((("name",), 5)),
        _smoke_with((("name",), None)),
        _smoke_with((("name",), "")),
        _smoke_with((("out",), 5)),
        _smoke_with(((1,), 5)),
        _smoke_with((("grid", 1), 5)),
        _smoke_with((("device",), 5)),
        _smoke_with((("device",), "banana")),
        _smoke_with((("pairs", 0, "teacher_run"), None)),
        _smoke_with((("dataset",), {"name": "digits", "options": {1: 2}})),
        _smoke_with((("dataset",), {"name": "digits", "options": {"subset_seed": -1}})),
        _smoke_with((("teacher", "epochs"), 0)),
        _smoke_with((("teacher", "epochs"), 10**30)),
        _smoke_with((("student",), {"temperature": float("nan")})),
        _smoke_with((("tstddev", "epochs"), True)),
        _smoke_with((("grid", "epochs"), -1)),
        _smoke_with((("grid",), DELETE)),
        _smoke_with(overrides=("grid.seed=[9223372036854775808]",)),
        _smoke_with(overrides=("name=7",)),
    ],
    "cli-train": [*(
        ["teacher", "--lr", "9" * 400], ["teacher", "--seed", "9" * 5000],
        ["teacher", "--lr=-inf"], ["teacher", "--momentum", "nan"], ["teacher", "--epochs", "0"],
        ["student", "--teacher", "t", "--temperature", "5e-324"], ["student"],
        ["teacher", "--seed", str(2**63)], ["teacher", "--resize", "0"],
    )],
    "cli-rank": [*(
        [], ["--epochs", "0"], ["--agb-lambda", "nan"], ["--seeds", "-1"],
        ["--augs", "cutmix(beta=0)"], ["--per-batch", "--both-modes"], ["--batch-size", "1e3"],
    )],
}


# ----------------------------------------------------------------------------------------------
# the trust surfaces: folders read back, report values, foreign checkpoints

PLANTED = "augkd_fuzz_planted"  # a module beside the folder; importing it writes a marker
_ALLOWED_MODULES = ("augkd", "kornia", "albumentations")


def _external_module(spec: Any) -> str | None:
    """The module a ``module.path:Class`` spec would import, None for other specs."""
    if not isinstance(spec, str):
        return None
    match = re.match(r"^\s*([A-Za-z_][\w.]*)\s*(?:\([^()]*\))?\s*:", spec)
    return match.group(1) if match else None


@st.composite
def folder_inputs(draw) -> tuple[Any, dict]:
    """A DA spec and dataset options planted in a run folder's config.yaml."""
    spec = draw(st.sampled_from([
        f"{PLANTED}:X", f"{PLANTED}:X(a=1)", f"{PLANTED}.sub:Y", f" {PLANTED} :X",
        f"{PLANTED}(workers=2):X", "os:system", "subprocess:Popen", "builtins:eval",
        "this:X", "antigravity:X", "augkd.augment.erase:Cutout(size=4)",
        "kornia:RandomAffine(degrees=15)", "albumentations:HorizontalFlip(p=1.0)",
        f"kornia:{PLANTED}", "flip", "cutmix",
    ]) | da_specs())
    options = draw(st.sampled_from([{}, {"download": True}, {"download": "yes"},
                                    {"resize": 16}, {"download": True, "resize": 1}]))
    return spec, options


def _check_folder(item: tuple[Any, dict], tmp: Path, timeout: float) -> Record:
    from augkd.training import TrainConfig
    from augkd.training.run import RunDir

    spec, options = item
    folder = tmp / "run"
    folder.mkdir(exist_ok=True)
    config = TrainConfig(role="student", model="resnet8", teacher="t", epochs=1).to_dict()
    config.update(aug=spec, dataset_options=options)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                        encoding="utf-8")
    marker = tmp / f"{PLANTED}.ran"
    (tmp / f"{PLANTED}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp / PLANTED).mkdir(exist_ok=True)
    (tmp / PLANTED / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp / PLANTED / "sub.py").write_text("")
    sys.path.insert(0, str(tmp))
    for name in [m for m in sys.modules if m.split(".")[0] == PLANTED]:
        del sys.modules[name]

    def call() -> Any:
        try:
            return RunDir(folder).read_config()
        finally:
            if marker.exists():
                marker.unlink()
                raise RuntimeError(f"IMPORTED {PLANTED} from a folder (spec {spec!r})")

    module = _external_module(spec)
    problems = None
    if module is not None and module.split(".")[0] not in _ALLOWED_MODULES:
        problems = [f"a folder's spec imports {module}"]
    try:
        return classify("folder", f"config.yaml aug={spec!r} dataset_options={options!r}", call,
                        problems, lambda cfg: (["download kept"] if "download" in
                                               cfg.dataset_options else []), timeout)
    finally:
        sys.path.remove(str(tmp))


HOSTILE_TEXT = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "![x](http://h/t.png)",
                "[c](javascript:alert(1))", "<a href='x'>y</a>", "**b** _e_ `c`", "http://bare.x",
                "www.x.com", "# h", "1. l", "- l", "> q", "&lt;i&gt;", "a|b", "~~s~~", "\\<b>",
                "<!-- c -->", "<http://a.b>", "[r]: http://x", "$\\frac{$", "line\nbreak"]


@st.composite
def report_values(draw) -> list[str]:
    pick = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40)
    return draw(st.lists(pick | st.builds(lambda a, b: a + b, pick, pick), min_size=3,
                         max_size=3))


def _report_problems(rendered: str) -> list[str]:
    from html.parser import HTMLParser

    allowed = {"h2", "p", "table", "thead", "tbody", "tr", "th", "td"}  # the report's own
    found: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in allowed or any(k not in ("align", "style") for k, _ in attrs):
                found.append(f"<{tag} {attrs}> in the rendered report.md")

    Tags().feed(rendered)
    return found


def _check_report(values: list[str], tmp: Path, timeout: float) -> Record:
    import markdown
    import pandas as pd

    from augkd.report.render import _markdown_table, _md

    def call() -> str:
        table = pd.DataFrame({"aug": [values[0]], values[1]: [values[2]]})
        text = "\n\n".join([f"## {_md(values[0])}", _md(values[1]), _markdown_table(table)])
        return markdown.markdown(text, extensions=["tables"])

    return classify("report-md", f"report.md of {values!r}", call, None, _report_problems,
                    timeout)


@st.composite
def checkpoint_changes(draw) -> tuple[str, str, str]:
    key = draw(st.sampled_from(["fc.weight", "fc.bias", "conv1.weight", "bn1.running_var"]))
    dtype = draw(st.sampled_from(["float32", "float16", "float64", "bfloat16", "int64", "int8",
                                  "bool", "complex64", "sparse"]))
    value = draw(st.sampled_from(["as is", "nan", "inf", "-inf", "x1e30", "zeros"]))
    return key, dtype, value


def _check_checkpoint(item: tuple[str, str, str], tmp: Path, timeout: float) -> Record:
    import torch

    from augkd.models import create_model
    from augkd.models.checkpoint import load_foreign

    key, dtype, value = item
    state = create_model("resnet8", 10, 1).state_dict()
    tensor = state[key].clone()
    if value in ("nan", "inf", "-inf"):
        tensor.view(-1)[0] = float(value)
    elif value == "x1e30":
        tensor = tensor * 1e30
    elif value == "zeros":
        tensor = torch.zeros_like(tensor)
    tensor = tensor.to_sparse() if dtype == "sparse" else tensor.to(getattr(torch, dtype))
    state[key] = tensor
    problems = []
    if dtype in ("int64", "int8", "bool", "complex64", "sparse"):
        problems.append(f"{key} is {dtype}")
    if value in ("nan", "inf", "-inf") and dtype not in ("int64", "int8", "bool"):
        problems.append(f"{key} holds {value}")
    if value == "x1e30" and dtype == "float16":  # inf after the cast (bfloat16 reaches 3e38)
        problems.append(f"{key} overflows {dtype}")
    path = tmp / "ckpt.pth"
    return classify("checkpoint", f"resnet8 state with {key} {dtype} {value}",
                    _quiet(lambda: load_foreign({"model": state}, path, 10, 1)), problems, None,
                    timeout)


class _Special(str):
    """A marker for the yaml target: a path that is not a file."""


MISSING_FILE, A_DIRECTORY = _Special("<missing file>"), _Special("<a directory>")


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("augment", "`augkd.augment.create(spec)`", da_specs, _check_augment),
    Target("trainconfig", "`TrainConfig.from_dict(dict)`", train_dicts, _check_trainconfig),
    Target("yaml", "YAML file -> `TrainConfig.from_yaml` (`read_yaml_mapping`)", yaml_texts,
           _check_yaml),
    Target("sweep", "`augkd.sweep.load_spec(path, overrides)` (mutated digits_smoke.yaml)",
           sweep_inputs, _check_sweep),
    Target("cli-train", "`augkd.train.config_from_args(build_parser().parse_args(argv))`",
           train_argv, _check_cli_train),
    Target("cli-rank", "`augkd.rank.RankConfig` from `augkd.rank.build_parser()` argv",
           rank_argv, _check_cli_rank),
    Target("folder", "a planted run folder's config.yaml -> `RunDir.read_config()`",
           folder_inputs, _check_folder),
    Target("report-md", "hostile values -> report.md (`_md`, `_markdown_table`) -> markdown",
           report_values, _check_report),
    Target("checkpoint", "odd dtypes and values -> `load_foreign` (a foreign teacher's weights)",
           checkpoint_changes, _check_checkpoint),
)}


def run_target(name: str, examples: int, seed: int, timeout: float = 10.0,
               explicit: bool = True) -> list[Record]:
    """Fuzz one target: the :func:`explicit_inputs` (unless ``explicit`` is false), then
    ``examples`` generated ones (reproducible from ``seed``)."""
    target = TARGETS[name]
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix=f"augkd-fuzz-{name}-") as tmp:
        for item in explicit_inputs(name) if explicit else []:
            records.append(target.check(item, Path(tmp), timeout))

        @hypothesis_seed(seed)
        @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                  print_blob=False, report_multiple_bugs=False)
        @given(target.strategy())
        def body(item: Any) -> None:
            records.append(target.check(item, Path(tmp), timeout))

        body()
    return records


def failures(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """(tracebacks and hangs, accepted-but-invalid) of ``records``."""
    return ([r for r in records if r.outcome in (TRACEBACK, HANG)],
            [r for r in records if r.accepted_invalid])


# ----------------------------------------------------------------------------------------------
# report


def _md(text: str, n: int = 400) -> str:
    return _short(text, n).replace("|", "\\|").replace("`", "'").replace("\n", "\\n")


def _signature(r: Record) -> str:
    if r.outcome in (TRACEBACK, HANG):
        return re.sub(r": (?:'.*'|\".*\") @", " @", r.detail)
    return re.sub(r"[-+]?\d[\d.e+-]*|'[^']*'", "#", r.invalid[0])[:120]


def render(results: dict[str, list[Record]], args: argparse.Namespace, seconds: float) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "augkd"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " + uncommitted changes in augkd/" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    lines = [
        "# augkd fuzz results", "",
        f"`python benchmarks/fuzz/fuzz.py --examples {args.examples} --seed {args.seed}` "
        f"(augkd at {commit}; {seconds:.0f} s; hypothesis, no database, seeded). "
        "Outcomes: see benchmarks/fuzz/README.md.", "",
        "| target | what | inputs | accepted | rejected (clean) | TRACEBACK | hang | "
        "ACCEPTED-BUT-INVALID | rejected-but-valid (info) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, recs in results.items():
        c = Counter(r.outcome for r in recs)
        lines.append(
            f"| {name} | {TARGETS[name].what} | {len(recs)} | {c[ACCEPTED]} | {c[REJECTED]} | "
            f"{c[TRACEBACK]} | {c[HANG]} | {sum(r.accepted_invalid for r in recs)} | "
            f"{sum(r.rejected_valid for r in recs)} |")
    for name, recs in results.items():
        bad, invalid = failures(recs)
        odd = [r for r in recs if r.rejected_valid]
        if not (bad or invalid or odd):
            continue
        lines += ["", f"## {name}", ""]
        for title, group, show in (("Tracebacks and hangs", bad, lambda r: r.detail),
                                   ("Accepted but invalid", invalid,
                                    lambda r: "; ".join(r.invalid)),
                                   ("Rejected but valid by the oracle (informational)", odd,
                                    lambda r: r.detail)):
            if not group:
                continue
            lines += [f"### {title}: {len(group)}", ""]
            if group is not odd:
                sigs = Counter(_signature(r) for r in group)
                lines += ["Distinct kinds (count, kind):", ""]
                lines += [f"- {n} x `{_md(s, 200)}`" for s, n in sigs.most_common(20)]
                lines.append("")
            lines += ["| input | what happened |", "|---|---|"]
            lines += [f"| `{_md(r.input)}` | {_md(show(r))} |" for r in group[:10]]
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument("--out", type=Path, default=None, help="Markdown result file")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--case-timeout", type=float, default=10.0,
                        help="seconds after which one input counts as a hang")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = {}
    for name in args.targets:
        t1 = time.perf_counter()
        results[name] = run_target(name, args.examples, args.seed, args.case_timeout)
        bad, invalid = failures(results[name])
        print(f"{name}: {len(results[name])} inputs, {len(bad)} tracebacks/hangs, "
              f"{len(invalid)} accepted-but-invalid ({time.perf_counter() - t1:.1f} s)",
              flush=True)
    text = render(results, args, time.perf_counter() - t0)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"-> {args.out}")
    else:
        print(text)
    return 1 if any(any(failures(r)) for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
