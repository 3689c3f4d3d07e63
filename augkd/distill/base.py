"""The distiller contract, its registry and the spec syntax that names a method.

A distiller is one method of the literature (KD, FitNet, AT, ..., CRD, DKD): a pure loss
function in its own file plus a thin :class:`Distiller` module that owns the method's trainable
parts (regressors, embeddings, VID's variances, CRD's memory banks). The trainer calls every
method the same way, once per view of the step::

    terms = distiller(student_out, teacher_out, step)   # {"loss": L, sub-terms for the logs}

where ``student_out`` / ``teacher_out`` are :class:`~augkd.models.base.ModelOutput` records of
the same images (the teacher's detached) and ``step`` a :class:`Step` with the labels, the
training-set indices of the samples, the view's name and the epoch. The view's distill term is
``terms["loss"]``; the step's ``distill`` loss is the sum over the views, exactly as KD's
``KD(S(x), T(x)) + KD(S(x~), T(x~))``, and the balancer sees it as one loss.

Features, in the common CIFAR framework's indexing of ``model(x, is_feat=True)`` (protocol
§8), map onto augkd's uniform record as :func:`framework_features` says: ``feat[0]`` the
first stage (the stem of the three-resolution networks), ``feat[1:-1]`` the three later stages,
``feat[-2]`` the last stage map, ``feat[-1]`` the pooled embedding.

Methods are named by spec strings, with the DA syntax: ``kd``, ``fitnet(hint_layer=2)``,
``crd(nce_k=4096)``; the options are the keyword-only ``__init__`` parameters of the class.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from augkd.augment.base import Augmentation
from augkd.grammar import check_param, check_spec_options, parse_spec, spec_parameters
from augkd.models.base import ModelOutput
from augkd.registry import Registry, UnknownNameError

VIEWS = ("original", "augmented")
"""The names of a step's views: x and the augmented view x~."""


@dataclasses.dataclass(frozen=True)
class FeatureShapes:
    """What a method's modules need to know about one network's features.

    Attributes:
        stages: ``(C, H, W)`` of the four stage maps, early -> late, at the run's image size.
        feature_dim: length of the pooled embedding.
        num_classes: number of logits.
    """

    stages: tuple[tuple[int, int, int], ...]
    feature_dim: int
    num_classes: int

    @classmethod
    def probe(cls, model: nn.Module, sample: Tensor) -> FeatureShapes:
        """Shapes of ``model``'s features on ``sample`` (``[B, C, H, W]`` float, B >= 1).

        Runs one forward in eval mode without gradients, so BatchNorm running statistics and
        the random streams are untouched; the model's train/eval flag is restored.
        """
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.autocast(sample.device.type, enabled=False):
                out = model(sample.float(), features=True)
        finally:
            model.train(was_training)
        return cls(
            stages=tuple(tuple(int(d) for d in s.shape[1:]) for s in out.stages),
            feature_dim=int(out.pooled.shape[1]),
            num_classes=int(out.logits.shape[1]),
        )


@dataclasses.dataclass(frozen=True)
class DistillSetup:
    """Everything a method may need to build its modules, fixed for a run.

    Attributes:
        student, teacher: the two networks' feature shapes.
        train_labels: int64 ``[N]`` labels of the training split (CRD draws its negatives from
            the other classes), on the training device.
        epochs: the run's number of epochs (schedules such as DKD's warm-up scale with it).
        temperature: the run's KD temperature (``--temperature``), for the logit methods.
        student_name, teacher_name: the architectures' zoo names (``"resnet8"``), or ``""``
            when unknown; settings the reference code chooses per pair (DKD's beta, FT's
            pre-training lr) read them.
    """

    student: FeatureShapes
    teacher: FeatureShapes
    train_labels: Tensor
    epochs: int
    temperature: float = 4.0
    student_name: str = ""
    teacher_name: str = ""


@dataclasses.dataclass(frozen=True)
class Step:
    """Per-view context of one training step.

    Attributes:
        labels: int64 ``[B]`` labels of the samples (of x; x~ is built from the same samples).
        index: int64 ``[B]`` indices of the samples in the training split (None outside a
            training epoch; methods with per-sample memory, CRD, then refuse to run).
        view: ``"original"`` (x) or ``"augmented"`` (x~).
        epoch: the 1-based epoch.
        generator: the step's random stream (on the training device), for methods that draw
            (CRD's negatives), so a resumed run draws what the uninterrupted one would.
    """

    labels: Tensor
    index: Tensor | None
    view: str
    epoch: int
    generator: torch.Generator | None = None


