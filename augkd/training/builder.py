"""The one place where a run's config becomes objects: :func:`build_components`.

Every family is named by a spec in :class:`~augkd.training.config.TrainConfig` (model,
distillation method, DA under study, balancer, optimizer, lr schedule); this module turns
those names into the :class:`Components` one training step needs, in a fixed order so that a
seed always gives the same initial weights:

1. the student (``model``; DoReFa-quantized with ``quant``), on the device, compiled and/or
   wrapped for DDP (``forward_model``);
2. the frozen teacher (student runs) and the normalization;
3. the distillation method, its modules shaped by one probe forward of both networks (and its
   pre-trained part, FT's paraphraser, loaded);
4. the views: the base DA (the method's own, e.g. MLKD's rotations, else the dataset's
   crop+flip or resized-crop+flip), the DA under study and, for a pick DA, its scorer;
5. the balancer (AGB at its lambda; a teacher has none: the step uses ``TaskOnly``);
6. the optimizer over the student's, the method's and the balancer's parameters, and the
   per-epoch lr schedule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from augkd.augment import create as create_augmentation
from augkd.augment.pick import make_scorer
from augkd.augment.pipeline import BASE_SPEC, Normalize, ViewPipeline
from augkd.augment.resized_crop import CenterCrop
from augkd.balance import Balancer, create_balancer
from augkd.distill import Distiller, DistillSetup, FeatureShapes, create_distiller
from augkd.models import create_model
from augkd.models.quant import quantize_model
from augkd.training import distributed as dist_utils
from augkd.training.config import TrainConfig
from augkd.training.optim import build_optimizer, build_scheduler

__all__ = ["Components", "build_components"]


@dataclasses.dataclass
class Components:
    """The objects of one run, built from its config by :func:`build_components`.

    Attributes:
        model: the trained network, unwrapped (what checkpoints hold).
        forward_model: the same network as the step calls it (compiled, DDP-wrapped).
        teacher: the frozen teacher, or None (teacher runs).
        normalize: the dataset's normalization, applied after augmenting.
        distiller: the distillation method, or None (teacher runs).
        method_params: the method's trainable parameters (trained with the student).
        pipeline: base DA, DA under study and normalization: the step's two views.
        eval_view: the evaluation crop (a 0.875 centre crop beyond CIFAR; none at 1.0).
        base_aug: the dataset's base DA spec.
        scorer: a pick DA's scorer (teacher or student entropy), or None.
        balancer: the loss balancer, or None (teacher runs: the step's ``TaskOnly``).
        agb_lambda: AGB's lambda of this run (student runs), else None.
        params: the student's trainable parameters.
        optimizer, scheduler: the optimizer over every trained parameter, its lr schedule.
        memory_format, autocast: channels_last and bf16 autocast on CUDA (as configured).
    """

    model: nn.Module
    forward_model: nn.Module
    teacher: nn.Module | None
    normalize: Normalize
    distiller: Distiller | None
    method_params: list[nn.Parameter]
    pipeline: ViewPipeline
    eval_view: CenterCrop
    base_aug: str
    scorer: Callable[..., Tensor] | None
    balancer: Balancer | None
    agb_lambda: float | None
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    memory_format: torch.memory_format
    autocast: Callable[[], AbstractContextManager[Any]]


def build_components(
    cfg: TrainConfig,
    train: Any,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_classes: int,
    in_channels: int,
    teacher: nn.Module | None = None,
    agb_lambda: float | None = None,
    distiller_init: dict[str, Tensor] | None = None,
    teacher_arch: str = "",
    base_aug: str = BASE_SPEC,
    eval_crop: float = 1.0,
    classes: Sequence[str] | None = None,
    distributed: dist_utils.DistInfo | None = None,
) -> Components:
    """Build every component of a run (see the module docstring for the order).

    Args:
        cfg: the run's config.
        train: the training split (``images``, ``labels``; the labels on the run's device):
            the method's probe batch and its per-sample memories (CRD) come from it.
        mean, std, num_classes, in_channels, classes: of the dataset.
        teacher: the frozen teacher of a student run, on the device.
        agb_lambda: AGB's lambda (the one its search chose); None: ``cfg.agb_lambda``.
        distiller_init: the method's pre-trained state (FT's paraphraser), if it has one.
        teacher_arch: the teacher's architecture name, for methods that depend on it.
        base_aug, eval_crop: the dataset's base DA and evaluation crop.
        distributed: this process's DDP rank info (default: :func:`distributed.current`).
    """
    device = train.labels.device  # the images may stay in host memory
    dist = distributed if distributed is not None else dist_utils.current()
    on_cuda = device.type == "cuda"
    memory_format = (torch.channels_last if (on_cuda and cfg.channels_last)
                     else torch.contiguous_format)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16))
                if (on_cuda and cfg.bf16) else nullcontext)

    # 1. the student
    torch.manual_seed(cfg.seed)  # the initial weights
    model = create_model(cfg.model, num_classes, in_channels,
                         classes=list(classes) if classes is not None else None)
    if cfg.quant:  # DoReFa: before the optimizer (and DDP, compile) see the layers
        quantize_model(model, cfg.quant)
    model = model.to(device).to(memory_format=memory_format)
    forward_model: nn.Module = torch.compile(model) if cfg.compile else model
    if dist.enabled:  # see augkd.training.distributed for how ranks stay in sync
        forward_model = nn.parallel.DistributedDataParallel(
            forward_model, device_ids=[device] if on_cuda else None)

    # 2. the teacher and the normalization
    if teacher is not None:
        teacher.eval().requires_grad_(False)
        teacher.to(memory_format=memory_format)
    normalize = Normalize(mean, std)

    # 3. the method
    distiller: Distiller | None = None
    method_params: list[nn.Parameter] = []
    if cfg.role == "student":
        if teacher is None:
            raise ValueError("a student run needs a teacher model")
        sample = normalize(train.images[:2].to(device))
        setup = DistillSetup(
            student=FeatureShapes.probe(model, sample),
            teacher=FeatureShapes.probe(teacher, sample),
            train_labels=train.labels, epochs=cfg.epochs, temperature=cfg.temperature,
            student_name=cfg.model, teacher_name=teacher_arch or cfg.teacher_model or "",
        )
        distiller = create_distiller(cfg.distill, setup).to(device)
        if distiller.pretrains and distiller_init is not None:
            distiller.load_state_dict(distiller_init, strict=False)
            distiller.finish_init()
        method_params = [p for p in distiller.parameters() if p.requires_grad]

    # 4. the views
    extra = None
    if cfg.role == "student" and cfg.aug:
        # --per-batch switches the DA to the paper's mode; without it the spec decides
        extra = create_augmentation(cfg.aug, per_batch=True if cfg.per_batch else None)
    # the method's own base DA (MLKD's four independently cropped rotations), else the dataset's
    base = distiller.base_augmentation() if distiller is not None else None
    pipeline = ViewPipeline(base or create_augmentation(base_aug), extra, normalize)
    scorer = None
    if pipeline.needs_scorer:
        scorer = make_scorer(extra.score, teacher=teacher, student=model, normalize=normalize)

    # 5. the balancer
    balancer: Balancer | None = None
    lam: float | None = None
    if cfg.role == "student":
        lam = cfg.agb_lambda if agb_lambda is None else agb_lambda
        balancer = create_balancer(cfg.balancer_name, **cfg.balancer_options(lam)).to(device)
        if dist.enabled:
            balancer.grad_reducer = dist_utils.all_reduce_mean

    # 6. the optimizer and the schedule
    params = [p for p in model.parameters() if p.requires_grad]
    # the method's trainable parts train with the student: same optimizer, same decay
    groups = [{"params": params + method_params, "weight_decay": cfg.weight_decay}]
    balancer_params = list(balancer.parameters()) if balancer is not None else []
    if balancer_params:  # e.g. uncertainty weighting's log-variances: no weight decay
        groups.append({"params": balancer_params, "weight_decay": 0.0})
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)
    scheduler = build_scheduler(cfg.schedule, optimizer, cfg.epochs, cfg.lr_milestones,
                                cfg.lr_decay_rate)

    return Components(
        model=model, forward_model=forward_model, teacher=teacher, normalize=normalize,
        distiller=distiller, method_params=method_params, pipeline=pipeline,
        eval_view=CenterCrop(eval_crop), base_aug=base_aug, scorer=scorer, balancer=balancer,
        agb_lambda=lam, params=params, optimizer=optimizer, scheduler=scheduler,
        memory_format=memory_format, autocast=autocast)
