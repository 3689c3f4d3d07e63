"""``python -m augkd.rank``: rank the DAs for distilling a teacher, from the teacher alone.

For every DA spec, the teacher-only T. stddev (docs/protocol.md §3) is measured; the DAs are
ranked lowest first (a good DA lowers it). With ``--validate`` one student per DA (and seed) is
distilled with the trainer, and the correlation of T. stddev with the students' test loss is
reported with p-values, in the terminal, in the results folder and in an HTML/Markdown report.

With no arguments it runs the embedded default: scikit-learn's digits, a small resnet20 teacher
trained on first use and cached, all nine DAs of the benchmark.

Results folder (read by ``python -m augkd.report``)::

    OUT/results.csv     one row per DA, lowest T. stddev first: rank (the position), tier,
                        aug, t_stddev, t_stddev_se, t_stddev_std (blank with one seed),
                        [s_test_loss(_se, _std), s_test_loss_tier, s_test_acc(_std)], n_seeds
    OUT/summary.json    protocol, timings, uncertainty, tiers, recommended, warnings, and
                        (with --validate) pearson/spearman/kendall, s_test_loss_tiers and
                        effect_vs_noise (the ANOVA of the per-seed values)
    OUT/per_seed.csv    every (DA, seed) measurement before averaging, with its one-run SE
    OUT/tstddev/        the recorded group means of every measurement (to recompute the value)
    OUT/students/       the student runs of --validate

With ``--both-modes`` OUT holds one such folder per mode: OUT/per-image/, OUT/per-batch/.

How sure the ranking is (:mod:`augkd.metrics.tiers`): every T. stddev has a standard error,
one run's from a bootstrap over its groups, several seeds' from their spread (never below the
one-run error); walking down the sorted list, each DA joins its tier unless a Welch test
separates it from the tier's best (Bonferroni over the k - 1 tests), and the first tier is the
recommendation ("recommended: X (tied with Y)"). Warnings name what makes an answer weak: a
teacher near chance (:data:`TEACHER_FLOOR`), a correlation from fewer than
:data:`MIN_DAS_FOR_CORRELATION` DAs or students shorter than :data:`MIN_STUDENT_EPOCHS` epochs,
and AGB lambdas that its held-out split cannot tell apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from augkd.augment import PAPER_DAS, create
from augkd.augment.pipeline import BASE_SPEC, Normalize, ViewPipeline
from augkd.augment.probe import probe_augmentation
from augkd.balance import BALANCERS
from augkd.cli import run_cli
from augkd.data import Dataset, load_dataset
from augkd.data.archive import file_sha256
from augkd.data.dataset import stratified_subset
from augkd.distill import resolve_method
from augkd.metrics import correlations, measure_t_stddev
from augkd.metrics.tiers import (
    ALPHA,
    Tiers,
    accuracy_se,
    bootstrap_t_stddev_se,
    describe_tiers,
    effect_vs_noise,
    estimate,
    leader_tiers,
)
from augkd.models import MODELS
from augkd.report import build_report, write_results
from augkd.training import TrainConfig, default_lr, load_student, load_teacher, train
from augkd.training.api import (
    holdout_splits,
    inherit_teacher_data,
    resolve_teacher_file,
    train_once,
)
from augkd.training.run import RunDir, safe_name
from augkd.training.trainer import Split, resolve_device

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


def obtain_teacher(cfg: RankConfig, data: Dataset, device: torch.device, log=print):
    """Load the teacher, training (and caching) one first when ``cfg.teacher`` is a model name."""
    if not Path(cfg.teacher).exists() and cfg.teacher not in MODELS:
        raise FileNotFoundError(
            f"--teacher {cfg.teacher!r} is neither a run folder or checkpoint nor a model name "
            f"to train one (known: {', '.join(MODELS)})"
        )
    if Path(cfg.teacher).exists():
        return (load_teacher(cfg.teacher, data, device, cfg.teacher_model, log=log),
                Path(cfg.teacher))
    name = f"{data.name}-{data.checksum[:12]}-{safe_name(cfg.teacher)}-e{cfg.teacher_epochs}-s0"
    run_dir = cache_root(cfg) / "teachers" / name
    run = RunDir(run_dir)
    if not run.is_finished():
        log(f"training a {cfg.teacher} teacher on {data.name} for {cfg.teacher_epochs} epochs "
            f"(cached in {run_dir})")
        tcfg = TrainConfig(role="teacher", model=cfg.teacher, dataset=cfg.dataset, root=cfg.root,
                           dataset_options=dataset_options(cfg),
                           epochs=cfg.teacher_epochs, lr=default_lr(cfg.teacher),
                           device=cfg.device, progress=cfg.progress)
        train_once(tcfg, run_dir, data=data, log=log, what=f"teacher {run_dir.name}")
    else:
        log(f"using the cached {cfg.teacher} teacher in {run_dir}")
    return load_teacher(run_dir, data, device), run_dir


def measure_aug(
    teacher, images, normalize: Normalize, aug: str, mode: str, seed: int, *,
    student=None, epochs: int = 10, batch_size: int = 64, group_size: int = 10,
    progress: bool = True, bf16: bool = False, teacher_name: str = "the teacher",
    base_aug: str = BASE_SPEC, device: torch.device | str | None = None,
):
    """T. stddev of one DA spec in one mode with one seed (the unit of work of rank and sweeps).

    ``base_aug`` is the dataset's base DA (``Dataset.base_aug``: crop+flip for CIFAR-sized
    data, resized-crop+flip for ImageNet); ``images`` may sit in host memory when they do not
    fit on ``device``, where the teacher runs (default: the images' device).

    ``bf16`` runs the teacher's forwards in bfloat16 autocast on CUDA (faster; the softmax stays
    float32). Off by default: T. stddev separates DAs by differences of a few 1e-4, and fp32
    (TF32 convolutions) keeps the teacher's probabilities as the paper computed them.
    """
    extra = create(aug, per_batch=True if mode == "per-batch" else None)
    probe_augmentation(extra, aug, images)  # a DA that fails or changes nothing stops here
    pipeline = ViewPipeline(create(base_aug), extra, normalize)
    device = images.device if device is None else torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    on_cuda = device.type == "cuda"
    # fp32 unless bf16 is asked for on CUDA, whatever autocast the caller runs under
    precision = (torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and bf16
                 else torch.autocast(device.type, enabled=False))
    with precision:
        result = measure_t_stddev(
            teacher, images, pipeline, epochs=epochs, batch_size=batch_size,
            group_size=group_size, generator=generator, student=student, progress=progress,
            device=device,
        )
    if not (math.isfinite(result.value) and torch.isfinite(result.group_means).all()):
        raise ValueError(
            f"T. stddev of {aug} ({mode}, seed {seed}) is {result.value}: {teacher_name} "
            "gives non-finite (NaN or Inf) outputs; check the teacher's weights and test loss"
        )
    return result


def needs_student_scorer(augs) -> bool:
    """Whether any DA spec ranks a pool with the student: cutmixpick-s, ``pick(SPEC,
    by=student)`` or ``by=kl``."""
    return any(getattr(create(a), "score", None) in ("student", "kl") for a in augs)


def scorer_run_dir(root: Path, data: Dataset, teacher_dir: Path, student: str,
                   epochs: int) -> Path:
    """Where the short KD student that scores cutmixpick-s is cached: keyed by the data, the
    teacher's weights (sha256 of its model file), the architecture and the epochs."""
    teacher_key = file_sha256(resolve_teacher_file(teacher_dir))[:12]
    return (root / "students" /
            f"{data.name}-{data.checksum[:12]}-t{teacher_key}-{student}-crop+flip-e{epochs}-s0")


