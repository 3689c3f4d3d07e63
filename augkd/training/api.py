"""High-level training entry points: a teacher or student run from a config, start to finish.

``python -m augkd.train`` is a thin CLI over :func:`train`; sweeps and the ranking command call
the same function, so every run of augkd has the same folder, checkpoints and manifest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from augkd.augment import create as create_augmentation
from augkd.augment.pipeline import Normalize
from augkd.augment.probe import probe_augmentation
from augkd.data import Dataset
from augkd.distill import resolve_method
from augkd.training import distributed
from augkd.training.agb_search import SEARCH_FIELDS, holdout_splits, search_agb_lambda  # noqa: F401
from augkd.training.checkpoint import (
    atomic_save,
)
from augkd.training.config import TrainConfig
from augkd.training.loading import (  # noqa: F401  (the loading API, re-exported)
    DATA_SETTINGS,
    check_foreign_teacher,
    inherit_teacher_data,
    load_data,
    load_student,
    load_teacher,
    model_from_state,
    read_manifest,
    read_teacher_manifest,
    resolve_teacher_file,
    teacher_data_settings,
    teacher_input_stats,
)
from augkd.training.loggers import RunLog
from augkd.training.run import RunDir, default_run_name, exclusive
from augkd.training.trainer import (
    MODEL_FORMAT,
    EpochInterrupted,
    Split,
    Trainer,
    resolve_device,
)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`train` returns: the run folder and its summary."""

    run_dir: Path
    summary: dict[str, Any]

    def __repr__(self) -> str:
        last = self.summary.get("last") or {}
        figures = (f", test top-1 {last['test_top1']:.2f}%, loss {last['test_loss']:.4f}"
                   if "test_top1" in last else "")
        return (f"RunResult({self.summary.get('role')} {self.summary.get('model')}, "
                f"{last.get('epoch')} epochs{figures}, run_dir={str(self.run_dir)!r})")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``str()`` is one line: where it stopped, the last
    checkpoint and the command that resumes the run (:func:`interrupted_message`)."""


def interrupted_message(run: RunDir, stop: BaseException) -> str:
    """Where a run stopped on Ctrl-C and how to resume it, in one line."""
    resume = f"resume with python -m augkd.train --resume {run.path}"
    if isinstance(stop, EpochInterrupted) and stop.label:  # a warm-up of AGB's search
        return (f"interrupted in {stop.label.rstrip(':')}, epoch {stop.epoch} of {stop.epochs}"
                f" (the finished lambdas are kept in {run.path / 'agb_search.csv'}); {resume}")
    if isinstance(stop, EpochInterrupted):
        last = (f"the last checkpoint is epoch {stop.last_checkpoint}"
                if stop.last_checkpoint else "no epoch was checkpointed yet")
        return f"interrupted in epoch {stop.epoch} of {stop.epochs}; {last}; {resume}"
    return f"interrupted before the first epoch finished; {resume}"




DISTILL_INIT_FILE = "distill_init.pt"
"""The run folder's record of the method's pre-training stage (FT's paraphraser)."""



def _splits(data: Dataset, device: torch.device) -> tuple[Split, Split]:
    """The splits for a run on ``device``: labels there, images there too or, when the data
    does not fit (``Dataset.images_on``), in host memory, gathered a batch at a time."""
    def place(images: torch.Tensor) -> torch.Tensor:
        return images.to(device) if data.images_on(device) else images

    return (Split(place(data.train_images), data.train_labels.to(device)),
            Split(place(data.test_images), data.test_labels.to(device)))


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    data: Dataset | None = None,
    runs_root: str | Path = "runs",
    log: Callable[[str], None] = print,
    holdout: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run a teacher or student training to the end and return its folder and summary.

    Args:
        cfg: the configuration (``cfg.role`` says teacher or student).
        out: the run folder; default ``runs_root/<role>-<model>-...-<timestamp>``.
        resume: continue the run in ``out`` from its last checkpoint (its config must match).
        data: an already loaded dataset (else loaded from ``cfg``).
        holdout: train on the training split less the held-out part of
            :func:`holdout_splits` and evaluate on that part instead of the test set (a tuning
            trial; its metrics' ``test_*`` fields are then held-out figures and the summary
            says ``"evaluated_on": "holdout"``).
        on_epoch: called with each epoch's metrics record (see :meth:`Trainer.fit`).
    """
    run = RunDir(out if out is not None else Path(runs_root) / default_run_name(cfg))
    log = RunLog(log)  # every line of the run also goes to RUN_DIR/train.log
    if resume and not run.config.is_file():
        raise FileNotFoundError(f"cannot resume: {run.path} holds no config.yaml")
    if not resume and run.checkpoint.is_file():
        raise FileExistsError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    # everything that can fail on bad input happens before the run folder is made
    device = resolve_device(cfg.device)
    data = data if data is not None else load_data(cfg)
    stats_given = cfg.mean is not None and cfg.std is not None
    cfg = resolve_normalization(cfg, data)
    if cfg.role == "student":  # before the resume check: the stats are part of the config
        cfg = _with_teacher_stats(cfg, data, stats_given, log)
    if resume:
        diff = run.read_config().differences(cfg)
        if diff:
            raise ValueError(f"cannot resume {run.path}: its config differs in {', '.join(diff)}")
        if run.is_finished():
            summary = json.loads(run.summary.read_text())
            log(f"{run.path} already finished ({summary['last']['epoch']}/{cfg.epochs} epochs): "
                "nothing to do")
            return RunResult(run.path, summary)
    if cfg.role == "student" and cfg.aug:  # a DA that fails or changes nothing stops here
        probe_augmentation(create_augmentation(cfg.aug, per_batch=True if cfg.per_batch else None),
                           cfg.aug, data.train_images, allow_noop=cfg.allow_noop_aug, warn=log)
    train_split, test_split = _splits(data, device)
    if holdout:  # the test split is never read
        train_split, test_split = holdout_splits(cfg, train_split)
    teacher, teacher_manifest = None, None
    if cfg.role == "student":
        teacher, teacher_manifest = load_teacher(cfg.teacher, data, device, cfg.teacher_model,
                                                 normalize=Normalize(cfg.mean, cfg.std), log=log)
        log(f"teacher: {teacher_manifest['architecture']} from {cfg.teacher}")
    dist_info = distributed.current()
    with run.lock() if dist_info.is_main else nullcontext():
        if dist_info.is_main:
            for stale in run.remove_stale_temporaries():
                log(f"removed {stale.name}, left by a write that was killed")
            run.create(cfg)
            log.attach(run.path)
        try:
            summary, trainer = _train_in_folder(cfg, run, train_split, test_split, data, teacher,
                                                teacher_manifest, log, resume, on_epoch,
                                                "held-out" if holdout else "test")
        except KeyboardInterrupt as stop:
            message = interrupted_message(run, stop)
            log.keep(message)  # the command prints it on stderr; the log keeps where it stopped
            raise RunInterrupted(message) from None
        if not dist_info.is_main:
            return RunResult(run.path, summary)
        if teacher_manifest is not None:
            summary["teacher"] = {k: teacher_manifest.get(k) for k in ("architecture", "test_top1")}
        summary["evaluated_on"] = "holdout" if holdout else "test"
        run.write_json("summary.json", summary)
        manifest = trainer.manifest(data, cfg.mean, cfg.std)
        atomic_save({"format": MODEL_FORMAT, "model": trainer.model.state_dict(),
                     "manifest": manifest}, run.model)
    log(f"{cfg.role} {cfg.model}: {'held-out' if holdout else 'test'} top-1 "
        f"{summary['last']['test_top1']:.2f}% "
        f"(loss {summary['last']['test_loss']:.4f}) -> {run.path}")
    return RunResult(run.path, summary)


def _train_in_folder(cfg, run, train_split, test_split, data, teacher, teacher_manifest, log,
                     resume, on_epoch, evaluated_on) -> tuple[dict[str, Any], Trainer]:
    """The method's pre-training, AGB's lambda search and the run itself, in ``run``."""
    common = dict(mean=cfg.mean, std=cfg.std, num_classes=data.num_classes,
                  base_aug=data.base_aug, eval_crop=data.eval_crop,
                  in_channels=data.in_channels, classes=data.classes, teacher=teacher, log=log,
                  teacher_arch=teacher_manifest["architecture"] if teacher_manifest else "")
    if cfg.role == "student" and resolve_method(cfg.distill)[0].pretrains:
        # the method's pre-training stage, shared by the search's warm-ups and the run
        common["distiller_init"] = Trainer(
            cfg, train_split, test_split, run=None, **common
        ).pretrain_distiller(run.path / DISTILL_INIT_FILE)
    lam = None
    if cfg.uses_agb_search:
        lam = search_agb_lambda(cfg, train_split, run, common, log)
    trainer = Trainer(cfg, train_split, test_split, run=run, agb_lambda=lam,
                      evaluated_on=evaluated_on, **common)
    if trainer.distiller is not None:
        log(f"method: {trainer.distiller.resolved_spec()}")
    return trainer.fit(resume=resume, on_epoch=on_epoch), trainer


def train_once(
    cfg: TrainConfig, out: str | Path, *, data: Dataset | None = None,
    log: Callable[[str], None] = print, what: str | None = None, quiet: bool = False,
) -> Path:
    """The finished run in ``out``, training (or resuming) it first if it is not finished.

    Several processes may ask for the same run (two ranks sharing a cache, the shards or
    workers of a sweep): an OS lock beside the folder lets one train while the others wait
    (saying so in ``log``) and then find it finished, so the run is trained once. ``quiet``
    keeps the training's own lines out of ``log``.
    """
    run = RunDir(out)
    if not run.is_finished():
        with exclusive(run.path.with_suffix(".lock"), log, what or str(run.path)):
            if not run.is_finished():  # another process may have trained it meanwhile
                train(cfg, run.path, resume=run.config.is_file(), data=data,
                      log=(lambda line: None) if quiet else log)
    return run.path


def _with_teacher_stats(cfg: TrainConfig, data: Dataset, stats_given: bool,
                       log: Callable[[str], None]) -> TrainConfig:
    """A student on a training subset of its teacher's data (:func:`is_training_subset`) is
    normalized as the teacher was, unless its config gives mean and std; from the teacher's
    manifest alone (the teacher itself is loaded later, after the resume check)."""
    manifest = read_teacher_manifest(cfg.teacher)
    if manifest is None:
        return cfg
    stats = teacher_input_stats(manifest, data)
    if stats == (tuple(data.mean), tuple(data.std)):
        return cfg
    log(f"student data: a train_subset of {data.options['train_subset']} of the teacher's "
        "training set, normalized with the teacher's mean and std"
        + (" (the config's, as given)" if stats_given else ""))
    return cfg if stats_given else cfg.replace(mean=stats[0], std=stats[1])


def resolve_normalization(cfg: TrainConfig, data: Dataset) -> TrainConfig:
    """``cfg`` with ``mean``/``std`` filled in from ``data`` where they are None."""
    if cfg.mean is not None and cfg.std is not None:
        for name in ("mean", "std"):
            if len(getattr(cfg, name)) != data.in_channels:
                raise ValueError(f"{name} has {len(getattr(cfg, name))} values but "
                                 f"{data.name} images have {data.in_channels} channels")
        return cfg
    return cfg.replace(mean=cfg.mean if cfg.mean is not None else tuple(data.mean),
                       std=cfg.std if cfg.std is not None else tuple(data.std))
