"""One training loop for teachers (cross-entropy) and students (KD with a loss balancer).

The fast path of the whole benchmark: the dataset is one uint8 tensor on the device, batches
are index slices of a per-epoch permutation, augmentation runs on the device, the model runs
in bf16 autocast and channels_last on CUDA. Inside an epoch nothing waits for the GPU: loss
sums and the non-finite-loss check are device tensors, read once at the end of the epoch.

The step itself (views, forwards, loss terms, the balancer's backward, the optimizer step) is
:func:`augkd.training.step.train_step`; an epoch is the loop of that step over the batches of
:func:`augkd.training.batches.shuffled_batches`.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch, so a run resumed
from its checkpoint at an epoch boundary continues with exactly the batches and augmentations
the uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import augkd
from augkd.augment import create as create_augmentation
from augkd.augment.pipeline import BASE_SPEC, ViewPipeline
from augkd.metrics import evaluate
from augkd.training import distributed
from augkd.training.batches import shuffled_batches
from augkd.training.builder import build_components
from augkd.training.checkpoint import atomic_save, load_checkpoint
from augkd.training.config import TrainConfig
from augkd.training.loggers import epoch_line, open_loggers, show_bars
from augkd.training.run import RunDir
from augkd.training.step import Batch, StepContext, StepParts, TaskOnly, train_step
from augkd.trust import reading_folder

CHECKPOINT_FORMAT = "augkd-checkpoint/1"
MODEL_FORMAT = "augkd-model/1"
DISTILL_INIT_FORMAT = "augkd-distill-init/1"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the message names the epoch and the step."""


class EpochInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) inside :meth:`Trainer.fit`: which epoch was running and which is the
    last one checkpointed (0: none), for the command's one-line message."""

    def __init__(self, label: str, epoch: int, epochs: int, last_checkpoint: int) -> None:
        super().__init__(label, epoch, epochs, last_checkpoint)
        self.label, self.epoch, self.epochs = label, epoch, epochs
        self.last_checkpoint = last_checkpoint


@dataclasses.dataclass(frozen=True)
class Split:
    """Images (uint8 ``[N, C, H, W]``) and labels (int64 ``[N]``) of one split.

    The labels live on the training device; the images too, or in host memory when the
    dataset does not fit there (``Dataset.images_on``): batches are then gathered on the host
    and copied (:meth:`~augkd.training.batches.ShuffledBatches.with_rows`).
    """

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of the random stream of one epoch (data order and augmentation)."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