def obtain_scoring_student(cfg: RankConfig, data: Dataset, teacher_dir: Path, device,
                           log=print):
    """The frozen, trained KD student that ranks cutmixpick-s's pool (docs/protocol.md §1).

    ``--student-run`` gives it; otherwise a short crop+flip KD run of the pair's student
    (``--scorer-epochs``, the manual 0.1/0.9 balancer) is trained once and cached like the
    teacher.
    """
    if cfg.student_run is not None:
        model, manifest = load_student(cfg.student_run, data, device, teacher=teacher_dir)
        log(f"cutmixpick-s scorer: student {manifest['architecture']} from {cfg.student_run} "
            f"(test top-1 {manifest['test_top1']:.2f}%)")
        return model
    run = RunDir(scorer_run_dir(cache_root(cfg), data, teacher_dir, cfg.student,
                                cfg.scorer_epochs))
    if not run.is_finished():
        log(f"cutmixpick-s needs a trained student: distilling a {cfg.student} for "
            f"{cfg.scorer_epochs} epochs with crop+flip (cached in {run.path})")
        scfg = TrainConfig(
            role="student", model=cfg.student, dataset=cfg.dataset, root=cfg.root,
            dataset_options=dataset_options(cfg), teacher=str(teacher_dir),
            teacher_model=cfg.teacher_model, aug="crop+flip", epochs=cfg.scorer_epochs,
            lr=default_lr(cfg.student), balancer="manual", device=cfg.device,
            progress=cfg.progress,
        )
        train_once(scfg, run.path, data=data, log=log, quiet=True,
                   what=f"scorer student {run.path.name}")
    else:
        log(f"cutmixpick-s scorer: the cached {cfg.student} KD student in {run.path}")
    model, manifest = load_student(run.path, data, device, teacher=teacher_dir)
    log(f"cutmixpick-s scorer: test top-1 {manifest['test_top1']:.2f}%")
    return model


