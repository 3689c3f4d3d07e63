"""A whole ranking in one call: :func:`rank` (a :class:`RankConfig`) and
:func:`rank_augmentations` (keywords, for a notebook), which returns a :class:`Ranking`."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from augkd.augment import PAPER_DAS
from augkd.augment.pipeline import Normalize
from augkd.data import load_dataset
from augkd.metrics import correlations
from augkd.ranking.config import (
    RankConfig,
    dataset_options,
)
from augkd.ranking.judge import aggregate, judge
from augkd.ranking.measure import (
    measure,
    needs_student_scorer,
    obtain_scoring_student,
    obtain_teacher,
    validate,
)
from augkd.ranking.table import print_table
from augkd.report import build_report, write_results
from augkd.training.api import (
    inherit_teacher_data,
)
from augkd.training.loading import teacher_input_stats
from augkd.training.trainer import resolve_device


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
        per_seed = measure(cfg, data, teacher, device, mode, out, log, scorer,
                           Normalize(*teacher_input_stats(manifest, data)))
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


