"""What a ranking is asked to do (:class:`RankConfig`), and the thresholds of its warnings."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from augkd.augment import PAPER_DAS, create
from augkd.balance import BALANCERS
from augkd.distill import resolve_method
from augkd.models import MODELS

MODES = ("per-image", "per-batch")
#: The paper's student recipe, in epochs (docs/protocol.md §1).
RECIPE_EPOCHS = 240
#: Below this many student epochs --validate warns that its correlation may not carry over:
#: 15 is the shortest at which this project reproduced the correlation (reports/cifar10-cpu).
MIN_STUDENT_EPOCHS = 15
#: A correlation across fewer DAs than this is flagged (9 in the paper; 3 is the minimum).
MIN_DAS_FOR_CORRELATION = 6
#: A teacher whose test top-1 is below chance + TEACHER_FLOOR x (100 % - chance) is flagged:
#: less than halfway from chance to perfect, its probabilities sit near uniform and T. stddev
#: may order the DAs by noise (10 classes: 55 %; 100 classes: 50.5 %).
TEACHER_FLOOR = 0.5
#: An AGB lambda whose held-out top-1 is within this many binomial SEs of the chosen one's is
#: reported as indistinguishable from it.
AGB_CLOSE_SE = 2.0


@dataclasses.dataclass
class RankConfig:
    """What ``python -m augkd.rank`` does; every field is a CLI flag."""

    dataset: str = "digits"
    root: str | None = None
    teacher: str = "resnet20"  # a run folder, a checkpoint, or a model name to train first
    teacher_model: str | None = None  # architecture of a foreign checkpoint (else inferred)
    teacher_epochs: int = 30  # when the teacher is trained here
    augs: tuple[str, ...] = tuple(PAPER_DAS)
    modes: tuple[str, ...] = ("per-image",)
    epochs: int = 10  # T. stddev epochs over the training set
    batch_size: int = 64
    group_size: int = 10
    seeds: int = 1
    # T. stddev on a class-stratified subset of N training images, drawn with each seed (so
    # the seed-to-seed spread includes the subset's); None: the whole training split
    tstddev_subset: int | None = None
    student: str = "resnet8"  # the pair's student: trained with --validate, and (frozen,
    # after a short KD run) cutmixpick-s's scorer unless --student-run gives one
    student_run: str | None = None  # a finished KD student run of this teacher: the scorer
    scorer_epochs: int = 10  # the short crop+flip KD run that trains a scorer when needed
    validate: bool = False
    student_epochs: int = 30
    balancer: str = "manual"
    distill: str = "kd"  # the distillation method of --validate's students
    agb_lambda: float | None = None  # AGB with a fixed lambda (no search) in --validate
    device: str = "auto"
    out: str | None = None
    download: bool = False  # cifar10/cifar100 only, and only when asked
    resize: int | None = None  # dataset option: images resized once at load (antialiased)
    train_subset: int | None = None  # dataset option: a class-stratified training subset
    subset_seed: int = 0
    # the loader's other options (size, classes...), e.g. a teacher run's, taken with its data
    data_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    bf16: bool = False  # T. stddev's teacher forwards in bf16 autocast on CUDA
    # --validate's HTML/Markdown report goes to report_dir/<OUT's name>; None: OUT/report
    report_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for mode in self.modes:
            if mode not in MODES:
                raise ValueError(f"unknown DA mode {mode!r}; known: {', '.join(MODES)}")
        for aug in self.augs:
            for mode in self.modes:  # fails early, naming an unknown DA or parameter
                create(aug, per_batch=True if mode == "per-batch" else None)
        MODELS.get(self.student)  # unknown names -> the registry's error listing known ones
        BALANCERS.get(self.balancer)
        resolve_method(self.distill)  # an unknown method or option fails here, by name
        if self.agb_lambda is not None and not 0 <= self.agb_lambda <= 1:
            raise ValueError(f"--agb-lambda must be in [0, 1], got {self.agb_lambda}")
        if self.tstddev_subset is not None and self.tstddev_subset < 1:
            raise ValueError(f"--tstddev-subset must be >= 1, got {self.tstddev_subset}")
        for name in ("epochs", "batch_size", "group_size", "seeds", "teacher_epochs",
                     "student_epochs", "scorer_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(self, name)}")


def dataset_options(cfg: RankConfig) -> dict[str, Any]:
    """The dataset options of ``cfg`` as ``load_dataset`` and ``TrainConfig`` take them."""
    options: dict[str, Any] = {**cfg.data_options}
    if cfg.download:
        options["download"] = True
    if cfg.resize is not None:
        options["resize"] = cfg.resize
    if cfg.train_subset is not None:
        options.update(train_subset=cfg.train_subset, subset_seed=cfg.subset_seed)
    return options


def cache_root(cfg: RankConfig) -> Path:
    root = cfg.cache_dir or os.environ.get("AUGKD_CACHE") or Path.home() / ".cache" / "augkd"
    return Path(root)


