"""pick(): draw a pool of ``pool x B`` samples of any DA and keep the ``B`` a scorer ranks highest.

CutMixPick (the paper's) keeps the highest-entropy half of a doubled CutMix pool; the idea is
not specific to CutMix, so :class:`Pick` applies it to any DA spec, built-in or external::

    pick(autoaugment, by=teacher)                      # pool of 2 AutoAugment batches
    pick(mixup(alpha=0.4), by=student, pool=3)
    pick(kornia:RandomPerspective(distortion_scale=0.5, p=1.0), by=teacher)

``by`` ranks the pool by the entropy of the teacher's or the student's softmax at T = 1, or by
``kl`` = KL(teacher || student). ``cutmixpick-t`` and ``cutmixpick-s`` are ``pick(cutmix,
by=teacher)`` and ``pick(cutmix, by=student)``: :class:`CutMixPick` is a :class:`Pick` of CutMix
with the paper's parameter names (``score``, ``k``, ``beta``), and gives the same output for the
same generator as ``pick(cutmix, ...)``. The DA's ``pool`` draws are independent (each its own
:meth:`~augkd.augment.base.Augmentation.sample` from the call's generator, in order), in its
own mode: per image, or once per batch per draw with ``per_batch=true``.

A scorer is any callable mapping uint8 images ``[N, C, H, W]`` to float scores ``[N]``; when
the DA erases pixels (cutout) the scorer is also given ``erased=`` (bool ``[N, 1, H, W]``) so the
models see the holes as the trainer does (0 after normalization). The factories here build the
three scorers from models and a normalization (e.g. :class:`augkd.augment.pipeline.Normalize`).

Scoring must not change the models. It runs under ``torch.no_grad()`` in the model's *current*
mode, and every buffer (BatchNorm running mean/var and ``num_batches_tracked``) is snapshotted
before and restored after the forward. Why not switch to eval mode instead: the teacher is in
eval mode anyway, and a training student is best ranked by the outputs its own training step
will see (batch statistics), not by running statistics that lag behind early in training. Why
restore: a train-mode forward over the pool (half of which is thrown away) would otherwise move
the running statistics a second time per step and count a phantom batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.augment.base import Augmentation, AugmentOutput, MixRecord, check_generator, check_images
from augkd.augment.mixing import CutMix
from augkd.augment.registry import register_augmentation
from augkd.augment.spec import check_param, create

ScoreKind = Literal["teacher", "student", "kl"]
SCORE_KINDS: tuple[str, ...] = ("teacher", "student", "kl")
#: Largest pool, in batches: the pool is scored in one forward of pool x B images (paper: 2).
MAX_POOL = 64
#: uint8 images ``[N, C, H, W]`` (and, for erasing DAs, ``erased=`` bool ``[N, 1, H, W]``) ->
#: float scores ``[N]`` (higher = more likely kept).
Scorer = Callable[..., Tensor]
#: uint8 images ``[N, C, H, W]`` (and optional ``erased``) -> normalized float model input.
Normalizer = Callable[..., Tensor]


@contextlib.contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``model`` (BatchNorm statistics included) on exit."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _logits(output: object) -> Tensor:
    """The logits of a model output: a tensor, or an object with a ``logits`` tensor."""
    logits = output if isinstance(output, Tensor) else getattr(output, "logits", None)
    if not isinstance(logits, Tensor):
        raise TypeError(f"scorer expected the model to return logits, got {type(output).__name__}")
    return logits.float()


def _log_probs(model: nn.Module, inputs: Tensor) -> Tensor:
    """Log-softmax at T = 1 of ``model(inputs)``, float32 ``[N, classes]``, state untouched."""
    with torch.no_grad(), preserved_buffers(model):
        return F.log_softmax(_logits(model(inputs)), dim=1)


def _normalized(normalize: Normalizer, images: Tensor, erased: Tensor | None) -> Tensor:
    return normalize(images) if erased is None else normalize(images, erased)


def entropy_scorer(model: nn.Module, normalize: Normalizer) -> Scorer:
    """Score = entropy (nats) of ``softmax(model(normalize(images)))``, float32 ``[N]``.

    ``erased`` (bool ``[N, 1, H, W]``, from an erasing DA) is passed on to ``normalize``."""

    def score(images: Tensor, erased: Tensor | None = None) -> Tensor:
        log_p = _log_probs(model, _normalized(normalize, images, erased))
        return -(log_p.exp() * log_p).sum(dim=1)

    return score


def kl_scorer(teacher: nn.Module, student: nn.Module, normalize: Normalizer) -> Scorer:
    """Score = KL(softmax(teacher) || softmax(student)) in nats at T = 1, float32 ``[N]``."""

    def score(images: Tensor, erased: Tensor | None = None) -> Tensor:
        inputs = _normalized(normalize, images, erased)
        log_t = _log_probs(teacher, inputs)
        log_s = _log_probs(student, inputs)
        return (log_t.exp() * (log_t - log_s)).sum(dim=1)

    return score


def make_scorer(
    kind: ScoreKind,
    *,
    teacher: nn.Module | None = None,
    student: nn.Module | None = None,
    normalize: Normalizer,
) -> Scorer:
    """Build the scorer a :class:`Pick` with ``by=kind`` needs.

    Raises:
        ValueError: unknown ``kind``, or a model that ``kind`` needs is missing.
    """
    needed = {"teacher": ("teacher",), "student": ("student",), "kl": ("teacher", "student")}
    if kind not in needed:
        raise ValueError(f"unknown score kind {kind!r}; known: {', '.join(needed)}")
    models = {"teacher": teacher, "student": student}
    missing = [m for m in needed[kind] if models[m] is None]
    if missing:
        raise ValueError(f"score={kind} needs the {' and '.join(missing)} model")
    if kind == "kl":
        return kl_scorer(teacher, student, normalize)  # type: ignore[arg-type]
    return entropy_scorer(models[kind], normalize)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class PickParams:
    """Parameters of :class:`Pick`: the DA's parameters of each of the ``pool`` draws."""

    draws: tuple[Any, ...]


