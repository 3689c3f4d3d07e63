"""Geometric DAs: identity, horizontal flip, zero-padded random crop, and crop followed by flip.

Crops are one ``gather`` from the zero-padded batch with per-image row/column indices, so every
output pixel is an exact copy of an input pixel or a padding zero, and a crop and a flip cost
a single pass (the flip only reverses the gathered column order).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput
from augkd.augment.registry import register_augmentation
from augkd.grammar import MAX_SIDE, check_param


def per_image(values: Tensor, batch: int) -> Tensor:
    """Broadcast a per-batch draw of shape ``[1, ...]`` to ``[batch, ...]`` (a view, no copy)."""
    return values.expand(batch, *values.shape[1:])


def like_input_format(out: Tensor, images: Tensor) -> Tensor:
    """``out`` in channels-last layout when ``images`` (``[B, C, H, W]``) is channels-last."""
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out


def draw_flags(
    p: float, n: int, batch: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """Bernoulli(p) flags, bool ``[batch]``: ``n`` = batch (per image) or 1 (shared, broadcast)."""
    flags = torch.rand(n, device=device, generator=generator) < p
    return per_image(flags, batch)


@dataclasses.dataclass(frozen=True)
class FlipParams:
    """Parameters of :class:`Flip`: ``flip`` bool ``[B]``, True where image ``i`` is mirrored."""

    flip: Tensor


@dataclasses.dataclass(frozen=True)
class CropParams:
    """Parameters of :class:`Crop`.

    Attributes:
        offset_y, offset_x: int64 ``[B]`` in ``[0, 2 * padding]``: the top-left corner of the
            crop in the padded image; the content moves by ``(padding - offset_y,
            padding - offset_x)`` pixels (down, right).
        padding: zero padding on every side, in pixels.
    """

    offset_y: Tensor
    offset_x: Tensor
    padding: int


@dataclasses.dataclass(frozen=True)
class CropFlipParams:
    """Parameters of :class:`CropFlip`: a crop, then a flip of the cropped image."""

    crop: CropParams
    flip: FlipParams


def crop_and_flip(images: Tensor, crop: CropParams, flip: Tensor | None = None) -> Tensor:
    """Zero-pad, crop back to ``H x W`` at the given offsets, then mirror where ``flip``.

    Args:
        images: ``[B, C, H, W]``, any dtype.
        crop: per-image offsets, see :class:`CropParams`.
        flip: bool ``[B]`` or None (no flip).

    Returns:
        ``[B, C, H, W]``, same dtype and device; exact copies of input pixels or zeros.
    """
    b, c, h, w = images.shape
    pad = crop.padding
    padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
    padded_w = w + 2 * pad
    device = images.device
    rows = crop.offset_y[:, None] + torch.arange(h, device=device)  # [B, H]
    cols = torch.arange(w, device=device).expand(b, w)
    if flip is not None:
        cols = torch.where(flip[:, None], w - 1 - cols, cols)
    cols = crop.offset_x[:, None] + cols  # [B, W]
    index = (rows[:, :, None] * padded_w + cols[:, None, :]).reshape(b, 1, h * w)
    out = padded.reshape(b, c, -1).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)
    return like_input_format(out, images)


@register_augmentation("identity")
class Identity(Augmentation):
    """The images unchanged (the returned tensor is the input: DAs never write in place)."""

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> None:
        """Nothing to draw."""
        return None

    def apply(self, images: Tensor, params: None) -> AugmentOutput:
        """Return ``images`` (uint8 ``[B, C, H, W]``) as they are."""
        return AugmentOutput(images=images)


@register_augmentation("flip")
class Flip(Augmentation):
    """Horizontal flip with probability ``p``, drawn per image (or once per batch).

    Args:
        p: flip probability in ``[0, 1]``.
        per_batch: one flip decision for the whole batch, as the paper's code does.
    """

    def __init__(self, *, p: float = 0.5, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        check_param("flip", "p", p, 0.0 <= p <= 1.0, "0 <= p <= 1")
        self.p = float(p)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> FlipParams:
        """Draw the flip flags, bool ``[B]``."""
        b = shape[0]
        return FlipParams(draw_flags(self.p, 1 if self.per_batch else b, b, device, generator))

    def apply(self, images: Tensor, params: FlipParams) -> AugmentOutput:
        """Mirror the images (uint8 ``[B, C, H, W]``) whose flag is set."""
        flipped = torch.where(params.flip[:, None, None, None], images.flip(-1), images)
        return AugmentOutput(images=like_input_format(flipped, images))


@register_augmentation("crop")
class Crop(Augmentation):
    """Zero-pad by ``padding`` pixels on every side, then crop a random ``H x W`` window.

    Args:
        padding: pixels of zero padding; None means ``min(H, W) // 8`` of the batch
            (32 px -> 4, the CIFAR recipe; 64 px -> 8; 8 px -> 1).
        per_batch: one crop offset for the whole batch.
    """

    def __init__(self, *, padding: int | None = None, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        if padding is not None:
            check_param(self.name, "padding", padding, 0 <= padding <= MAX_SIDE,
                        f"an integer in [0, {MAX_SIDE}]")
        self.padding = padding

    def resolve_padding(self, shape: torch.Size) -> int:
        """The padding used for a batch of ``shape`` ``[B, C, H, W]``."""
        return min(shape[-2], shape[-1]) // 8 if self.padding is None else self.padding

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> CropParams:
        """Draw crop offsets, int64 ``[B]`` each, uniform in ``[0, 2 * padding]``."""
        b = shape[0]
        pad = self.resolve_padding(shape)
        n = 1 if self.per_batch else b
        offsets = torch.randint(0, 2 * pad + 1, (2, n), device=device, generator=generator)
        return CropParams(per_image(offsets[0], b), per_image(offsets[1], b), pad)

    def apply(self, images: Tensor, params: CropParams) -> AugmentOutput:
        """Crop the images (uint8 ``[B, C, H, W]``) at the given offsets."""
        return AugmentOutput(images=crop_and_flip(images, params))


@register_augmentation("crop+flip")
class CropFlip(Crop):
    """Random crop (as :class:`Crop`) followed by a horizontal flip with probability ``p``.

    Per image this is the base DA of the CIFAR recipe (pad 4, crop 32, flip 0.5).

    Args:
        padding: as for :class:`Crop`.
        p: flip probability.
        per_batch: one crop offset and one flip decision for the whole batch.
    """

    def __init__(
        self, *, padding: int | None = None, p: float = 0.5, per_batch: bool = False
    ) -> None:
        super().__init__(padding=padding, per_batch=per_batch)
        check_param(self.name, "p", p, 0.0 <= p <= 1.0, "0 <= p <= 1")
        self.p = float(p)

    def sample(  # type: ignore[override]
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> CropFlipParams:
        """Draw crop offsets, then flip flags (see :class:`CropParams`, :class:`FlipParams`)."""
        crop = super().sample(shape, device, generator)
        n = 1 if self.per_batch else shape[0]
        return CropFlipParams(crop, FlipParams(draw_flags(self.p, n, shape[0], device, generator)))

    def apply(self, images: Tensor, params: CropFlipParams) -> AugmentOutput:  # type: ignore[override]
        """Crop then mirror the images (uint8 ``[B, C, H, W]``) in one gather."""
        return AugmentOutput(images=crop_and_flip(images, params.crop, params.flip.flip))