def measure(cfg: RankConfig, data: Dataset, teacher, device, mode: str, out: Path, log=print,
            student_scorer=None):
    """T. stddev of every DA and seed in one mode: a DataFrame with one row per (aug, seed).

    ``student_scorer`` is the frozen trained student for DAs scored by the student."""
    on_device = data.images_on(device)
    normalize = Normalize(data.mean, data.std)
    rows = []
    (out / "tstddev").mkdir(parents=True, exist_ok=True)
    if cfg.tstddev_subset is not None and cfg.tstddev_subset > len(data.train_labels):
        raise ValueError(f"--tstddev-subset {cfg.tstddev_subset} is larger than the training "
                         f"split ({len(data.train_labels):,} images)")
    for seed in range(cfg.seeds):
        images = data.train_images
        if cfg.tstddev_subset is not None:  # this seed's class-stratified subset
            images = images[stratified_subset(data.train_labels, cfg.tstddev_subset, seed)]
        images = images.to(device) if on_device else images
        for aug in cfg.augs:
            result = measure_aug(
                teacher, images, normalize, aug, mode, seed, student=student_scorer,
                epochs=cfg.epochs, batch_size=cfg.batch_size, group_size=cfg.group_size,
                progress=cfg.progress, bf16=cfg.bf16,
                teacher_name=f"teacher {cfg.teacher}", base_aug=data.base_aug, device=device,
            )
            torch.save(result.group_means, out / "tstddev" / f"{safe_name(aug)}-{mode}-s{seed}.pt")
            se = bootstrap_t_stddev_se(result.group_means, seed=seed)
            rows.append({"aug": aug, "seed": seed, "t_stddev": result.value,
                         "t_stddev_se": se, "n_groups": result.n_groups,
                         "seconds": result.seconds})
            log(f"  {mode:9s} seed {seed}  {aug:14s} T. stddev {result.value:.6f} "
                f"± {se:.6f} (SE, {result.n_groups} groups; {result.seconds:.1f} s)")
    return pd.DataFrame(rows)


def validate(cfg: RankConfig, data: Dataset, teacher_dir: Path, mode: str, out: Path, log=print):
    """Distill one student per DA and seed; a DataFrame of their last-epoch test figures."""
    rows = []
    for seed in range(cfg.seeds):
        for aug in cfg.augs:
            agb = ({"agb_search": False, "agb_lambda": cfg.agb_lambda}
                   if cfg.agb_lambda is not None else {})
            scfg = TrainConfig(
                role="student", model=cfg.student, dataset=cfg.dataset, root=cfg.root,
                dataset_options=dataset_options(cfg),
                teacher=str(teacher_dir), teacher_model=cfg.teacher_model, aug=aug,
                per_batch=(mode == "per-batch"), epochs=cfg.student_epochs,
                lr=default_lr(cfg.student), balancer=cfg.balancer, distill=cfg.distill,
                seed=seed, device=cfg.device, progress=cfg.progress, **agb,
            )
            run = RunDir(out / "students" / f"{safe_name(aug)}-s{seed}")
            # a finished run is reused only with this config (train compares them, naming
            # the fields that differ), as sweeps do
            summary = train(scfg, run.path, resume=run.config.is_file(), data=data,
                            log=lambda s: None).summary
            last = summary["last"]
            row = {"aug": aug, "seed": seed, "s_test_loss": last["test_loss"],
                   "s_test_acc": last["test_top1"]}
            if "agb_lambda" in summary:
                row["agb_lambda"] = summary["agb_lambda"]
                row.update(agb_search_error(run.path / "agb_search.csv", scfg, data))
            rows.append(row)
            log(f"  student {cfg.student} {aug:14s} seed {seed}: test loss "
                f"{last['test_loss']:.4f}, top-1 {last['test_top1']:.2f}%")
    return pd.DataFrame(rows)


def agb_search_error(table_path: Path, scfg: TrainConfig, data: Dataset) -> dict[str, Any]:
    """How far AGB's lambda search can be trusted: the held-out images each lambda was scored
    on, the binomial SE (points) of the chosen lambda's held-out top-1, and the other lambdas
    within :data:`AGB_CLOSE_SE` SEs of it ("/"-joined; empty when none)."""
    if not table_path.is_file():
        return {}
    search = pd.read_csv(table_path)
    held_out = len(holdout_splits(scfg, Split(data.train_images, data.train_labels))[1])
    best = search.sort_values(["holdout_top1", "holdout_loss"],
                              ascending=[False, True]).iloc[0]
    se = accuracy_se(float(best["holdout_top1"]), held_out)
    close = search[(search["lambda"] != best["lambda"])
                   & (best["holdout_top1"] - search["holdout_top1"] <= AGB_CLOSE_SE * se)]
    return {"agb_holdout_images": held_out, "agb_holdout_top1": float(best["holdout_top1"]),
            "agb_holdout_se": se, "agb_close": "/".join(f"{v:g}" for v in close["lambda"])}


def _estimates(per_seed: pd.DataFrame, column: str, run_se: str | None = None):
    """DA -> :class:`~augkd.metrics.tiers.Estimate` of ``column`` over its seeds."""
    return {aug: estimate(rows[column].tolist(),
                          rows[run_se].tolist() if run_se in rows else None)
            for aug, rows in per_seed.groupby("aug", sort=False)}


def aggregate(per_seed: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Tiers]]:
    """One row per DA, lowest T. stddev first, and the tiers of each measured quantity.

    Columns: ``rank`` (the position), ``tier``, ``aug``, ``t_stddev`` (mean over seeds),
    ``t_stddev_se`` (see :func:`augkd.metrics.tiers.estimate`), ``t_stddev_std`` (seed
    spread, NaN with one seed); with students also ``s_test_loss``, ``s_test_loss_se`` and
    ``s_test_loss_std`` and ``s_test_loss_tier`` (NaN with one seed: no noise estimate),
    ``s_test_acc(_std)``; ``n_seeds``; ``agb_lambda`` when AGB searched. The tiers are keyed
    ``t_stddev`` and (with two seeds or more) ``s_test_loss``.
    """
    grouped = per_seed.groupby("aug", sort=False)
    table = pd.DataFrame({"n_seeds": grouped.size()})
    tiers: dict[str, Tiers] = {}
    for column, run_se in (("t_stddev", "t_stddev_se"), ("s_test_loss", None)):
        if column not in per_seed:
            continue
        est = _estimates(per_seed, column, run_se)
        table[column] = [est[a].mean for a in table.index]
        table[column + "_se"] = [est[a].se for a in table.index]
        table[column + "_std"] = [est[a].std for a in table.index]
        if all(np.isfinite(e.se) for e in est.values()):
            tiers[column] = leader_tiers(est)
    if "s_test_acc" in per_seed:
        table["s_test_acc"] = grouped["s_test_acc"].mean()
        table["s_test_acc_std"] = grouped["s_test_acc"].std(ddof=1)  # NaN with one seed
    if "agb_lambda" in per_seed:  # the lambda AGB's search chose, per seed
        table["agb_lambda"] = grouped["agb_lambda"].agg(
            lambda v: "/".join(f"{x:g}" for x in v))
    table["tier"] = [tiers["t_stddev"].tier_of(a) for a in table.index]
    order = ["tier", "t_stddev", "t_stddev_se", "t_stddev_std"]
    if "s_test_loss" in table:
        table["s_test_loss_tier"] = ([tiers["s_test_loss"].tier_of(a) for a in table.index]
                                     if "s_test_loss" in tiers else np.nan)
        order += ["s_test_loss", "s_test_loss_se", "s_test_loss_std", "s_test_loss_tier"]
    if "s_test_acc" in table:
        order += ["s_test_acc", "s_test_acc_std"]
    extra = ["agb_lambda"] if "agb_lambda" in table else []
    table = table[order + ["n_seeds"] + extra].sort_values("t_stddev", kind="stable")
    table = table.rename_axis("aug").reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    first = ["rank", "tier", "aug"]
    return table[first + [c for c in table if c not in first]], tiers


def uncertainty_note(per_seed: pd.DataFrame) -> str:
    """What ± means in the table, in one line."""
    seeds = int(per_seed.groupby("aug").size().min())
    groups = int(per_seed["n_groups"].min()) if "n_groups" in per_seed else None
    where = f" over its {groups} groups" if groups else ""
    if seeds == 1:
        students = " (S. test loss has none with one seed)" if "s_test_loss" in per_seed else ""
        return (f"± is the standard error of one run's T. stddev, by bootstrap{where}; "
                f"1 seed{students}")
    return (f"± is the standard error of the mean over {seeds} seeds: the seed std / "
            f"sqrt({seeds}), never below the one-run bootstrap error{where} / sqrt({seeds})")


def caveats(cfg: RankConfig, table: pd.DataFrame, tiers: dict[str, Tiers],
            summary: dict[str, Any], teacher_top1: float | None,
            num_classes: int) -> list[str]:
    """The warnings that make an answer weak, each one line naming its figures."""
    notes = []
    if teacher_top1 is not None:
        chance = 100.0 / num_classes
        floor = chance + TEACHER_FLOOR * (100.0 - chance)
        if teacher_top1 < floor:
            notes.append(
                f"the teacher's test top-1 is {teacher_top1:.1f}% ({num_classes} classes, "
                f"chance {chance:.1f}%): below {floor:.1f}%, halfway from chance to 100%, its "
                "probabilities sit near uniform and the T. stddev order may mean little")
    if len(tiers["t_stddev"].groups) == 1 and len(table) > 1:
        notes.append("the measurement separates no DA from another (one tier): measure more "
                     "epochs or seeds before choosing by T. stddev")
    if not cfg.validate:
        return notes
    if len(table) < MIN_DAS_FOR_CORRELATION:
        notes.append(f"the correlation rests on {len(table)} DAs (fewer than "
                     f"{MIN_DAS_FOR_CORRELATION}); its p-value says little")
    if cfg.student_epochs < MIN_STUDENT_EPOCHS:
        epochs = f"{cfg.student_epochs} epoch{'s' if cfg.student_epochs > 1 else ''}"
        notes.append(f"the students trained {epochs}, far shorter than the "
                     f"recipe's {RECIPE_EPOCHS} (warned below {MIN_STUDENT_EPOCHS}, the shortest "
                     "at which reports/cifar10-cpu reproduced the correlation)")
    if cfg.seeds < 2:
        notes.append("one seed: no seed noise for S. test loss, so no ANOVA and no S. test loss "
                     "tiers; use --seeds 3 or more")
    effect = summary.get("effect_vs_noise", {}).get("s_test_loss")
    if effect and effect["anova_p"] >= ALPHA:
        notes.append(f"the DA effect on S. test loss does not exceed seed noise (ANOVA p "
                     f"{effect['anova_p']:.2g}): the correlation may fit noise")
    agb = summary.get("agb_search")
    if agb and agb["close_calls"]:
        notes.append(
            f"AGB's lambda search: in {agb['close_calls']} of {agb['searches']} searches another "
            f"lambda scored within {AGB_CLOSE_SE:g} SE of the chosen one on "
            f"{agb['holdout_images']} held-out images (SE about {agb['top1_se_points']:.1f} "
            "points): there the choice is noise")
    return notes


def judge(cfg: RankConfig, per_seed: pd.DataFrame, table: pd.DataFrame,
          tiers: dict[str, Tiers], teacher_top1: float | None,
          num_classes: int) -> dict[str, Any]:
    """The summary entries that say how sure the ranking is: uncertainty, tiers, the
    recommendation, the ANOVA and AGB search figures (with students) and the warnings."""
    best = tiers["t_stddev"].best
    out: dict[str, Any] = {
        "uncertainty": {"t_stddev": uncertainty_note(per_seed),
                        "seeds": int(table["n_seeds"].min())},
        "tiers": tiers["t_stddev"].as_json(),
        "recommended": {"aug": best[0], "tied_with": list(best[1:])},
    }
    if "s_test_loss" in tiers:
        out["s_test_loss_tiers"] = tiers["s_test_loss"].as_json()
    if "s_test_loss" in per_seed and cfg.seeds >= 2 and len(table) >= 2:
        out["effect_vs_noise"] = {
            c: effect_vs_noise({a: r[c].tolist() for a, r in per_seed.groupby("aug")})
            for c in ("s_test_loss", "s_test_acc", "t_stddev")}
    if "agb_holdout_images" in per_seed and per_seed["agb_holdout_images"].notna().any():
        searched = per_seed[per_seed["agb_holdout_images"].notna()]
        out["agb_search"] = {
            "holdout_images": int(searched["agb_holdout_images"].min()),
            "top1_se_points": float(searched["agb_holdout_se"].median()),
            "searches": len(searched),
            "close_calls": int((searched["agb_close"].fillna("").astype(str) != "").sum()),
            "rule": f"another lambda within {AGB_CLOSE_SE:g} binomial SE of the chosen one's "
                    "held-out top-1",
        }
    out["warnings"] = caveats(cfg, table, tiers, out, teacher_top1, num_classes)
    return out


def rank(cfg: RankConfig, log=print) -> dict[str, Path]:
    """Run the ranking; returns the results folder of each mode."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.root, **dataset_options(cfg))
    log(f"dataset: {data.summary()}")
    (teacher, manifest), teacher_dir = obtain_teacher(cfg, data, device, log)
    log(f"teacher: {manifest['architecture']} ({teacher_dir})"
        + (f", test top-1 {manifest['test_top1']:.2f}%" if manifest.get("test_top1") else ""))
    scorer = None
    if needs_student_scorer(cfg.augs):
        scorer = obtain_scoring_student(cfg, data, teacher_dir, device, log)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"rank-{data.name}-{manifest['architecture']}-{stamp}"
    base = Path(cfg.out) if cfg.out else Path("runs") / name
    folders = {}
    for mode in cfg.modes:
        out = base / mode if len(cfg.modes) > 1 else base
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        log(f"measuring T. stddev of {len(cfg.augs)} DAs ({mode}, {cfg.epochs} epochs, "
            f"batch {cfg.batch_size}, {cfg.seeds} seed(s)) on {device}")
        per_seed = measure(cfg, data, teacher, device, mode, out, log, scorer)
        measure_seconds = time.perf_counter() - t0
        summary: dict[str, Any] = {
            "protocol": {
                "dataset": data.name, "dataset_source": data.source,
                "teacher": manifest["architecture"], "teacher_source": str(teacher_dir),
                "teacher_test_top1": manifest.get("test_top1"),
                "dataset_options": dataset_options(cfg),
                "student": cfg.student,
                "cutmixpick_s_scorer": (
                    (cfg.student_run or f"{cfg.student} crop+flip KD, {cfg.scorer_epochs} epochs")
                    if scorer is not None else None),
                "student_epochs": cfg.student_epochs if cfg.validate else None,
                "balancer": cfg.balancer if cfg.validate else None,
                "distill": cfg.distill if cfg.validate else None,
                "mode": mode, "tstddev_epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "group_size": cfg.group_size, "seeds": cfg.seeds, "device": str(device),
                "tstddev_subset": cfg.tstddev_subset,
            },
            "tstddev_seconds": measure_seconds,
        }
        if cfg.validate:
            students = validate(cfg, data, teacher_dir, mode, out, log)
            per_seed = per_seed.merge(students, on=["aug", "seed"])
        per_seed.to_csv(out / "per_seed.csv", index=False)
        table, tiers = aggregate(per_seed)
        if cfg.validate and len(table) >= 3:
            summary.update(correlations(table["t_stddev"].to_numpy(),
                                        table["s_test_loss"].to_numpy()))
        summary.update(judge(cfg, per_seed, table, tiers, manifest.get("test_top1"),
                             data.num_classes))
        summary["total_seconds"] = time.perf_counter() - t0
        write_results(out, table, summary)
        print_table(table, summary, mode, log)
        folders[mode] = out
    if cfg.validate:  # one report, a panel per mode
        report = build_report(list(folders.values()),
                              Path(cfg.report_dir) / base.name if cfg.report_dir
                              else base / "report")
        log(f"report: {report}")
    log(f"done in {time.perf_counter() - start:.1f} s; results in {base}")
    return folders


@dataclasses.dataclass(frozen=True)
class Ranking:
    """What :func:`rank_augmentations` returns: one mode's ranking, as written to ``folder``.

    Attributes:
        table: ``results.csv``: a row per DA, lowest T. stddev first, with ``tier``,
            ``t_stddev_se`` and (with students) ``s_test_loss``.
        summary: ``summary.json``: protocol, tiers, recommendation, warnings, correlations.
        folder: the results folder (``python -m augkd.report FOLDER`` renders it).
    """

    table: pd.DataFrame
    summary: dict[str, Any]
    folder: Path

    @property
    def recommended(self) -> str:
        """The DA to use: the first of the best tier."""
        return self.summary["recommended"]["aug"]

    @property
    def tiers(self) -> list[list[str]]:
        """The DAs in tiers the measurement tells apart, best first."""
        return self.summary["tiers"]["tiers"]

    @property
    def warnings(self) -> list[str]:
        return list(self.summary.get("warnings") or [])

    def __repr__(self) -> str:
        mode = self.summary.get("protocol", {}).get("mode", "")
        seeds = self.summary.get("uncertainty", {}).get("seeds", 1)
        tied = self.summary["recommended"].get("tied_with") or []
        def count(n: int, word: str) -> str:
            return f"{n} {word}{'s' * (n != 1)}"

        return (f"Ranking({count(len(self.table), 'DA')}, {mode}, {count(seeds, 'seed')}; "
                f"recommended {self.recommended}"
                + (f" (tied with {count(len(tied), 'other')})" if tied else "")
                + f"; {count(len(self.tiers), 'tier')}; {count(len(self.warnings), 'warning')}; "
                f"folder={str(self.folder)!r})")


DEFAULT_AUGS_NAME = "default"


def expand_augs(specs: Sequence[str]) -> tuple[str, ...]:
    """``specs`` with ``default`` replaced by the benchmark's nine DAs (:data:`PAPER_DAS`) and
    repeats dropped: ``--augs default 'kornia:...'`` is the nine plus one."""
    out: list[str] = []
    for spec in specs:
        out += list(PAPER_DAS) if spec.strip() == DEFAULT_AUGS_NAME else [spec]
    return tuple(dict.fromkeys(out))


def data_settings(given: dict[str, Any], teacher: str | Path,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """The data settings of a ranking: ``given`` (None: not given), and for the rest a teacher
    run's own (:func:`augkd.training.api.inherit_teacher_data`) when ``teacher`` is one."""
    given = {k: v for k, v in given.items() if v is not None}
    if Path(teacher).exists():
        given = inherit_teacher_data(given, teacher, log)
    return given


def rank_augmentations(
    teacher: str | Path, augs: Sequence[str] = tuple(PAPER_DAS), *,
    dataset: str | None = None, root: str | None = None, resize: int | None = None,
    train_subset: int | None = None, subset_seed: int | None = None,
    per_batch: bool = False, log: Callable[[str], None] = print, **options: Any,
) -> Ranking:
    """Rank DAs for ``teacher`` by T. stddev in one call: what ``python -m augkd.rank`` does,
    for a notebook.

    Args:
        teacher: a teacher run folder or checkpoint (RepDistiller, mdistiller, torchdistill),
            or a model name to train (and cache) one first.
        augs: DA specs (default: the nine of the benchmark); the name ``default`` stands for
            those nine, so ``["default", "kornia:RandomGaussianNoise(std=0.05, p=1.0)"]`` adds
            one to them.
        dataset, root, resize, train_subset, subset_seed: the data; None takes a teacher
            run's (else ``digits``).
        per_batch: the paper's once-per-batch DA parameters (default: per image).
        log: where progress lines and the ranking table go (``lambda s: None`` for silence).
        **options: any other :class:`RankConfig` field: ``epochs``, ``seeds``, ``batch_size``,
            ``group_size``, ``device``, ``out``, ``student``, ``student_run``, ``validate``,
            ``student_epochs``, ``progress``...

    Returns:
        :class:`Ranking` of the mode, read back from its results folder.
    """
    data = data_settings({"dataset": dataset, "root": root, "resize": resize,
                          "train_subset": train_subset, "subset_seed": subset_seed}, teacher,
                         log)
    if "dataset_options" in data:  # the teacher's size, classes...
        data["data_options"] = data.pop("dataset_options")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(RankConfig)}
                     - {"modes", "augs", "teacher"})
    if unknown or {"modes", "augs", "teacher"} & set(options):
        bad = unknown or sorted({"modes", "augs", "teacher"} & set(options))
        raise ValueError(f"rank_augmentations: unexpected option(s) {', '.join(bad)}; expected "
                         "RankConfig fields (epochs, seeds, device, out, ...; the mode is "
                         "per_batch=)")
    cfg = RankConfig(teacher=str(teacher), augs=expand_augs(augs),
                     modes=("per-batch",) if per_batch else ("per-image",), **data, **options)
    folder = next(iter(rank(cfg, log=log).values()))
    return Ranking(pd.read_csv(folder / "results.csv"),
                   json.loads((folder / "summary.json").read_text()), folder)