class Distiller(nn.Module):
    """Base class of the methods.

    Subclasses set the class attributes, take ``setup`` plus keyword-only options in
    ``__init__`` and implement :meth:`forward`.

    Class attributes:
        name: the registered name.
        weights: ``(w_task, w_distill)``, the common framework's hand-tuned weights of CE and
            of the method's loss (docs/protocol.md §8), used by the manual balancer by default.
        reads_features: whether the method reads the stage maps or the pooled embedding (the
            models then return their feature record); logit methods set False.
        pretrains: whether the method has a pre-training stage run before the student trains
            (FT's paraphraser); its length is the instance's ``init_epochs``, its learning rate
            the instance's ``init_lr`` (None: the run's) and its loss :meth:`init_loss`.
    """

    name: ClassVar[str] = ""
    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)
    reads_features: ClassVar[bool] = True
    pretrains: ClassVar[bool] = False

    def __init__(self, setup: DistillSetup) -> None:
        super().__init__()
        self.setup = setup
        self.init_epochs = 0
        self.init_lr: float | None = None

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        """The method's loss on one view.

        Args:
            student: the student's outputs on the view (carrying the graph).
            teacher: the teacher's outputs on the same images (detached).
            step: labels, sample indices, view name, epoch and generator.

        Returns:
            ``{"loss": 0-d float32 tensor, ...}``; further entries are detached 0-d sub-terms
            for the logs (e.g. RKD's ``distance`` and ``angle``).
        """
        raise NotImplementedError

    def init_parameters(self) -> list[nn.Parameter]:
        """The parameters the pre-training stage trains (frozen afterwards); none by default."""
        return []

    def init_loss(self, teacher: ModelOutput) -> Tensor:
        """The pre-training stage's loss on a batch of teacher outputs."""
        raise NotImplementedError(f"{self.name} has no pre-training stage")

    def finish_init(self) -> None:
        """Called when the pre-training stage is over (freeze its parameters)."""
        for p in self.init_parameters():
            p.requires_grad_(False)

    def base_augmentation(self) -> Augmentation | None:
        """The method's own base DA of the training batches, replacing the recipe's crop+flip
        (MLKD: a flip, four rotations, an independent crop of each); None for the recipe's.
        It may return several copies of each sample, block by block (``[k B, C, H, W]``); the
        task loss is then taken on the first block."""
        return None

    def resolved_spec(self) -> str:
        """The method with every option as this run uses it, defaults and per-pair choices
        resolved, e.g. ``dkd(alpha=1.0, beta=6.0, warmup=None)``: what summary.json records."""
        return f"{self.name}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in method_options(type(self))
                         if hasattr(self, k))


DISTILLERS: Registry[type[Distiller]] = Registry("distillation method")


def register_distiller(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator: register a :class:`Distiller` subclass under ``name``."""

    def decorator(cls: type[Distiller]) -> type[Distiller]:
        cls.name = name
        DISTILLERS.register(name, cls)
        return cls

    return decorator


def method_options(cls: type[Distiller]) -> dict[str, inspect.Parameter]:
    """The keyword-only ``__init__`` parameters of ``cls``: the options its spec accepts."""
    return spec_parameters(cls)


def resolve_method(spec: str) -> tuple[type[Distiller], dict[str, Any]]:
    """The class and the type-checked options named by a spec, e.g. ``'fitnet(hint_layer=2)'``.

    Raises:
        ValueError: a malformed spec, an unknown method (the message lists the known ones), an
            unknown option (lists the allowed ones) or a value of the wrong type.
    """
    name, kwargs = parse_spec(spec, kind="distillation method")
    if name not in DISTILLERS:
        raise UnknownNameError(
            f"unknown distillation method {name!r}; known: {', '.join(DISTILLERS.names())}"
        )
    cls = DISTILLERS.get(name)
    return cls, check_spec_options(name, cls, kwargs, word="option")


def create_distiller(spec: str, setup: DistillSetup) -> Distiller:
    """Build the method named by ``spec`` for the networks described by ``setup``.

    Raises:
        ValueError: as :func:`resolve_method`, or an option out of range (named with its value).
    """
    cls, kwargs = resolve_method(spec)
    try:
        return cls(setup, **kwargs)
    except ValueError as err:
        if str(err).startswith(f"{cls.name}:"):
            raise
        raise ValueError(f"{cls.name}: {err}") from err


def list_distillers() -> list[str]:
    """The registered method names, in the protocol's order."""
    return DISTILLERS.names()


check_option = check_param
"""``check_option(method, option, value, ok, allowed)``: the DA specs' range check, whose
message ("<method>: bad value <option>=<value>; allowed: ...") fits the methods' options too."""


# ---------------------------------------------------------------------- feature helpers
def framework_features(out: ModelOutput) -> list[Tensor]:
    """The framework's ``feat`` list: the four stage maps, then the pooled embedding.

    ``feat[1:-1]`` are the three later stages, ``feat[-2]`` the last stage map and ``feat[-1]``
    the embedding, for every architecture of the zoo.
    """
    return [*out.stages, out.pooled]


def paired_stages(student: ModelOutput, teacher: ModelOutput) -> list[tuple[Tensor, Tensor]]:
    """``feat[1:-1]`` of both networks, paired stage by stage (three pairs)."""
    return list(zip(student.stages[1:], teacher.stages[1:], strict=True))


def pool_to_common(f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
    """Both maps at the smaller of their two spatial sizes (adaptive average pooling)."""
    hw_s, hw_t = tuple(f_s.shape[2:]), tuple(f_t.shape[2:])
    if hw_s == hw_t:
        return f_s, f_t
    size = (min(hw_s[0], hw_t[0]), min(hw_s[1], hw_t[1]))
    pool = torch.nn.functional.adaptive_avg_pool2d
    return (pool(f_s, size) if hw_s != size else f_s), (pool(f_t, size) if hw_t != size else f_t)


def float32(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a pure loss function in float32 with autocast off: tensor arguments are upcast.

    The methods' reductions (Gram matrices, similarity softmaxes, MMD) lose too much in bf16,
    and the distill term is part of every reported training curve.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Tensor:
        device = next((a.device for a in args if isinstance(a, Tensor)), torch.device("cpu"))
        args = tuple(a.float() if isinstance(a, Tensor) and a.is_floating_point() else a
                     for a in args)
        with torch.autocast(device.type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper
