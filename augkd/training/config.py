"""Typed training configuration: defaults from the protocol, overridable from YAML and the CLI.

The config is data: a frozen copy is written next to every run (``config.yaml``) so the run can
be repeated, or resumed, from its folder alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from augkd.numbers import is_finite

ROLES = ("teacher", "student")
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes seeds below 2**64; epoch seeds mix it
MAX_TEMPERATURE = 1000.0  # KD's softmax(t / T) is uniform to float precision long before
RUNTIME_FIELDS = ("progress", "device", "compile", "tensorboard", "wandb", "allow_noop_aug")
#: Fields that only a student run reads: a teacher's config.yaml leaves them out, and two
#: teacher configs never differ in them.
STUDENT_FIELDS = ("teacher", "teacher_model", "aug", "per_batch", "allow_noop_aug",
                  "joint_forward", "distill", "temperature", "balancer", "agb_lambda",
                  "agb_search", "agb_search_lambdas", "agb_search_epochs", "holdout_fraction",
                  "w_task", "w_distill")
# dataset options that do not change the data: a run resumed without them is the same run
RUNTIME_DATASET_OPTIONS = ("download", "data_on_device", "workers")
# Filled in from the dataset when a run starts (None until then); a None on either side of a
# comparison matches any value.
RESOLVED_FIELDS = ("mean", "std")

#: Balancer options that come from config fields, not from the ``balancer`` spec, so configs
#: and run folders from before balancer specs keep their meaning (and AGB's search sets lam).
BALANCER_FIELDS = {"agb": {"lam": "agb_lambda"},  # (agb(lam=...) is read into the fields)
                   "manual": {"w_task": "w_task", "w_distill": "w_distill"}}

#: How a run's config.yaml groups the fields, one block per concern. A config file may use
#: these blocks or the flat field names (every config written before the blocks is flat);
#: :func:`flatten_blocks` reads both.
BLOCKS: dict[str, tuple[str, ...]] = {
    "run": ("role", "model", "quant", "seed"),
    "data": ("dataset", "root", "dataset_options", "mean", "std"),
    "distillation": ("teacher", "teacher_model", "distill", "temperature", "aug", "per_batch",
                     "joint_forward"),
    "balancing": ("balancer", "agb_lambda", "agb_search", "agb_search_lambdas",
                  "agb_search_epochs", "holdout_fraction", "w_task", "w_distill"),
    "optimization": ("recipe", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                     "optimizer", "schedule", "lr_decay_fractions", "lr_decay_rate"),
    "runtime": ("device", "bf16", "channels_last", "compile", "progress", "tensorboard",
                "wandb", "allow_noop_aug"),
}
_BLOCK_OF = {name: block for block, names in BLOCKS.items() for name in names}


def flatten_blocks(values: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields from a mapping that groups them in :data:`BLOCKS` or lists them flat
    (or both); unknown keys pass through for :meth:`TrainConfig.from_dict` to name.

    Raises:
        ValueError: a block that is not a mapping, a key in the wrong block (the message names
            the right one) or a field given twice.
    """
    out: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key in out:
            raise ValueError(f"config field {key!r} given twice ({where})")
        out[key] = value

    for key, value in values.items():
        if key not in BLOCKS:
            put(key, value, "flat and in a block")
            continue
        if not isinstance(value, dict):
            raise ValueError(f"config block {key!r} must map its fields "
                             f"({', '.join(BLOCKS[key])}), got {type(value).__name__}")
        for name, field_value in value.items():
            if name not in BLOCKS[key]:
                hint = (f"; {name!r} belongs in block {_BLOCK_OF[name]!r}"
                        if name in _BLOCK_OF else "")
                raise ValueError(f"unknown key {name!r} in config block {key!r}; its keys: "
                                 f"{', '.join(BLOCKS[key])}{hint}")
            put(name, field_value, f"in block {key!r} and elsewhere")
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The TrainConfig fields of a YAML config file, blocks flattened (:func:`flatten_blocks`)."""
    return flatten_blocks(read_yaml_mapping(path))


# docs/protocol.md §1: lr 0.01 for MobileNetV2 and ShuffleNet students, 0.05 otherwise.
_LOW_LR_MODELS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")


def default_lr(model: str) -> float:
    """The protocol's learning rate for ``model`` (0.01 for the mobile architectures)."""
    return 0.01 if model in _LOW_LR_MODELS else 0.05