class Trainer:
    """Trains one model (teacher or student) under a :class:`TrainConfig`.

    Args:
        cfg: the run's configuration; ``cfg.role`` picks the objective.
        train, test: the splits, already on ``device``.
        mean, std: per-channel normalization of the dataset ([0, 1] scale).
        num_classes, in_channels: the model's output classes and input channels.
        teacher: the frozen teacher (student runs only), on ``device``.
        run: the run folder, or None for a run that writes nothing (the AGB search's warm-ups).
        agb_lambda: overrides ``cfg.agb_lambda`` (the lambda chosen by the search).
        distiller_init: the state of the method's pre-trained parts (FT's paraphraser), from
            :meth:`pretrain_distiller`; required when the method has a pre-training stage.
        log: where the per-epoch lines and other messages go.
        label: what this training is, before its per-epoch lines and on its progress bar
            (the AGB search's ``AGB search, lambda 0.3:``); "" for the run itself.
        evaluated_on: what ``test`` holds, named in the per-epoch lines (``held-out``).
        base_aug: the dataset's base DA spec (``Dataset.base_aug``), unless the method has
            its own.
        eval_crop: the centre crop evaluation takes (``Dataset.eval_crop``; 1.0: none).
        classes: the dataset's class names, for a library model with ``head=subset`` (its
            logits picked by name); recorded in the manifest.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        train: Split,
        test: Split,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        num_classes: int,
        in_channels: int,
        teacher: nn.Module | None = None,
        run: RunDir | None = None,
        agb_lambda: float | None = None,
        distiller_init: dict[str, Tensor] | None = None,
        teacher_arch: str = "",
        log: Callable[[str], None] = print,
        label: str = "",
        evaluated_on: str = "test",
        base_aug: str = BASE_SPEC,
        eval_crop: float = 1.0,
        classes: Sequence[str] | None = None,
    ) -> None:
        if cfg.role == "student" and teacher is None:
            raise ValueError("a student run needs a teacher model")
        self.cfg = cfg
        self.train_split = train
        self.test_split = test
        self.device = train.labels.device  # the images may stay in host memory
        self.run = run
        self.log = log
        # what this training is, on its progress bar and per-epoch lines ("" for the run itself)
        self.label = label
        self.evaluated_on = evaluated_on  # what the test_* figures are of, for the epoch lines
        self.classes = list(classes) if classes is not None else None
        self.teacher_arch = teacher_arch
        self.dist = distributed.current()
        # every name of the config becomes its object here, and nowhere else: the model, the
        # method, the DAs, the balancer, the optimizer and the schedule (augkd.training.builder);
        # the trainer keeps them as its attributes (trainer.model, trainer.optimizer, ...)
        self.components = build_components(
            cfg, train, mean=mean, std=std, num_classes=num_classes, in_channels=in_channels,
            teacher=teacher, agb_lambda=agb_lambda, distiller_init=distiller_init,
            teacher_arch=teacher_arch, base_aug=base_aug, eval_crop=eval_crop,
            classes=self.classes, distributed=self.dist)
        vars(self).update(vars(self.components))
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        # a method with a pre-training stage trains only from its pre-trained state
        self._needs_init = (self.distiller is not None and self.distiller.pretrains
                            and distiller_init is None)
        self.epoch = 0
        self.last_eval: dict[str, float] | None = None

    def pretrain_distiller(self, path: Path | None) -> dict[str, Tensor] | None:
        """The method's pre-training stage (FT's paraphraser), resumable; None for methods
        without one.

        Trains ``distiller.init_parameters()`` for ``distiller.init_epochs`` epochs on the
        teacher's features of base-augmented (crop+flip) training batches, with SGD at the
        method's ``init_lr`` (FT: 0.01 for resnet/wrn students, as RepDistiller) or else the
        run's lr, and the run's momentum and weight decay. After every epoch the state and the
        epoch's mean loss go to ``path`` (atomically), so a killed run continues from there.

        Returns:
            The trained parameters by their names in the distiller's ``state_dict``.
        """
        d = self.distiller
        if d is None or not d.pretrains:
            return None
        cfg = self.cfg
        named = dict(d.named_parameters())
        wanted = {id(p) for p in d.init_parameters()}
        names = [n for n, p in named.items() if id(p) in wanted]
        lr = d.init_lr if d.init_lr is not None else cfg.lr
        optimizer = torch.optim.SGD([named[n] for n in names], lr=lr,
                                    momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        start, losses = 0, []
        if path is not None and path.is_file():
            state = load_checkpoint(path, map_location=self.device)
            if state.get("format") != DISTILL_INIT_FORMAT or state.get("method") != cfg.distill:
                raise ValueError(f"{path} is not the pre-training state of {cfg.distill!r}")
            d.load_state_dict(state["parameters"], strict=False)
            optimizer.load_state_dict(state["optimizer"])
            start, losses = int(state["epoch"]), list(state["losses"])
        base = ViewPipeline(create_augmentation(self.base_aug), None, self.normalize)
        n = len(self.train_split)
        for epoch in range(start + 1, d.init_epochs + 1):
            generator = torch.Generator(device=self.device)
            generator.manual_seed(epoch_seed(cfg.seed, -epoch))  # apart from the training's
            batches = shuffled_batches(n, cfg.batch_size, generator, self.device)
            d.train()
            total = torch.zeros((), device=self.device)
            for _, images in batches.with_rows(self.train_split.images):
                with torch.no_grad(), self.autocast():
                    x = base(images, generator).original
                    teacher_out = self.teacher(x.contiguous(memory_format=self.memory_format),
                                               features=True)
                with self.autocast():
                    loss = d.init_loss(teacher_out)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total = total + loss.detach().float()
            losses.append(float(total) / len(batches))
            self.log(f"{cfg.distill} pre-training: epoch {epoch}/{d.init_epochs}, "
                     f"loss {losses[-1]:.4f}")
            if path is not None and self.dist.is_main:
                atomic_save({"format": DISTILL_INIT_FORMAT, "method": cfg.distill,
                             "epoch": epoch, "losses": losses,
                             "parameters": {k: named[k].detach() for k in names},
                             "optimizer": optimizer.state_dict()}, path)
        return {k: named[k].detach().clone() for k in names}

    # ------------------------------------------------------------------ the step
    @property
    def parts(self) -> StepParts:
        """What :func:`~augkd.training.step.train_step` uses: this trainer's model, teacher,
        method, DAs, balancer (:class:`TaskOnly` for a teacher) and optimizer."""
        balancer = self.balancer
        if balancer is None:  # a teacher run
            balancer = TaskOnly(distributed.all_reduce_mean if self.dist.enabled else None)
        return StepParts(
            model=self.forward_model, teacher=self.teacher, distiller=self.distiller,
            pipeline=self.pipeline, scorer=self.scorer, balancer=balancer,
            optimizer=self.optimizer, params=self.params, method_params=self.method_params,
            autocast=self.autocast, memory_format=self.memory_format, dist=self.dist,
            joint_forward=self.cfg.joint_forward,
        )

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training split; returns the epoch's mean loss parts."""
        cfg = self.cfg
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(cfg.seed, epoch))
        n = len(self.train_split)
        # a last batch too small to give every rank a sample is dropped
        batches = shuffled_batches(n, cfg.batch_size, generator, self.device,
                                   min_last=self.dist.world_size)
        parts = self.parts
        self.model.train()
        if self.distiller is not None:
            self.distiller.train()
        sums: dict[str, Tensor] = {}
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        bar = tqdm(
            batches.with_rows(self.train_split.images), total=len(batches),
            desc=f"{self.label or cfg.role + ' ' + cfg.model} epoch {epoch}/{cfg.epochs}",
            leave=False, disable=not show_bars(cfg.progress), unit="step",
        )
        for step, (index, images) in enumerate(bar):
            batch = Batch(images, self.train_split.labels[index], index)
            result = train_step(parts, batch, StepContext(epoch, step, generator))
            first_bad = torch.where((first_bad < 0) & result.non_finite, step, first_bad)
            for name, value in result.terms.items():
                sums[name] = sums[name] + value if name in sums else value
        bar.close()
        bad_step = int(first_bad)  # the epoch's one host sync
        if bad_step >= 0:
            last = (f"; the last good checkpoint is {self.run.checkpoint}"
                    if self.run is not None and self.run.checkpoint.is_file()
                    else "; no checkpoint was written before it")
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch}, step {bad_step}: the run stops here{last}"
            )
        record = {f"train_{k}": float(v) / len(batches) for k, v in sums.items()}
        if self.balancer is not None:
            record.update({f"balance_{k}": v for k, v in self.balancer.epoch_stats().items()})
        return record

    def evaluate(self, split: Split | None = None) -> dict[str, float]:
        """Test loss (CE, T = 1), top-1 and top-5 (%) of the model on ``split`` (default: test).

        Always in float32, outside any autocast: these are the reported figures.
        """
        split = split or self.test_split
        with torch.autocast(self.device.type, enabled=False):
            result = evaluate(self.model, split.images, split.labels,
                              lambda x: self.normalize(self.eval_view(x)), device=self.device)
        return {"test_loss": result.loss, "test_top1": result.top1, "test_top5": result.top5}

    def final_eval(self) -> dict[str, float]:
        """The test figures of the current weights (the last epoch's, evaluated once)."""
        if self.last_eval is None:
            self.last_eval = self.evaluate()
        return self.last_eval

    # ------------------------------------------------------------------ the run
    def fit(self, resume: bool = False,
            on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train for ``cfg.epochs`` epochs (continuing from the checkpoint if ``resume``).

        Writes metrics, a checkpoint per epoch and, at the end, the summary and the final
        model with its manifest into the run folder, and logs one line per epoch
        (:func:`~augkd.training.loggers.epoch_line`). Returns the summary. ``on_epoch`` is
        called with each epoch's metrics record after its checkpoint is written (a tuner's
        pruner may raise there: the run folder then holds every finished epoch). The trackers
        the config asks for (``tensorboard``, ``wandb``) get each record before that epoch's
        checkpoint (:mod:`augkd.training.loggers`).

        Raises:
            EpochInterrupted: Ctrl-C; the checkpoint of the last finished epoch is kept.
        """
        cfg = self.cfg
        if self._needs_init:
            raise ValueError(
                f"method {cfg.distill!r} has a pre-training stage: build the Trainer with "
                "distiller_init=<an earlier Trainer>.pretrain_distiller(path) (as "
                "augkd.training.train does), not without it")
        if resume:
            self._resume()
        writes = self.run is not None and self.dist.is_main
        start = time.perf_counter()
        epoch = self.epoch + 1
        saved = self.epoch if writes and self.run.checkpoint.is_file() else 0
        loggers = open_loggers(cfg, self.run, self.epoch) if writes else []
        try:
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                record = {"epoch": epoch, "lr": lr, **self.train_epoch(epoch)}
                # the training pass's throughput (the epoch's one host sync has just happened)
                record["train_images_per_s"] = len(self.train_split) / (time.perf_counter() - t0)
                self.scheduler.step()
                self.last_eval = self.evaluate()
                record.update(self.last_eval)
                record["epoch_time_s"] = time.perf_counter() - t0
                self.epoch = epoch
                if writes:
                    self.run.append_metrics(record)
                    for logger in loggers:  # before the checkpoint: a resume purges repeats
                        logger.write(record)
                    atomic_save(self.state_dict(), self.run.checkpoint)
                    saved = epoch
                if self.dist.is_main:
                    self.log(epoch_line(record, cfg.epochs, self.label, self.evaluated_on))
                if on_epoch is not None:
                    on_epoch(record)
        except KeyboardInterrupt:
            raise EpochInterrupted(self.label, epoch, cfg.epochs, saved) from None
        finally:
            for logger in loggers:
                logger.close()
        return self._finish(time.perf_counter() - start)

    def _finish(self, seconds: float) -> dict[str, Any]:
        final = self.final_eval()
        summary = {
            "role": self.cfg.role,
            "model": self.cfg.model,
            "quant": self.cfg.quant,
            "dataset": self.cfg.dataset,
            "aug": self.cfg.aug,
            "epochs": self.cfg.epochs,
            "last": {"epoch": self.epoch, **final},
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "train_seconds_this_session": seconds,
        }
        if self.balancer is not None:
            summary["distill"] = self.cfg.distill
            summary["distill_resolved"] = self.distiller.resolved_spec()
            summary["balancer"] = self.cfg.balancer
            if self.cfg.balancer_name == "agb":
                summary["agb_lambda"] = self.agb_lambda
            elif self.cfg.balancer_name == "manual":
                summary["w_task"], summary["w_distill"] = self.cfg.manual_weights
        if self.run is not None and self.dist.is_main:
            self.run.write_json("summary.json", summary)
        return summary

    def state_dict(self) -> dict[str, Any]:
        """The full training state: enough to continue the run bit for bit."""
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "balancer": self.balancer.state_dict() if self.balancer is not None else {},
            "distiller": self.distiller.state_dict() if self.distiller is not None else {},
            "torch_rng": torch.get_rng_state(),
        }

    def _resume(self) -> None:
        if self.run is None or not self.run.checkpoint.is_file():
            self.log("no checkpoint to resume from: starting at epoch 1")
            if self.run is not None and self.dist.is_main:
                self.run.truncate_metrics(0)  # records of an epoch that never checkpointed
            return
        state = load_checkpoint(self.run.checkpoint, map_location=self.device)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.run.checkpoint} is not an augkd training checkpoint")
        with reading_folder(self.run.checkpoint):  # a folder's spec imports nothing
            diff = TrainConfig.from_dict(state["config"]).differences(self.cfg)
        if diff:
            raise ValueError(
                f"cannot resume {self.run.path}: its config differs in {', '.join(diff)}"
            )
        missing = [k for k in ("model", "optimizer", "scheduler", "balancer", "torch_rng",
                                "epoch") if k not in state]
        if missing:
            raise ValueError(f"cannot resume from {self.run.checkpoint}: it lacks "
                             f"{', '.join(missing)} (not a complete augkd training checkpoint)")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.balancer is not None:
                self.balancer.load_state_dict(state["balancer"])
            if self.distiller is not None:
                if "distiller" not in state:
                    raise KeyError("the checkpoint holds no state of the distillation method")
                self.distiller.load_state_dict(state["distiller"])
        except (RuntimeError, ValueError, KeyError) as err:
            detail = " ".join(str(err).split())
            raise ValueError(f"cannot resume from {self.run.checkpoint}: its state does not "
                             f"fit this run ({detail[:300]})") from None
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch = int(state["epoch"])
        if self.dist.is_main:
            self.run.truncate_metrics(self.epoch)
        self.log(f"resumed {self.run.path} after epoch {self.epoch}")

    def manifest(self, data: Any, mean, std) -> dict[str, Any]:
        """What a later run needs to know about this model to use it as a teacher (or as the
        frozen scorer of CutMixPick-S): architecture, data identity and options, figures."""
        final = self.final_eval()
        return {
            "architecture": self.cfg.model,
            "quant": self.cfg.quant,
            "role": self.cfg.role,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "classes": self.classes,
            "dataset": data.name,
            "dataset_checksum": data.checksum,
            "dataset_options": dict(data.options),
            "mean": list(mean),
            "std": list(std),
            "test_top1": final["test_top1"],
            "test_loss": final["test_loss"],
            "epochs": self.epoch,
            "augkd_version": augkd.__version__,
            "config": self.cfg.to_dict(),
        }
