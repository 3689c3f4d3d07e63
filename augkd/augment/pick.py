"""CutMixPick: draw a pool of ``k x B`` CutMix samples and keep the ``B`` a scorer ranks highest.

The paper ranks the pool by the entropy of the teacher's (``cutmixpick-t``) or the student's
(``cutmixpick-s``) softmax at T = 1; ``score=kl`` ranks by KL(teacher || student). A scorer is
any callable mapping uint8 images ``[N, C, H, W]`` to float scores ``[N]``; the factories here
build the three from models and a normalization (e.g. :class:`augkd.augment.pipeline.Normalize`).

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
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.augment.base import Augmentation, AugmentOutput, MixRecord, check_generator, check_images
from augkd.augment.mixing import CutMix, CutMixParams, cutmix_pixels
from augkd.augment.registry import register_augmentation
from augkd.augment.spec import check_param

ScoreKind = Literal["teacher", "student", "kl"]
#: Largest pool, in batches: the pool is scored in one forward of k x B images (the paper: 2).
MAX_POOL = 64
#: uint8 images ``[N, C, H, W]`` -> float scores ``[N]`` (higher = more likely kept).
Scorer = Callable[[Tensor], Tensor]
#: uint8 images ``[N, C, H, W]`` -> normalized float model input ``[N, C, H, W]``.
Normalizer = Callable[[Tensor], Tensor]


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


def entropy_scorer(model: nn.Module, normalize: Normalizer) -> Scorer:
    """Score = entropy (nats) of ``softmax(model(normalize(images)))``, float32 ``[N]``."""

    def score(images: Tensor) -> Tensor:
        log_p = _log_probs(model, normalize(images))
        return -(log_p.exp() * log_p).sum(dim=1)

    return score


def kl_scorer(teacher: nn.Module, student: nn.Module, normalize: Normalizer) -> Scorer:
    """Score = KL(softmax(teacher) || softmax(student)) in nats at T = 1, float32 ``[N]``."""

    def score(images: Tensor) -> Tensor:
        inputs = normalize(images)
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
    """Build the scorer a :class:`CutMixPick` with ``score=kind`` needs.

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
    """Parameters of :class:`CutMixPick`: ``k`` independent CutMix draws over the batch."""

    draws: tuple[CutMixParams, ...]


@register_augmentation("cutmixpick")
class CutMixPick(Augmentation):
    """CutMix ``k`` times, keep the ``B`` highest-scoring of the ``k B`` samples.

    Calls need a ``scorer`` (see :func:`make_scorer`; :attr:`score` says which). The output is
    ordered by decreasing score; its :class:`MixRecord` gives, for each kept sample, the
    original-batch indices of its own image (``source``) and of its partner (``partner``).

    Args:
        score: what ranks the pool: ``teacher`` or ``student`` entropy, or ``kl``.
        k: pool size in batches, >= 1 (``k = 1`` keeps every sample, reordered).
        beta: CutMix's Beta concentration.
        per_batch: each of the ``k`` CutMix draws shares one lambda and box across the batch.
    """

    needs_scorer = True

    def __init__(
        self,
        *,
        score: ScoreKind = "teacher",
        k: int = 2,
        beta: float = 1.0,
        per_batch: bool = False,
    ) -> None:
        super().__init__(per_batch=per_batch)
        check_param("cutmixpick", "score", score, score in ("teacher", "student", "kl"),
                    "teacher, student or kl")
        check_param("cutmixpick", "k", k, 1 <= k <= MAX_POOL, f"an integer in [1, {MAX_POOL}]")
        self.score = score
        self.k = int(k)
        self.beta = float(beta)
        self._cutmix = CutMix(beta=beta, per_batch=per_batch)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> PickParams:
        """Draw ``k`` independent CutMix parameter sets for the batch."""
        draws = tuple(self._cutmix.sample(shape, device, generator) for _ in range(self.k))
        return PickParams(draws)

    def apply(
        self, images: Tensor, params: PickParams, scorer: Scorer | None = None
    ) -> AugmentOutput:
        """Build the pool from ``images`` (uint8 ``[B, C, H, W]``) and keep the top ``B``."""
        if scorer is None:
            raise ValueError(
                f"{self}: a scorer is required; build one with augkd.augment."
                f"make_scorer({self.score!r}, teacher=..., student=..., normalize=...)"
            )
        b, _, h, w = images.shape
        pool = torch.cat([cutmix_pixels(images, draw) for draw in params.draws])
        partner = torch.cat([draw.partner for draw in params.draws])
        lam = torch.cat([draw.kept_fraction(h, w) for draw in params.draws])
        source = torch.arange(b, device=images.device).repeat(len(params.draws))
        scores = scorer(pool)
        if scores.shape != (pool.shape[0],):
            raise ValueError(
                f"scorer returned shape {tuple(scores.shape)}, expected ({pool.shape[0]},)"
            )
        keep = scores.topk(b, sorted=True).indices
        record = MixRecord(partner=partner[keep], lam=lam[keep], source=source[keep])
        return AugmentOutput(images=pool[keep], mix=record)

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