#: Named optimization presets (``recipe``): the fields a preset sets where the config file
#: and the command line do not. ``cifar`` is this class's defaults (docs/protocol.md section 1);
#: the DA-in-KD code trains on Tiny ImageNet with those same defaults (Good-DA-in-KD
#: option.py: one set of defaults for cifar100 and tinyimagenet), hence ``tinyimagenet`` is
#: the same preset. ``imagenet`` is the KD literature's ResNet34 -> ResNet18 recipe as
#: mdistiller's configs/imagenet/r34_r18 set it: SGD, lr 0.1 per 256 images of batch (0.2 at
#: its batch 512), momentum 0.9, weight decay 1e-4, 100 epochs, lr x0.1 at 30, 60 and 90.
RECIPES: dict[str, dict[str, Any]] = {
    "cifar": {},
    "tinyimagenet": {},
    "imagenet": {"epochs": 100, "batch_size": 256, "lr_per_256": 0.1, "momentum": 0.9,
                 "weight_decay": 1e-4, "lr_decay_fractions": (0.3, 0.6, 0.9),
                 "lr_decay_rate": 0.1},
}


def apply_recipe(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (TrainConfig fields) with what their ``recipe`` sets filled in where they
    leave it unset; the lr of a per-256 recipe scales with the batch size (lr = 0.1 x batch /
    256 for ``imagenet``) unless ``lr`` is given. Unchanged without a recipe.

    Raises:
        ValueError: an unknown recipe name (the message lists the known ones).
    """
    name = values.get("recipe")
    if name is None:
        return dict(values)
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    preset = dict(RECIPES[name])
    per_256 = preset.pop("lr_per_256", None)
    out = {**preset, **values}
    if per_256 is not None and "lr" not in values:
        out["lr"] = per_256 * out["batch_size"] / 256
    return out


@dataclass
class TrainConfig:
    """Everything that defines a teacher or student run.

    The defaults are the recipe of docs/protocol.md: SGD (lr 0.05, momentum 0.9, weight decay 5e-4),
    batch 64, 240 epochs, lr x0.1 at 62.5 / 75 / 87.5 % of the epochs (150/180/210 of 240,
    so ``--epochs`` scales the decay points with it), per-sample crop+flip, KD at T = 4,
    AGB with its lambda chosen by the warm-up search (Algorithm 1), two forwards per step.
    ``distill`` names the method (default Hinton's KD); the manual balancer's ``w_task`` /
    ``w_distill`` default to that method's hand-tuned weights (:attr:`manual_weights`).

    ``mean`` / ``std`` are the normalization of the run: None means the dataset's (published
    constants for cifar10/cifar100, else the training split's statistics); the resolved
    values are written into the run's ``config.yaml``. ``dataset_options`` holds the loader's
    options and the load-time transforms ``resize``, ``train_subset`` and ``subset_seed``.
    ``agb_search_epochs`` None means 5 warm-up epochs at 240 scaled with ``epochs`` (at least
    1); see :attr:`search_epochs`.
    """

    role: str = "teacher"
    model: str = "resnet8"
    recipe: str | None = None  # a named optimization preset (RECIPES), recorded with the run
    quant: str | None = None  # DoReFa bit widths "wNaM" (e.g. w2a1); None: full precision
    dataset: str = "digits"
    root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    epochs: int = 240
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_fractions: tuple[float, ...] = (0.625, 0.75, 0.875)
    lr_decay_rate: float = 0.1
    # the optimizer and the lr schedule, augkd.training.optim specs such as "adamw(beta2=0.99)"
    # and "cosine(warmup=5)"; SGD reads momentum and multistep lr_decay_* (fields above)
    optimizer: str = "sgd"
    schedule: str = "multistep"
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA (ignored on CPU)
    compile: bool = False
    progress: bool = True
    # per-epoch scalars into RUN_DIR/tensorboard/ (augkd.training.tensorboard; augkd[tensorboard])
    tensorboard: bool = False
    # per-epoch records to Weights & Biases (augkd.training.wandb_log; augkd[wandb])
    wandb: bool = False
    # student runs only
    teacher: str | None = None
    teacher_model: str | None = None  # of a foreign checkpoint; None: inferred from its weights
    aug: str | None = None  # the extra DA under study, an augkd.augment spec
    per_batch: bool = False  # the paper's once-per-batch random parameters for the extra DA
    # run an extra DA that changes no pixel of a probe batch (augkd.augment.probe), warning
    allow_noop_aug: bool = False
    # One student (and teacher) forward over [x; x~] instead of the reference's two: pools the
    # views' BatchNorm statistics and updates the running ones once per step (not the paper's).
    joint_forward: bool = False
    # the distillation method, an augkd.distill spec such as "fitnet(hint_layer=2)"
    distill: str = "kd"
    temperature: float = 4.0
    # the loss balancer, an augkd.balance spec such as "gradnorm(alpha=1.0, lr=0.01)"; agb's lam
    # and manual's weights are the fields agb_lambda, w_task and w_distill (BALANCER_FIELDS)
    balancer: str = "agb"
    agb_lambda: float = 0.5  # used as given when agb_search is off (--agb-lambda X)
    agb_search: bool = True  # AGB's Algorithm 1: pick lambda on a held-out split first
    agb_search_lambdas: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    agb_search_epochs: int | None = None
    holdout_fraction: float = 0.1
    # manual balancer: None is the method's hand-tuned weight (see manual_weights)
    w_task: float | None = None
    w_distill: float | None = None

    def __post_init__(self) -> None:
        self._read_dataset_spec()
        self._read_agb_lam()
        self.validate()

    def _read_dataset_spec(self) -> None:
        """``dataset: imagefolder(size=64)`` is ``dataset: imagefolder`` with ``size: 64`` in
        ``dataset_options``, which the run records (one run, either spelling)."""
        if isinstance(self.dataset, str) and "(" in self.dataset:
            from augkd.data.dataset import split_dataset_spec

            options = self.dataset_options if isinstance(self.dataset_options, dict) else {}
            self.dataset, self.dataset_options = split_dataset_spec(self.dataset, options)

    def _read_agb_lam(self) -> None:
        """``balancer: agb(lam=search)`` is ``agb`` with the search on; ``agb(lam=0.3)`` is
        ``agb`` at lambda 0.3 without it: the spec's lam moves into the fields
        (``agb_search``, ``agb_lambda``), which the run records and resumes by, so both
        spellings are one run. A sweep grid can then compare ``agb(lam=search)`` with fixed
        lambdas."""
        from augkd.grammar import format_value, parse_spec

        try:
            name, options = parse_spec(self.balancer, kind="balancer")
        except ValueError:
            return  # validate() names the problem
        if name != "agb" or "lam" not in options:
            return
        lam = options.pop("lam")
        if lam == "search":
            self.agb_search = True
        elif isinstance(lam, int | float) and not isinstance(lam, bool) and 0 <= lam <= 1:
            self.agb_lambda, self.agb_search = float(lam), False
        else:
            raise ValueError(f"balancer agb: bad value lam={lam!r}; allowed: search, or a "
                             "number in [0, 1]")
        rest = ", ".join(f"{k}={format_value(v)}" for k, v in options.items())
        self.balancer = f"agb({rest})" if rest else "agb"

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what it accepts."""
        _check_types(self)
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        if self.agb_search_epochs is not None:
            positive["agb_search_epochs"] = self.agb_search_epochs
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (is_finite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (is_finite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got "
                             f"{self.weight_decay!r}")
        if not 0 < self.lr_decay_rate <= 1:
            raise ValueError(f"lr_decay_rate must be in (0, 1], got {self.lr_decay_rate!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        if not all(0 < f <= 1 for f in self.lr_decay_fractions):
            raise ValueError(
                f"lr_decay_fractions must lie in (0, 1], got {self.lr_decay_fractions}"
            )
        if not 0 <= self.agb_lambda <= 1:
            raise ValueError(f"agb_lambda must be in [0, 1], got {self.agb_lambda!r}")
        if not self.agb_search_lambdas:
            raise ValueError("agb_search_lambdas must list at least one lambda in [0, 1]")
        for name in ("mean", "std"):
            stats = getattr(self, name)
            if stats is not None and not all(is_finite(v) and v >= 0 for v in stats):
                raise ValueError(f"{name} must hold finite values >= 0, got {stats}")
        if self.std is not None and not all(v > 0 for v in self.std):
            raise ValueError(f"std must be > 0 per channel, got {self.std}")
        if not all(0 <= lam <= 1 for lam in self.agb_search_lambdas):
            raise ValueError(
                f"agb_search_lambdas must lie in [0, 1], got {self.agb_search_lambdas}"
            )
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}")
        if not 0 < self.temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got "
                             f"{self.temperature!r}")
        for name in ("w_task", "w_distill"):
            value = getattr(self, name)
            if value is not None and not (is_finite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.role == "student" and not self.teacher:
            raise ValueError("a student run needs a teacher: give --teacher RUN_DIR_OR_CKPT")
        if self.role == "teacher":
            given = [k for k in ("teacher", "aug", "per_batch", "joint_forward")
                     if getattr(self, k)]
            if self.distill != "kd":
                given.append("distill")
            if given:
                raise ValueError(
                    f"{', '.join(given)} applies to student runs only; a teacher trains with "
                    "cross-entropy and the base crop+flip"
                )
        if self.aug is not None:
            from augkd.augment import create  # fails here, naming a bad DA, before any work

            create(self.aug, per_batch=True if self.per_batch else None)
        from augkd.distill import resolve_method
        from augkd.models import MODELS

        resolve_method(self.distill)  # a bad method name or option fails here, by name
        if self.quant is not None:
            from augkd.models.quant import parse_quant

            try:
                parse_quant(self.quant)
            except ValueError as err:
                raise ValueError(f"quant: {err}") from None
        self.balancer_options(check=True)  # a bad name, option or value fails here, by name
        from augkd.training.optim import resolve_optimizer, resolve_schedule

        resolve_optimizer(self.optimizer, self.momentum)
        resolve_schedule(self.schedule).check(self.epochs)
        MODELS.get(self.model)
        if self.teacher_model is not None:
            MODELS.get(self.teacher_model)

    @property
    def uses_agb_search(self) -> bool:
        """Whether a student run first searches AGB's lambda (balancer agb, search on)."""
        return self.role == "student" and self.balancer_name == "agb" and self.agb_search

    @property
    def balancer_name(self) -> str:
        """The registered name in the ``balancer`` spec (``gradnorm`` of ``gradnorm(alpha=1)``)."""
        from augkd.balance.base import resolve_balancer

        return resolve_balancer(self.balancer)[0].name

    def balancer_options(self, agb_lambda: float | None = None,
                         check: bool = False) -> dict[str, Any]:
        """The options of the run's balancer: the spec's, plus agb's ``lam`` (``agb_lambda``,
        or the given one: the lambda the search chose) and manual's weights
        (:attr:`manual_weights`).

        Raises:
            ValueError: naming the option: the spec sets an option that has its own field
                (``agb(lam=...)``), or (with ``check``) the balancer refuses its options.
        """
        from augkd.balance.base import resolve_balancer

        cls, options = resolve_balancer(self.balancer)  # errors name the balancer and option
        fields = BALANCER_FIELDS.get(cls.name, {})
        for option, name in fields.items():
            if option in options:
                raise ValueError(f"balancer {cls.name}: set {option} with the config field "
                                 f"{name} (--{name.replace('_', '-')}), not in the spec "
                                 f"{self.balancer!r}")
        lam = self.agb_lambda if agb_lambda is None else agb_lambda
        w_task, w_distill = self.manual_weights
        values = {"agb_lambda": lam, "w_task": w_task, "w_distill": w_distill}
        options.update({option: values[name] for option, name in fields.items()})
        if check:  # ranges are the balancer's own checks: build one (a few tensors at most)
            cls(**options)
        return options

    @property
    def manual_weights(self) -> tuple[float, float]:
        """``(w_task, w_distill)`` of the manual balancer: as given, else the common
        framework's hand-tuned weights of the method (KD: CE 0.1, KD 0.9; a feature method:
        CE 1 and its beta, docs/protocol.md §8)."""
        from augkd.distill import resolve_method

        default_task, default_distill = resolve_method(self.distill)[0].weights
        return (default_task if self.w_task is None else float(self.w_task),
                default_distill if self.w_distill is None else float(self.w_distill))

    @property
    def search_epochs(self) -> int:
        """Warm-up epochs per candidate lambda: as given, else 5 at 240 epochs scaled with
        ``epochs`` (the paper's 5 of 240), at least 1."""
        if self.agb_search_epochs is not None:
            return self.agb_search_epochs
        return max(1, round(5 * self.epochs / 240))

    @property
    def lr_milestones(self) -> list[int]:
        """Epochs after which the lr is multiplied by ``lr_decay_rate`` (150/180/210 of 240)."""
        return sorted({max(1, round(f * self.epochs)) for f in self.lr_decay_fractions})

    def at_initial_lr(self, **changes: Any) -> TrainConfig:
        """A copy (with ``changes``) whose lr stays at its initial value (after the schedule's
        warm-up, if any, shortened to fit): AGB's warm-up search and a tune trial train so."""
        from augkd.training.optim import resolve_schedule

        epochs = changes.get("epochs", self.epochs)
        warmup = min(resolve_schedule(self.schedule).warmup, epochs - 1)
        schedule = f"constant(warmup={warmup})" if warmup else "multistep"
        return self.replace(**changes, schedule=schedule, lr_decay_fractions=(1.0,))

    def to_dict(self) -> dict[str, Any]:
        """A YAML/JSON-friendly dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def applicable_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` less the fields the run's role never reads (a teacher's
        :data:`STUDENT_FIELDS`); :meth:`from_dict` gives them their defaults back."""
        out = self.to_dict()
        if self.role == "teacher":
            out = {k: v for k, v in out.items() if k not in STUDENT_FIELDS}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict of fields, flat or in :data:`BLOCKS`, rejecting unknown
        keys by name."""
        data = flatten_blocks(data)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted((k for k in data if k not in known), key=repr)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(known)}"
            )
        values = {k: tuple(v) if isinstance(v, list) and k != "dataset_options" else v
                  for k, v in apply_recipe(data).items()}
        return cls(**values)

    def differences(self, other: TrainConfig) -> list[str]:
        """Fields that differ from ``other``, ignoring the runtime-only ones (progress, device,
        compile, tensorboard, wandb), which may change when a run is resumed, and, between two
        teachers, the student-only ones. The manual weights
        compare by their values (an unset weight is the method's default)."""
        mine, theirs = self.to_dict(), other.to_dict()
        for values in (mine, theirs):  # whether to download is the command line's, not the run's
            values["dataset_options"] = {k: v for k, v in values["dataset_options"].items()
                                         if k not in RUNTIME_DATASET_OPTIONS}
        mine["w_task"], mine["w_distill"] = self.manual_weights
        theirs["w_task"], theirs["w_distill"] = other.manual_weights
        ignored = set(RUNTIME_FIELDS)
        if self.role == other.role == "teacher":  # settings a teacher never reads
            ignored.update(STUDENT_FIELDS)
        return [
            k for k in mine
            if k not in ignored and mine[k] != theirs[k]
            and not (k in RESOLVED_FIELDS and None in (mine[k], theirs[k]))
        ]

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_yaml(self) -> str:
        """The config as YAML in its :data:`BLOCKS`, the fields that apply to its role only (a
        teacher's has no distillation and balancing blocks)."""
        values = self.applicable_dict()
        blocks = {block: {name: values[name] for name in names if name in values}
                  for block, names in BLOCKS.items()}
        return yaml.safe_dump({k: v for k, v in blocks.items() if v}, sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_config_file(path))


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; clear errors for a missing file, bad YAML or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(yaml_error(path, err)) from None
    if data is None:  # an empty file: every default
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def yaml_error(path: str | Path, err: yaml.YAMLError) -> str:
    """One line for a YAML parse error: the file, the line and the problem."""
    mark = getattr(err, "problem_mark", None)
    where = f", line {mark.line + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{path} is not valid YAML{where}: {problem}"


def _check_types(cfg: TrainConfig) -> None:
    """Each field holds a value of its annotated type (ints widen to floats)."""
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), str(f.type)
        optional = "None" in hint
        if value is None and optional:
            continue
        base = hint.replace(" | None", "")
        if base == "bool":
            ok = isinstance(value, bool)
        elif base == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif base == "float":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif base == "str":
            ok = isinstance(value, str)
        elif base.startswith("tuple"):
            ok = isinstance(value, tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            )
        elif base.startswith("dict"):
            ok = isinstance(value, dict)
        else:
            ok = True
        if not ok:
            raise ValueError(f"{f.name} must be {hint}, got {value!r}")
