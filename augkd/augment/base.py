"""The one contract every augmentation of augkd follows.

An augmentation is a callable on a batch of uint8 images ``[B, C, H, W]`` (any device)::

    out = aug(images, generator=g)        # -> AugmentOutput
    out.images                            # uint8 [B, C, H, W], same device
    out.mix                               # MixRecord for mixing DAs (mixup, cutmix, ...), else None
    out.erased                            # bool [B, 1, H, W] for erasing DAs (cutout), else None

Randomness is split from pixels: ``sample`` draws every random parameter of the batch as
tensors on the batch's device (per image by default, once per batch with ``per_batch=True``),
and ``apply`` is a deterministic function of the images and those parameters. The split makes
the DAs testable (force a parameter, compare with an oracle) and lets the same parameters be
replayed on another device.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class MixRecord:
    """What a mixing augmentation mixed.

    Attributes:
        partner: int64 ``[B]``; output image ``i`` mixes input ``i`` with input ``partner[i]``.
        lam: float32 ``[B]``; the fraction of output image ``i`` that comes from input ``i``
            (for CutMix the exact pasted-area complement, not the drawn lambda).
        source: int64 ``[B]`` or None; set by DAs that select or reorder samples (CutMixPick):
            output image ``i`` mixes input ``source[i]`` (weight ``lam[i]``) with input
            ``partner[i]``. None means ``source[i] == i``.
    """

    partner: Tensor
    lam: Tensor
    source: Tensor | None = None


@dataclasses.dataclass(frozen=True)
class AugmentOutput:
    """The result of an augmentation call.

    Attributes:
        images: uint8 ``[B, C, H, W]``, on the input's device.
        mix: set by mixing DAs, see :class:`MixRecord`.
        erased: bool ``[B, 1, H, W]``, True where a DA erased pixels (cutout); normalization
            sets those pixels to exactly 0, the dataset's mean colour, as the paper does.
    """

    images: Tensor
    mix: MixRecord | None = None
    erased: Tensor | None = None


class Augmentation(ABC):
    """Base class of all augmentations.

    Subclasses set ``name`` (the registry name) and implement :meth:`sample` and :meth:`apply`.

    Args:
        per_batch: draw the random parameters once and share them across the batch (the
            paper's code does this for every extra DA; only mixing partners stay per image).
    """

    name: ClassVar[str]
    #: True for DAs whose call needs a ``scorer`` (CutMixPick); see :mod:`augkd.augment.pick`.
    needs_scorer: ClassVar[bool] = False

    def __init__(self, *, per_batch: bool = False) -> None:
        self.per_batch = bool(per_batch)

    @abstractmethod
    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> Any:
        """Draw the random parameters for a batch of ``shape`` ``[B, C, H, W]`` on ``device``."""

    @abstractmethod
    def apply(self, images: Tensor, params: Any) -> AugmentOutput:
        """Apply the augmentation with the given parameters (deterministic)."""

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> AugmentOutput:
        check_images(images)
        check_generator(generator, images.device)
        return self.apply(images, self.sample(images.shape, images.device, generator))

    def extra_repr(self) -> str:
        """``key=value`` for every keyword-only ``__init__`` parameter stored as an attribute."""
        params = inspect.signature(type(self).__init__).parameters.values()
        return ", ".join(
            f"{p.name}={getattr(self, p.name)!r}"
            for p in params
            if p.kind is inspect.Parameter.KEYWORD_ONLY and hasattr(self, p.name)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __str__(self) -> str:
        """The canonical spec string, e.g. ``cutout(size=8)``; see :func:`augkd.augment.spec_of`."""
        if _spec_writer is None:  # only while augkd.augment itself is being imported
            return type(self).__name__
        return _spec_writer(self)


#: Writes a DA's canonical spec: :func:`augkd.augment.spec.spec_of`, which that module sets
#: with :func:`set_spec_writer` when it loads (it imports this module, so the dependency runs
#: that way only; importing any DA imports the augkd.augment package, and so spec.py, first).
_spec_writer: Callable[[Augmentation], str] | None = None


def set_spec_writer(writer: Callable[[Augmentation], str]) -> None:
    """Make ``str(aug)`` call ``writer(aug)`` (set once, by :mod:`augkd.augment.spec`)."""
    global _spec_writer
    _spec_writer = writer


def check_images(images: Tensor) -> None:
    """Raise a clear error unless ``images`` is a uint8 batch ``[B, C, H, W]``."""
    if not isinstance(images, Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images [B, C, H, W], got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"expected images of shape [B, C, H, W], got shape {tuple(images.shape)}")


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise a clear error unless ``generator`` is None or lives on ``device``'s type."""
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator lives on {generator.device.type!r} but the images on {device.type!r}; "
            "create it with torch.Generator(device=images.device)"
        )