@register_augmentation("pick")
class Pick(Augmentation):
    """Draw the DA ``pool`` times over the batch, keep the ``B`` highest-scoring of ``pool B``.

    Calls need a ``scorer`` (see :func:`make_scorer`; :attr:`score` says which). The output is
    ordered by decreasing score, so output ``i`` is in general not an augmentation of input
    ``i``; its :class:`MixRecord` says where each kept sample came from: ``source`` (the input
    it was made from) and, for mixing DAs, ``partner`` and ``lam`` as the DA reported them. A
    kept sample of a non-mixing DA is all of its source: ``partner = source``, ``lam = 1``.

    Args:
        aug: the DA, as a spec (``autoaugment``, ``kornia:...``, ``module:Class(...)``) or an
            :class:`Augmentation`; one that needs a scorer itself (a pick) is refused. In a
            spec it is the first, positional argument: ``pick(autoaugment, by=student)``.
        by: what ranks the pool: ``teacher`` or ``student`` entropy, or ``kl``.
        pool: pool size in batches, >= 1 (``pool = 1`` keeps every sample, reordered).
        per_batch: the DA's mode (True: each of the ``pool`` draws shares its parameters
            across the batch); None keeps the mode the DA's spec gives.
    """

    needs_scorer = True
    #: The positional first argument of the spec holds a DA spec (see ``augkd.augment.spec``).
    nested_spec: ClassVar[str | None] = "aug"

    def __init__(
        self,
        aug: str | Augmentation = "cutmix",
        *,
        by: ScoreKind = "teacher",
        pool: int = 2,
        per_batch: bool | None = None,
    ) -> None:
        name = type(self).name
        check_param(name, "by", by, by in SCORE_KINDS, ", ".join(SCORE_KINDS))
        check_param(name, "pool", pool, type(pool) is int and 1 <= pool <= MAX_POOL,
                    f"an integer in [1, {MAX_POOL}]")
        if isinstance(aug, str):
            inner = create(aug, per_batch=per_batch)
        elif isinstance(aug, Augmentation):
            if per_batch is not None and bool(per_batch) != aug.per_batch:
                raise ValueError(f"{name}: per_batch={per_batch} contradicts the DA {aug}, whose "
                                 f"per_batch is {aug.per_batch}")
            inner = aug
        else:
            raise TypeError(f"{name}: expected a DA spec or an Augmentation, got "
                            f"{type(aug).__name__}")
        if inner.needs_scorer:
            raise ValueError(f"{name}: {inner} ranks samples with a scorer itself; pick a DA "
                             "that does not (a pick of a pick is one pick with a larger pool)")
        super().__init__(per_batch=inner.per_batch)
        self.aug = inner
        self.by = by
        self.pool = int(pool)

    @property
    def score(self) -> str:
        """What ranks the pool (``by``): the scorer kind the trainer and T. stddev build."""
        return self.by

    @property
    def k(self) -> int:
        """The pool size in batches (CutMixPick's name for ``pool``)."""
        return self.pool

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> PickParams:
        """Draw ``pool`` independent parameter sets of the DA for the batch, in order."""
        return PickParams(tuple(self.aug.sample(shape, device, generator)
                                for _ in range(self.pool)))

    def apply(
        self, images: Tensor, params: PickParams, scorer: Scorer | None = None
    ) -> AugmentOutput:
        """Build the pool from ``images`` (uint8 ``[B, C, H, W]``) and keep the top ``B``."""
        if scorer is None:
            raise ValueError(
                f"{self}: a scorer is required; build one with augkd.augment."
                f"make_scorer({self.score!r}, teacher=..., student=..., normalize=...)"
            )
        b = images.shape[0]
        outs = [self.aug.apply(images, draw) for draw in params.draws]
        pool = torch.cat([out.images for out in outs])
        erased = None
        if any(out.erased is not None for out in outs):
            erased = torch.cat([
                out.erased if out.erased is not None
                else torch.zeros(b, 1, *images.shape[-2:], dtype=torch.bool, device=images.device)
                for out in outs
            ])
        scores = scorer(pool) if erased is None else scorer(pool, erased=erased)
        if scores.shape != (pool.shape[0],):
            raise ValueError(
                f"scorer returned shape {tuple(scores.shape)}, expected ({pool.shape[0]},)"
            )
        keep = scores.topk(b, sorted=True).indices
        source, partner, lam = self._provenance(outs, b, images.device)
        record = MixRecord(partner=partner[keep], lam=lam[keep], source=source[keep])
        return AugmentOutput(images=pool[keep], mix=record,
                             erased=erased[keep] if erased is not None else None)

    @staticmethod
    def _provenance(
        outs: list[AugmentOutput], b: int, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Source, partner (int64) and lam (float32) of every pool member, ``[pool B]`` each."""
        sources, partners, lams = [], [], []
        for out in outs:
            mix = out.mix
            source = torch.arange(b, device=device)
            if mix is not None and mix.source is not None:
                source = mix.source
            sources.append(source)
            partners.append(mix.partner if mix is not None else source)
            lams.append(mix.lam if mix is not None
                        else torch.ones(b, dtype=torch.float32, device=device))
        return torch.cat(sources), torch.cat(partners), torch.cat(lams)

    def __call__(  # type: ignore[override]
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        scorer: Scorer | None = None,
    ) -> AugmentOutput:
        """Augment uint8 ``[B, C, H, W]`` images; ``scorer`` maps ``[N, C, H, W]`` to ``[N]``."""
        check_images(images)
        check_generator(generator, images.device)
        return self.apply(images, self.sample(images.shape, images.device, generator), scorer)


@register_augmentation("cutmixpick")
class CutMixPick(Pick):
    """The paper's CutMixPick: ``pick(cutmix(beta=beta), by=score, pool=k)``.

    Args:
        score: what ranks the pool: ``teacher`` or ``student`` entropy, or ``kl``.
        k: pool size in batches, >= 1 (``k = 1`` keeps every sample, reordered).
        beta: CutMix's Beta concentration.
        per_batch: each of the ``k`` CutMix draws shares one lambda and box across the batch.
    """

    nested_spec = None  # its spec names CutMix's parameters, not a DA

    def __init__(
        self,
        *,
        score: ScoreKind = "teacher",
        k: int = 2,
        beta: float = 1.0,
        per_batch: bool = False,
    ) -> None:
        check_param("cutmixpick", "score", score, score in SCORE_KINDS, "teacher, student or kl")
        check_param("cutmixpick", "k", k, 1 <= k <= MAX_POOL, f"an integer in [1, {MAX_POOL}]")
        super().__init__(CutMix(beta=beta, per_batch=per_batch), by=score, pool=int(k))
        self.beta = float(beta)