def _text_table(table: pd.DataFrame) -> str:
    """``table`` as left-aligned text columns, two spaces apart, headers first."""
    cells = [[str(c) for c in table.columns]] + [[str(v) for v in row]
                                                  for row in table.itertuples(index=False)]
    widths = [max(len(row[j]) for row in cells) for j in range(len(table.columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _with_error(mean: float, se: float, digits: int) -> str:
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")


def print_table(table: pd.DataFrame, summary: dict[str, Any], mode: str, log=print) -> None:
    """The ranking as a terminal table, best (lowest T. stddev) first, with what ± means, the
    tiers, the recommendation, (with students) the correlation and the ANOVA, and warnings.

    Ties are shown by the tier column, not by ordinal ranks."""
    seeds = summary["uncertainty"]["seeds"]
    shown = pd.DataFrame({"tier": table["tier"], "DA": table["aug"]})
    shown["T. stddev ± SE"] = [_with_error(m, e, 6)
                               for m, e in zip(table.t_stddev, table.t_stddev_se, strict=True)]
    if "s_test_loss" in table:
        shown["S. test loss" + (" ± SE" if seeds > 1 else "")] = [
            _with_error(m, e, 4) for m, e in zip(table.s_test_loss, table.s_test_loss_se,
                                                 strict=True)]
        if table["s_test_loss_tier"].notna().all():
            shown["loss tier"] = table["s_test_loss_tier"].astype(int)
        shown["S. test acc (%)"] = [f"{v:.2f}" for v in table["s_test_acc"]]
    log(f"\nranking ({mode}; lowest T. stddev first; {seeds} seed{'s' if seeds > 1 else ''}):")
    log(_text_table(shown))
    log(f"  {summary['uncertainty']['t_stddev']}")
    tiers = summary["tiers"]
    log(f"  tiers (each DA against its tier's best: Welch test, Bonferroni, alpha "
        f"{tiers['alpha']:g}): "
        + describe_tiers(tiers["tiers"]))
    best = summary["recommended"]
    tied = f" (tied with {', '.join(best['tied_with'])})" if best["tied_with"] else ""
    log(f"recommended: {best['aug']}{tied}")
    for name in ("pearson", "spearman", "kendall"):
        if name in summary:
            c = summary[name]
            log(f"  {name:8s} r = {c['r']:+.3f}  p = {c['p']:.3g}  ({c['n']} DAs)")
    effect = summary.get("effect_vs_noise", {}).get("s_test_loss")
    if effect:
        verdict = "exceeds" if effect["anova_p"] < ALPHA else "does not exceed"
        log(f"  DA effect on S. test loss {verdict} seed noise: spread of the DA means "
            f"{effect['spread_std']:.4f} (std), seed noise {effect['seed_noise_std']:.4f}, "
            f"ANOVA F {effect['anova_f']:.2f}, p {effect['anova_p']:.3g}")
    if "s_test_loss_tiers" in summary:
        log("  S. test loss tiers: " + describe_tiers(summary["s_test_loss_tiers"]["tiers"]))
    agb = summary.get("agb_search")
    if agb:
        log(f"  AGB's lambda search scored each lambda on {agb['holdout_images']} held-out "
            f"images (SE of a held-out top-1 about {agb['top1_se_points']:.1f} points)")
    for warning in summary["warnings"]:
        log(f"warning: {warning}")


def build_parser() -> argparse.ArgumentParser:
    d = RankConfig()
    p = argparse.ArgumentParser(
        prog="python -m augkd.rank",
        description="Rank data augmentations for KD by the teacher-only T. stddev.",
        epilog="--validate's students use the manual balancer by default (the paper's "
        "0.1 CE + 0.9 KD, as the DA-in-KD study trained them), while augkd.train defaults to "
        "AGB; --balancer agb gives them AGB's lambda search.",
    )
    p.add_argument("--dataset", default=None,
                   help="digits | cifar10 | cifar100 | imagefolder (default: a teacher run's, "
                   "else digits)")
    p.add_argument("--root", default=None,
                   help="dataset folder or archive (default: a teacher run's)")
    p.add_argument("--teacher", default=d.teacher,
                   help="teacher run folder or checkpoint, or a model name to train one first "
                   "(default %(default)s)")
    p.add_argument("--teacher-model", default=None,
                   help="architecture of a foreign (RepDistiller, mdistiller, torchdistill) "
                        "checkpoint (default: inferred from its weights)")
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                   help="epochs of a teacher trained here when --teacher is a model name "
                   "(default %(default)s)")
    p.add_argument("--augs", nargs="+", default=list(d.augs), metavar="SPEC",
                   help="DA specs; 'default' stands for the nine of the benchmark, e.g. "
                   "--augs default 'kornia:RandomGaussianNoise(std=0.05, p=1.0)' (default: "
                   "the nine)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--per-batch", action="store_true", help="the paper's once-per-batch mode")
    mode.add_argument("--both-modes", action="store_true", help="per-image and per-batch")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="passes over the training set of the T. stddev measurement (default "
                   "%(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="KD batch size of the measured stream (default %(default)s)")
    p.add_argument("--group-size", type=int, default=d.group_size,
                   help="stream tensors per group of T. stddev (default %(default)s)")
    p.add_argument("--seeds", type=int, default=d.seeds,
                   help="repeat with seeds 0..N-1 (default %(default)s)")
    p.add_argument("--tstddev-subset", type=int, default=None, metavar="N",
                   help="measure T. stddev on a class-stratified subset of N training images, "
                        "a new one per seed, so the seed spread includes the subset's (for "
                        "ImageNet-sized data; default: the whole training split)")
    p.add_argument("--student", default=d.student,
                   help="the pair's student: --validate trains it; a short KD run of it scores "
                   "cutmixpick-s unless --student-run is given (default %(default)s)")
    p.add_argument("--student-run", default=None, metavar="RUN",
                   help="a finished KD student run of this teacher: cutmixpick-s's scorer")
    p.add_argument("--scorer-epochs", type=int, default=d.scorer_epochs,
                   help="epochs of the cached crop+flip KD student that scores cutmixpick-s "
                   "(default %(default)s)")
    p.add_argument("--resize", type=int, default=None, metavar="PX",
                   help="dataset option: resize the images to PX x PX once at load")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="dataset option: a seeded class-stratified subset of N training images")
    p.add_argument("--subset-seed", type=int, default=None,
                   help="seed of --train-subset (default: a teacher run's, else 0)")
    p.add_argument("--agb-lambda", type=float, default=None,
                   help="--validate with --balancer agb: fix lambda, skip AGB's search")
    p.add_argument("--validate", action="store_true", help="also distill one student per DA")
    p.add_argument("--student-epochs", type=int, default=d.student_epochs,
                   help="epochs of --validate's students (default %(default)s)")
    p.add_argument("--balancer", default=d.balancer,
                   help="balancer of --validate's students (default %(default)s: the paper's "
                   "0.1 CE + 0.9 KD; augkd.train's default is agb)")
    p.add_argument("--distill", default=d.distill,
                   help="distillation method of --validate's students (default kd; e.g. crd, "
                   "'fitnet(hint_layer=2)')")
    p.add_argument("--device", default=d.device,
                   help="auto | cpu | cuda | cuda:N (default %(default)s)")
    p.add_argument("--out", default=None, help="results folder (default runs/rank-...)")
    p.add_argument("--report-dir", default=None,
                   help="a folder for --validate's report, which goes into DIR/<name of OUT> "
                   "(default: OUT/report, beside the results)")
    p.add_argument("--cache-dir", default=None,
                   help="where teachers trained here are cached ($AUGKD_CACHE or ~/.cache/augkd)")
    p.add_argument("--download", action="store_true",
                   help="download cifar10/cifar100 into --root if missing")
    p.add_argument("--bf16", action="store_true",
                   help="run T. stddev's teacher forwards in bf16 autocast on CUDA (faster)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are drawn only on a terminal anyway)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = MODES if args.both_modes else (("per-batch",) if args.per_batch else ("per-image",))

    def body() -> None:
        data = data_settings({"dataset": args.dataset, "root": args.root,
                              "resize": args.resize, "train_subset": args.train_subset,
                              "subset_seed": args.subset_seed}, args.teacher)
        d = RankConfig()
        cfg = RankConfig(
            dataset=data.get("dataset", d.dataset), root=data.get("root"), teacher=args.teacher,
            teacher_model=args.teacher_model, teacher_epochs=args.teacher_epochs,
            augs=expand_augs(args.augs), modes=modes, epochs=args.epochs,
            batch_size=args.batch_size,
            group_size=args.group_size, seeds=args.seeds,
            tstddev_subset=args.tstddev_subset, student=args.student,
            student_run=args.student_run, scorer_epochs=args.scorer_epochs,
            resize=data.get("resize"), train_subset=data.get("train_subset"),
            subset_seed=data.get("subset_seed", d.subset_seed),
            data_options=data.get("dataset_options") or {},
            agb_lambda=args.agb_lambda,
            validate=args.validate, student_epochs=args.student_epochs, balancer=args.balancer,
            distill=args.distill,
            device=args.device, out=args.out, report_dir=args.report_dir,
            cache_dir=args.cache_dir, download=args.download, bf16=args.bf16,
            progress=not args.no_progress,
        )
        rank(cfg)

    return run_cli(body, rerun="rerun the same command to continue (the teachers, scorers "
                   "and students it finished are reused)",
                   flags={"root": "--root", "agb_lambda": "--agb-lambda"})

if __name__ == "__main__":
    sys.exit(main())
