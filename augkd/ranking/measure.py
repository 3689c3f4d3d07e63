"""The measurements of a ranking: the teacher (trained and cached on first use), T. stddev per
DA and seed, and the students of ``--validate``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from augkd.augment import create
from augkd.augment.pipeline import BASE_SPEC, Normalize, ViewPipeline
from augkd.augment.probe import probe_augmentation
from augkd.data import Dataset
from augkd.data.archive import file_sha256
from augkd.data.dataset import stratified_subset
from augkd.metrics import measure_t_stddev
from augkd.metrics.tiers import (
    accuracy_se,
    bootstrap_t_stddev_se,
)
from augkd.models import MODELS
from augkd.ranking.config import (
    AGB_CLOSE_SE,
    RankConfig,
    cache_root,
    dataset_options,
)
from augkd.training import TrainConfig, default_lr, load_student, load_teacher, train
from augkd.training.api import (
    holdout_splits,
    resolve_teacher_file,
    train_once,
)
from augkd.training.run import RunDir, safe_name
from augkd.training.trainer import Split


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
            student_scorer=None, normalize: Normalize | None = None):
    """T. stddev of every DA and seed in one mode: a DataFrame with one row per (aug, seed).

    ``student_scorer`` is the frozen trained student for DAs scored by the student;
    ``normalize`` the teacher's input normalization (default the dataset's)."""
    on_device = data.images_on(device)
    normalize = normalize if normalize is not None else Normalize(data.mean, data.std)
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


