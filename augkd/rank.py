"""``python -m augkd.rank``: rank the DAs for distilling a teacher, from the teacher alone.

For every DA spec, the teacher-only T. stddev (docs/protocol.md §3) is measured; the DAs are
ranked lowest first (a good DA lowers it). With ``--validate`` one student per DA (and seed) is
distilled with the trainer, and the correlation of T. stddev with the students' test loss is
reported with p-values, in the terminal, in the results folder and in an HTML/Markdown report.

With no arguments it runs the embedded default: scikit-learn's digits, a small resnet20 teacher
trained on first use and cached, all nine DAs of the benchmark.

Results folder (read by ``python -m augkd.report``)::

    OUT/results.csv     one row per DA, ranked: rank, aug, t_stddev, t_stddev_std,
                        [s_test_loss(_std), s_test_acc(_std)], n_seeds
    OUT/summary.json    protocol, timings, and (with --validate) pearson/spearman/kendall
    OUT/per_seed.csv    every (DA, seed) measurement before averaging
    OUT/tstddev/        the recorded group means of every measurement (to recompute the value)
    OUT/students/       the student runs of --validate

With ``--both-modes`` OUT holds one such folder per mode: OUT/per-image/, OUT/per-batch/.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from augkd.augment import PAPER_DAS, create
from augkd.augment.pipeline import Normalize, ViewPipeline
from augkd.augment.probe import probe_augmentation
from augkd.balance import BALANCERS
from augkd.cli import run_cli
from augkd.data import Dataset, load_dataset
from augkd.data.archive import file_sha256
from augkd.distill import resolve_method
from augkd.metrics import correlations, measure_t_stddev
from augkd.models import MODELS
from augkd.report import build_report, write_results
from augkd.training import TrainConfig, default_lr, load_student, load_teacher, train
from augkd.training.api import resolve_teacher_file, train_once
from augkd.training.run import RunDir, safe_name
from augkd.training.trainer import resolve_device

MODES = ("per-image", "per-batch")


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
    bf16: bool = False  # T. stddev's teacher forwards in bf16 autocast on CUDA
    report_dir: str = "reports"  # where --validate writes its HTML/Markdown report
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
        for name in ("epochs", "batch_size", "group_size", "seeds", "teacher_epochs",
                     "student_epochs", "scorer_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(self, name)}")


def dataset_options(cfg: RankConfig) -> dict[str, Any]:
    """The dataset options of ``cfg`` as ``load_dataset`` and ``TrainConfig`` take them."""
    options: dict[str, Any] = {"download": True} if cfg.download else {}
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
    run_dir = (cache_root(cfg) / "teachers"
               / f"{data.name}-{data.checksum[:12]}-{cfg.teacher}-e{cfg.teacher_epochs}-s0")
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
):
    """T. stddev of one DA spec in one mode with one seed (the unit of work of rank and sweeps).

    ``bf16`` runs the teacher's forwards in bfloat16 autocast on CUDA (faster; the softmax stays
    float32). Off by default: T. stddev separates DAs by differences of a few 1e-4, and fp32
    (TF32 convolutions) keeps the teacher's probabilities as the paper computed them.
    """
    extra = create(aug, per_batch=True if mode == "per-batch" else None)
    probe_augmentation(extra, aug, images)  # a DA that fails or changes nothing stops here
    pipeline = ViewPipeline(create("crop+flip"), extra, normalize)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    on_cuda = images.device.type == "cuda"
    # fp32 unless bf16 is asked for on CUDA, whatever autocast the caller runs under
    precision = (torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and bf16
                 else torch.autocast(images.device.type, enabled=False))
    with precision:
        result = measure_t_stddev(
            teacher, images, pipeline, epochs=epochs, batch_size=batch_size,
            group_size=group_size, generator=generator, student=student, progress=progress,
        )
    if not (math.isfinite(result.value) and torch.isfinite(result.group_means).all()):
        raise ValueError(
            f"T. stddev of {aug} ({mode}, seed {seed}) is {result.value}: {teacher_name} "
            "gives non-finite (NaN or Inf) outputs; check the teacher's weights and test loss"
        )
    return result


def needs_student_scorer(augs) -> bool:
    """Whether any DA spec ranks a CutMix pool with the student (score student or kl)."""
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
    images = data.train_images.to(device)
    normalize = Normalize(data.mean, data.std)
    rows = []
    (out / "tstddev").mkdir(parents=True, exist_ok=True)
    for seed in range(cfg.seeds):
        for aug in cfg.augs:
            result = measure_aug(
                teacher, images, normalize, aug, mode, seed, student=student_scorer,
                epochs=cfg.epochs, batch_size=cfg.batch_size, group_size=cfg.group_size,
                progress=cfg.progress, bf16=cfg.bf16,
                teacher_name=f"teacher {cfg.teacher}",
            )
            torch.save(result.group_means, out / "tstddev" / f"{safe_name(aug)}-{mode}-s{seed}.pt")
            rows.append({"aug": aug, "seed": seed, "t_stddev": result.value,
                         "n_groups": result.n_groups, "seconds": result.seconds})
            log(f"  {mode:9s} seed {seed}  {aug:14s} T. stddev {result.value:.6f} "
                f"({result.seconds:.1f} s)")
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
            rows.append(row)
            log(f"  student {cfg.student} {aug:14s} seed {seed}: test loss "
                f"{last['test_loss']:.4f}, top-1 {last['test_top1']:.2f}%")
    return pd.DataFrame(rows)


def aggregate(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds, one row per DA, ranked by T. stddev (lowest first)."""
    value_cols = [c for c in ("t_stddev", "s_test_loss", "s_test_acc") if c in per_seed]
    grouped = per_seed.groupby("aug", sort=False)
    table = grouped[value_cols].mean()
    stds = grouped[value_cols].std(ddof=1).fillna(0.0).add_suffix("_std")
    table = table.join(stds)
    table["n_seeds"] = grouped.size()
    if "agb_lambda" in per_seed:  # the lambda AGB's search chose, per seed
        table["agb_lambda"] = grouped["agb_lambda"].agg(
            lambda v: "/".join(f"{x:g}" for x in v))
    order = ["t_stddev", "t_stddev_std"]
    for c in ("s_test_loss", "s_test_acc"):
        if c in table:
            order += [c, c + "_std"]
    extra = ["agb_lambda"] if "agb_lambda" in table else []
    table = table[order + ["n_seeds"] + extra].sort_values("t_stddev").reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


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
                "student": cfg.student if cfg.validate else None,
                "cutmixpick_s_scorer": (
                    (cfg.student_run or f"{cfg.student} crop+flip KD, {cfg.scorer_epochs} epochs")
                    if scorer is not None else None),
                "student_epochs": cfg.student_epochs if cfg.validate else None,
                "balancer": cfg.balancer if cfg.validate else None,
                "distill": cfg.distill if cfg.validate else None,
                "mode": mode, "tstddev_epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "group_size": cfg.group_size, "seeds": cfg.seeds, "device": str(device),
            },
            "tstddev_seconds": measure_seconds,
        }
        if cfg.validate:
            students = validate(cfg, data, teacher_dir, mode, out, log)
            per_seed = per_seed.merge(students, on=["aug", "seed"])
        per_seed.to_csv(out / "per_seed.csv", index=False)
        table = aggregate(per_seed)
        if cfg.validate and len(table) >= 3:
            summary.update(correlations(table["t_stddev"].to_numpy(),
                                        table["s_test_loss"].to_numpy()))
        summary["total_seconds"] = time.perf_counter() - t0
        write_results(out, table, summary)
        print_table(table, summary, mode, log)
        folders[mode] = out
    if cfg.validate:  # one report, a panel per mode
        report = build_report(list(folders.values()), Path(cfg.report_dir) / base.name)
        log(f"report: {report}")
    log(f"done in {time.perf_counter() - start:.1f} s; results in {base}")
    return folders


