"""Cutout (DeVries and Taylor, 2017): erase one square hole per image."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput
from augkd.augment.geometric import per_image
from augkd.augment.registry import register_augmentation
from augkd.grammar import MAX_SIDE, check_param


@dataclasses.dataclass(frozen=True)
class CutoutParams:
    """Parameters of :class:`Cutout`.

    Attributes:
        center_y, center_x: int64 ``[B]``, the hole's centre, uniform over the image.
        size: the hole's side in pixels before clipping at the border.
    """

    center_y: Tensor
    center_x: Tensor
    size: int


def square_mask(params: CutoutParams, height: int, width: int) -> Tensor:
    """Bool ``[B, 1, H, W]``, True inside each image's hole (clipped at the image border).

    The hole spans rows ``[cy - size // 2, cy - size // 2 + size)`` (same for columns), so its
    side is exactly ``size`` wherever it is not clipped.
    """
    device = params.center_y.device
    top = params.center_y - params.size // 2
    left = params.center_x - params.size // 2
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + params.size)  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + params.size)  # [B, W]
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


@register_augmentation("cutout")
class Cutout(Augmentation):
    """One square hole per image, set to 0 in uint8 and reported in ``AugmentOutput.erased``.

    Normalization then writes exactly 0 into the hole, i.e. the dataset's mean colour, as the
    paper's Cutout (applied after normalization) does.

    Args:
        size: the hole's side; None means ``min(H, W) // 4`` of the batch (32 px -> 8,
            64 px -> 16), at least 1.
        per_batch: one hole position for the whole batch.
    """

    def __init__(self, *, size: int | None = None, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        if size is not None:
            check_param("cutout", "size", size, 1 <= size <= MAX_SIDE,
                        f"an integer in [1, {MAX_SIDE}]")
        self.size = size

    def resolve_size(self, shape: torch.Size) -> int:
        """The hole side used for a batch of ``shape`` ``[B, C, H, W]``.

        Raises:
            ValueError: a given size larger than the images' longer side (it would erase all).
        """
        if self.size is None:
            return max(1, min(shape[-2], shape[-1]) // 4)
        if self.size > max(shape[-2], shape[-1]):
            raise ValueError(f"cutout: size={self.size} is larger than the {shape[-2]}x"
                             f"{shape[-1]} images; the hole would erase all of every image")
        return self.size

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> CutoutParams:
        """Draw hole centres, int64 ``[B]``, uniform over the rows and the columns."""
        b, _, h, w = shape
        n = 1 if self.per_batch else b
        cy = torch.randint(0, h, (n,), device=device, generator=generator)
        cx = torch.randint(0, w, (n,), device=device, generator=generator)
        return CutoutParams(per_image(cy, b), per_image(cx, b), self.resolve_size(shape))

    def apply(self, images: Tensor, params: CutoutParams) -> AugmentOutput:
        """Zero the holes of the images (uint8 ``[B, C, H, W]``) and report them as ``erased``."""
        mask = square_mask(params, images.shape[-2], images.shape[-1])
        return AugmentOutput(images=images.masked_fill(mask, 0), erased=mask)
