"""One training step, read top to bottom: :func:`train_step`.

::

    batch (uint8 images, labels, indices)
      -> base DA -> x, DA under study -> x~ (normalized; this rank's rows)   step_views
      -> student forward per view, teacher forward per view (no grad)       loss_terms
      -> task = CE(S(x), y); distill = the method's loss summed over views  loss_terms
      -> balancer: .grad of every trained parameter from task and distill   train_step
      -> optimizer step                                                     train_step

A teacher run is the same step with no teacher and no distiller: its terms are the task alone
and its "balancer" is :class:`TaskOnly`, a plain backward of the cross-entropy.

Nothing here waits for the device: the step returns its terms and its non-finite flag as
device tensors, which the epoch loop sums and reads once at the end of the epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from augkd.augment.pick import Scorer
from augkd.augment.pipeline import ViewPipeline
from augkd.balance import LOSS_NAMES
from augkd.distill import VIEWS, Distiller, Step
from augkd.distill.losses import task_loss
from augkd.models.base import ModelOutput
from augkd.training.distributed import DistInfo


class Backward(Protocol):
    """What the step needs of a balancer: ``.grad`` of the parameters from the named terms."""

    def backward(self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
                 method_params: Sequence[nn.Parameter] = ()) -> None: ...


class TaskOnly:
    """The teacher run's balancer: ``task.backward()``, the gradients averaged over the ranks
    by ``grad_reducer`` when data-parallel (as a :class:`~augkd.balance.Balancer` does)."""

    def __init__(self, grad_reducer: Callable[[list[Tensor]], None] | None = None) -> None:
        self.grad_reducer = grad_reducer

    def backward(self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
                 method_params: Sequence[nn.Parameter] = ()) -> None:
        losses["task"].backward()
        if self.grad_reducer is not None:
            self.grad_reducer([p.grad for p in params])


@dataclasses.dataclass(frozen=True)
class StepParts:
    """Everything one step uses, built once by the :class:`~augkd.training.Trainer`.

    Attributes:
        model: the trained network's forward (compiled and/or DDP-wrapped when configured).
        teacher: the frozen teacher (eval mode, no grads); None in a teacher run.
        distiller: the distillation method; None in a teacher run.
        pipeline: base DA, DA under study and normalization.
        scorer: the pick DA's scorer (CutMixPick), else None.
        balancer: turns the terms into ``.grad`` (:class:`TaskOnly` in a teacher run).
        optimizer: steps ``params``, ``method_params`` and the balancer's own parameters.
        params: the model's trainable parameters.
        method_params: the distiller's trainable parts (regressors, embeddings).
        autocast: a fresh autocast context per call (bf16 on CUDA, else a null context).
        memory_format: the layout the views are fed in (channels_last on CUDA).
        dist: this process's rank and world size.
        joint_forward: one forward over ``[x; x~]`` instead of one per view.
    """

    model: nn.Module
    teacher: nn.Module | None
    distiller: Distiller | None
    pipeline: ViewPipeline
    scorer: Scorer | None
    balancer: Backward
    optimizer: torch.optim.Optimizer
    params: Sequence[nn.Parameter]
    method_params: Sequence[nn.Parameter]
    autocast: Callable[[], AbstractContextManager]
    memory_format: torch.memory_format
    dist: DistInfo
    joint_forward: bool = False


@dataclasses.dataclass(frozen=True)
class Batch:
    """One global batch: uint8 ``images [B, C, H, W]``, int64 ``labels [B]`` and the samples'
    int64 indices in the training split ``[B]`` (None outside an epoch: CRD then refuses)."""

    images: Tensor
    labels: Tensor
    index: Tensor | None = None


@dataclasses.dataclass(frozen=True)
class StepContext:
    """Where the step is: the 1-based ``epoch``, the 0-based ``step`` within it, and the
    epoch's random stream (on the training device) that every DA and method draws from."""

    epoch: int
    step: int
    generator: torch.Generator


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a step leaves for the epoch loop, all on the device (no host sync).

    Attributes:
        terms: the detached float32 0-d loss terms: ``task``, ``top1`` (the batch's top-1 in
            %, on x, before the update), and in a student run ``distill`` and the method's log
            terms ``<method>_<view>``, ``<method>_<sub-term>_<view>``.
        non_finite: 0-d bool, True when task + distill is NaN or Inf.
    """

    terms: dict[str, Tensor]
    non_finite: Tensor


class StepViews(NamedTuple):
    """This rank's normalized views ``x``, ``x~`` (None without a DA under study), float
    ``[k b, C, H, W]`` (k = 1, or MLKD's four rotations), and its labels and indices ``[b]``."""

    x: Tensor
    x_aug: Tensor | None
    labels: Tensor
    index: Tensor | None


def step_views(parts: StepParts, batch: Batch, generator: torch.Generator) -> StepViews:
    """The views of one batch for this rank.

    The DAs run on the whole (global) batch on every rank, from the same generator, so the
    per-image draws and the mixing partners are exactly those of a single-process run; a
    rank then keeps samples ``rank, rank + world, ...`` of it. Under autocast, so that
    CutMixPick's scoring forward runs in bf16 on CUDA like the training forward.
    """
    with parts.autocast():
        views = parts.pipeline(batch.images, generator, scorer=parts.scorer)
    x, x_aug, labels, index = views.original, views.augmented, batch.labels, batch.index
    if parts.dist.enabled:
        r, w, b = parts.dist.rank, parts.dist.world_size, labels.shape[0]
        x, labels = _rank_rows(x, b, r, w), labels[r::w]
        x_aug = _rank_rows(x_aug, b, r, w) if x_aug is not None else None
        index = index[r::w] if index is not None else None
    return StepViews(x, x_aug, labels, index)


def loss_terms(parts: StepParts, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    """The named loss terms of one batch, sharing one graph; no backward, no optimizer step.

    As the reference code: the student and the teacher run once on ``x`` and once on ``x~``
    (two forwards), so each view is normalized by its own BatchNorm batch statistics and the
    student's running statistics update twice per step. ``joint_forward`` runs one forward
    over ``[x; x~]`` instead (pooled statistics, one update).

    Returns:
        ``task = CE(S(x), y)`` and the detached ``top1`` of S(x) in %; in a student run also
        ``distill``, the method's loss summed over the views (each view against the teacher's
        outputs on that view), and detached log terms ``<method>_<view>`` and
        ``<method>_<sub-term>_<view>``.
    """
    x, x_aug, labels, index = step_views(parts, batch, ctx.generator)
    views = [x] if x_aug is None else [x, x_aug]
    n_views = len(views)
    if parts.joint_forward and n_views == 2:
        views = [torch.cat(views)]
    views = [v.contiguous(memory_format=parts.memory_format) for v in views]
    d = parts.distiller
    features = d is not None and d.reads_features
    no_sync = parts.model.no_sync if parts.dist.enabled else nullcontext
    with parts.autocast(), no_sync():
        students = [_as_output(parts.model(v, features=features)) for v in views]
        teachers = []
        if parts.teacher is not None:
            with torch.no_grad():
                teachers = [_as_output(parts.teacher(v, features=features)) for v in views]
        if len(views) != n_views:  # joint forward: split [x; x~] back into the two views
            students, teachers = _split_views(students[0]), _split_views(teachers[0])
        # a method's base DA may give several copies per sample (MLKD's four rotations,
        # block by block): the task loss is on the first copy, as the reference's
        logits = students[0].logits[:labels.shape[0]]
        terms = {"task": task_loss(logits, labels),
                 # a log term, not a loss: the batch's top-1 (%) on x before this step's update
                 "top1": (logits.detach().argmax(1) == labels).float().mean() * 100}
        if d is None:  # a teacher run: cross-entropy alone
            return terms
        distill: Tensor | float = 0.0
        for view, s_out, t_out in zip(VIEWS, students, teachers, strict=False):
            out = d(s_out, t_out, Step(labels, index, view, ctx.epoch, ctx.generator))
            distill = distill + out["loss"]
            terms[f"{d.name}_{view}"] = out["loss"].detach()
            terms.update({f"{d.name}_{k}_{view}": v for k, v in out.items() if k != "loss"})
    terms["distill"] = distill
    return terms


def train_step(parts: StepParts, batch: Batch, ctx: StepContext) -> StepResult:
    """One optimizer step on ``batch``: views, forwards, terms, the balancer's backward, the
    optimizer's step. The terms and the non-finite flag stay on the device."""
    terms = loss_terms(parts, batch, ctx)
    # Ranks hold len(range(rank, b, world)) of the b samples; weighting each rank's mean
    # loss by its share makes the all-reduced mean gradient the global batch's.
    b, rank, world = batch.labels.shape[0], parts.dist.rank, parts.dist.world_size
    share = len(range(rank, b, world)) * world / b
    if share != 1:
        terms = {**terms, **{k: terms[k] * share for k in LOSS_NAMES if k in terms}}
    parts.balancer.backward(terms, parts.params, parts.method_params)
    total = sum(terms[k] for k in LOSS_NAMES if k in terms)
    non_finite = ~torch.isfinite(total.detach())
    parts.optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)
    return StepResult({k: v.detach().float() for k, v in terms.items()}, non_finite)


def _as_output(out: Tensor | ModelOutput) -> ModelOutput:
    """A model's result as a :class:`ModelOutput` (logits only when no features were asked)."""
    return out if isinstance(out, ModelOutput) else ModelOutput(out, (), None)


def _rank_rows(x: Tensor, batch: int, rank: int, world: int) -> Tensor:
    """This rank's rows of a view ``[k B, ...]`` holding k copies of the B samples block by
    block (k = 1, or MLKD's four rotations): samples ``rank, rank + world, ...`` of every block,
    the blocks kept in order."""
    copies = x.shape[0] // batch
    if copies == 1:
        return x[rank::world]
    return x.unflatten(0, (copies, batch))[:, rank::world].flatten(0, 1)


def _split_views(out: ModelOutput) -> list[ModelOutput]:
    """The outputs of one forward over ``[x; x~]`` as the outputs of x and of x~."""
    b = out.logits.shape[0] // 2
    halves = []
    for part in (slice(0, b), slice(b, None)):
        halves.append(ModelOutput(
            out.logits[part], tuple(s[part] for s in out.stages),
            out.pooled[part] if out.pooled is not None else None,
        ))
    return halves