def print_table(table: pd.DataFrame, summary: dict[str, Any], mode: str, log=print) -> None:
    """The ranking as a terminal table, best (lowest T. stddev) first."""
    shown = table.copy()
    triples = zip(shown.t_stddev, shown.t_stddev_std, shown.n_seeds, strict=True)
    shown["t_stddev"] = [f"{m:.6f} ± {s:.6f}" if n > 1 else f"{m:.6f}" for m, s, n in triples]
    cols = ["rank", "aug", "t_stddev"]
    for c in ("s_test_loss", "s_test_acc"):
        if c in shown:
            cols.append(c)
    log(f"\nranking ({mode}; lowest T. stddev first):")
    log(shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for name in ("pearson", "spearman", "kendall"):
        if name in summary:
            c = summary[name]
            log(f"  {name:8s} r = {c['r']:+.3f}  p = {c['p']:.3g}")


def build_parser() -> argparse.ArgumentParser:
    d = RankConfig()
    p = argparse.ArgumentParser(
        prog="python -m augkd.rank",
        description="Rank data augmentations for KD by the teacher-only T. stddev.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=d.dataset, help="digits | cifar10 | cifar100 | imagefolder")
    p.add_argument("--root", default=None, help="dataset folder or archive")
    p.add_argument("--teacher", default=d.teacher,
                   help="teacher run folder or checkpoint, or a model name to train one first")
    p.add_argument("--teacher-model", default=None,
                   help="architecture of a foreign (RepDistiller, mdistiller, torchdistill) "
                        "checkpoint; default: inferred from its weights")
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs)
    p.add_argument("--augs", nargs="+", default=list(d.augs), metavar="SPEC",
                   help="DA specs (default: the nine of the benchmark)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--per-batch", action="store_true", help="the paper's once-per-batch mode")
    mode.add_argument("--both-modes", action="store_true", help="per-image and per-batch")
    p.add_argument("--epochs", type=int, default=d.epochs, help="T. stddev epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--group-size", type=int, default=d.group_size)
    p.add_argument("--seeds", type=int, default=d.seeds, help="repeat with seeds 0..N-1")
    p.add_argument("--student", default=d.student,
                   help="the pair's student: --validate trains it; a short KD run of it scores "
                   "cutmixpick-s unless --student-run is given")
    p.add_argument("--student-run", default=None, metavar="RUN",
                   help="a finished KD student run of this teacher: cutmixpick-s's scorer")
    p.add_argument("--scorer-epochs", type=int, default=d.scorer_epochs,
                   help="epochs of the cached crop+flip KD student that scores cutmixpick-s")
    p.add_argument("--resize", type=int, default=None, metavar="PX",
                   help="dataset option: resize the images to PX x PX once at load")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="dataset option: a seeded class-stratified subset of N training images")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of --train-subset")
    p.add_argument("--agb-lambda", type=float, default=None,
                   help="--validate with --balancer agb: fix lambda, skip AGB's search")
    p.add_argument("--validate", action="store_true", help="also distill one student per DA")
    p.add_argument("--student-epochs", type=int, default=d.student_epochs)
    p.add_argument("--balancer", default=d.balancer, help="balancer of --validate's students")
    p.add_argument("--distill", default=d.distill,
                   help="distillation method of --validate's students (default kd; e.g. crd, "
                   "'fitnet(hint_layer=2)')")
    p.add_argument("--device", default=d.device)
    p.add_argument("--out", default=None, help="results folder (default runs/rank-...)")
    p.add_argument("--report-dir", default=d.report_dir, help="where --validate's report goes")
    p.add_argument("--cache-dir", default=None,
                   help="where teachers trained here are cached ($AUGKD_CACHE or ~/.cache/augkd)")
    p.add_argument("--download", action="store_true",
                   help="download cifar10/cifar100 into --root if missing")
    p.add_argument("--bf16", action="store_true",
                   help="run T. stddev's teacher forwards in bf16 autocast on CUDA (faster)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = MODES if args.both_modes else (("per-batch",) if args.per_batch else ("per-image",))

    def body() -> None:
        cfg = RankConfig(
            dataset=args.dataset, root=args.root, teacher=args.teacher,
            teacher_model=args.teacher_model, teacher_epochs=args.teacher_epochs,
            augs=tuple(args.augs), modes=modes, epochs=args.epochs, batch_size=args.batch_size,
            group_size=args.group_size, seeds=args.seeds, student=args.student,
            student_run=args.student_run, scorer_epochs=args.scorer_epochs,
            resize=args.resize, train_subset=args.train_subset, subset_seed=args.subset_seed,
            agb_lambda=args.agb_lambda,
            validate=args.validate, student_epochs=args.student_epochs, balancer=args.balancer,
            distill=args.distill,
            device=args.device, out=args.out, report_dir=args.report_dir,
            cache_dir=args.cache_dir, download=args.download, bf16=args.bf16,
            progress=not args.no_progress,
        )
        rank(cfg)

    return run_cli(body)

if __name__ == "__main__":
    sys.exit(main())
