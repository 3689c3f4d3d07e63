"""RandomResizedCrop and flip, batched with per-image boxes; the centre crop of evaluation.

ImageNet's base DA (Szegedy et al. 2015, as torchvision's ``RandomResizedCrop``): a box of
a random fraction ``scale`` of the image's area and a random aspect ratio (log-uniform in
``ratio``), at a uniform position, resampled to the output size; then a horizontal flip.

The boxes are drawn as torchvision draws them (ten tries per image, the first that fits, else
the whole image clamped to the ratio range), all images at once. Every box is resampled in one
``grid_sample`` call with the pixel convention of ``torch.nn.functional.interpolate(mode=
"bilinear", align_corners=False)`` inside the box (source ``(dst + 0.5) * box / out - 0.5``,
clamped to the box), so each image equals torchvision's ``resized_crop`` of its box to within
one grey level wherever the box is not larger than the output (the usual case: the output is
the stored side and the box lies inside the image). A box larger than the output is
resampled bilinearly without antialiasing. The flip reverses the sampling columns: free.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput, check_images
from augkd.augment.geometric import draw_flags, like_input_format, per_image
from augkd.augment.registry import register_augmentation
from augkd.grammar import MAX_SIDE, check_param

#: Tries per image before the fallback box, as torchvision.
TRIES = 10


@dataclasses.dataclass(frozen=True)
class BoxParams:
    """Per-image boxes, int64 ``[B]`` each, in input pixels: rows ``[top, top + height)``,
    columns ``[left, left + width)``; ``flip`` bool ``[B]`` or None; ``size`` the output
    ``(height, width)``."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    flip: Tensor | None
    size: tuple[int, int]


def _source_coords(start: Tensor, extent: Tensor, out: int) -> Tensor:
    """Source pixel coordinates ``[B, out]`` of ``out`` samples across each box (interpolate's
    ``align_corners=False`` rule, clamped to the box)."""
    dst = torch.arange(out, device=start.device, dtype=torch.float32) + 0.5
    extent_f = extent.to(torch.float32)[:, None]
    src = dst[None] * (extent_f / out) - 0.5
    src = torch.minimum(src.clamp_min(0.0), extent_f - 1.0)
    return src + start.to(torch.float32)[:, None]


def resized_crop(images: Tensor, params: BoxParams) -> Tensor:
    """Resample each image's box to ``params.size`` (bilinear), mirrored where ``flip``.

    Args:
        images: uint8 (or float) ``[B, C, H, W]``.
        params: the boxes, see :class:`BoxParams`.

    Returns:
        ``[B, C, out_h, out_w]`` in the input's dtype (uint8 rounded to nearest), same device.
    """
    b, _, h, w = images.shape
    out_h, out_w = params.size
    ys = _source_coords(params.top, params.height, out_h)  # [B, out_h]
    xs = _source_coords(params.left, params.width, out_w)  # [B, out_w]
    if params.flip is not None:
        xs = torch.where(params.flip[:, None], xs.flip(-1), xs)
    # grid_sample's normalized coordinates for align_corners=False: g = (2 x + 1) / W - 1
    gx = (2.0 * xs + 1.0) / w - 1.0
    gy = (2.0 * ys + 1.0) / h - 1.0
    grid = torch.stack((gx[:, None, :].expand(b, out_h, out_w),
                        gy[:, :, None].expand(b, out_h, out_w)), dim=-1)
    source = images if images.is_floating_point() else images.to(torch.float32)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    if images.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return like_input_format(out, images)


def sample_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
    device: torch.device, generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``n`` RandomResizedCrop boxes ``(top, left, box_h, box_w)``, int64 ``[n]`` each, drawn
    as torchvision's ``RandomResizedCrop.get_params`` (ten tries, then the fallback)."""
    area = height * width
    draws = torch.rand(3, n, TRIES, device=device, generator=generator)
    target = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
    box_w = torch.sqrt(target * aspect).round().long()
    box_h = torch.sqrt(target / aspect).round().long()
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # the first try that fits
    found = fits.any(dim=1)
    box_w = box_w.gather(1, first)[:, 0]
    box_h = box_h.gather(1, first)[:, 0]
    # fallback: the whole image, its ratio clamped to the range (a centre crop)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fb_w, fb_h = int(round(height * ratio[1])), height
    else:
        fb_w, fb_h = width, height
    box_w = torch.where(found, box_w, fb_w)
    box_h = torch.where(found, box_h, fb_h)
    position = torch.rand(2, n, device=device, generator=generator)
    top = (position[0] * (height - box_h + 1).to(torch.float32)).long()
    left = (position[1] * (width - box_w + 1).to(torch.float32)).long()
    top = torch.where(found, torch.minimum(top, height - box_h), (height - fb_h) // 2)
    left = torch.where(found, torch.minimum(left, width - box_w), (width - fb_w) // 2)
    return top, left, box_h, box_w


@register_augmentation("resized-crop")
class ResizedCrop(Augmentation):
    """RandomResizedCrop: a random box of ``scale`` of the area and aspect ratio in
    ``ratio`` (log-uniform), resampled to ``size`` (bilinear).

    Args:
        scale_min, scale_max: the box's share of the image area (ImageNet: 0.08 to 1).
        ratio_min, ratio_max: the box's width / height (ImageNet: 3/4 to 4/3).
        size: the output side; None keeps the input's ``H x W`` (the stored resolution).
        per_batch: one box for the whole batch.
    """

    def __init__(
        self, *, scale_min: float = 0.08, scale_max: float = 1.0, ratio_min: float = 3 / 4,
        ratio_max: float = 4 / 3, size: int | None = None, per_batch: bool = False,
    ) -> None:
        super().__init__(per_batch=per_batch)
        name = type(self).name
        check_param(name, "scale_min", scale_min, 0.0 < scale_min <= scale_max,
                    "0 < scale_min <= scale_max")
        check_param(name, "scale_max", scale_max, scale_max <= 1.0, "scale_max <= 1")
        check_param(name, "ratio_min", ratio_min, 0.0 < ratio_min <= ratio_max,
                    "0 < ratio_min <= ratio_max")
        if size is not None:
            check_param(name, "size", size, 1 <= size <= MAX_SIDE,
                        f"an integer in [1, {MAX_SIDE}]")
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        self.ratio_min, self.ratio_max = float(ratio_min), float(ratio_max)
        self.size = size

    def out_size(self, shape: torch.Size) -> tuple[int, int]:
        """The output ``(height, width)`` for a batch of ``shape`` ``[B, C, H, W]``."""
        return (shape[-2], shape[-1]) if self.size is None else (self.size, self.size)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> BoxParams:
        """Draw a box per image (or one per batch), int64 ``[B]`` each."""
        b, _, h, w = shape
        n = 1 if self.per_batch else b
        boxes = sample_boxes(n, h, w, (self.scale_min, self.scale_max),
                             (self.ratio_min, self.ratio_max), device, generator)
        top, left, box_h, box_w = (per_image(t, b) for t in boxes)
        return BoxParams(top, left, box_h, box_w, None, self.out_size(shape))

    def apply(self, images: Tensor, params: BoxParams) -> AugmentOutput:
        """Resample the boxes of the images (uint8 ``[B, C, H, W]``)."""
        return AugmentOutput(images=resized_crop(images, params))


@register_augmentation("resized-crop+flip")
class ResizedCropFlip(ResizedCrop):
    """:class:`ResizedCrop`, then a horizontal flip with probability ``p``: ImageNet's base DA.

    Args:
        p: flip probability.
        Others: as :class:`ResizedCrop`.
    """

    def __init__(
        self, *, scale_min: float = 0.08, scale_max: float = 1.0, ratio_min: float = 3 / 4,
        ratio_max: float = 4 / 3, size: int | None = None, p: float = 0.5,
        per_batch: bool = False,
    ) -> None:
        super().__init__(scale_min=scale_min, scale_max=scale_max, ratio_min=ratio_min,
                         ratio_max=ratio_max, size=size, per_batch=per_batch)
        check_param(self.name, "p", p, 0.0 <= p <= 1.0, "0 <= p <= 1")
        self.p = float(p)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> BoxParams:
        """Draw the boxes, then the flip flags, bool ``[B]``."""
        boxes = super().sample(shape, device, generator)
        n = 1 if self.per_batch else shape[0]
        flip = draw_flags(self.p, n, shape[0], device, generator)
        return dataclasses.replace(boxes, flip=flip)


class CenterCrop:
    """Evaluation's centre crop: the central ``fraction`` of each side (torchvision's
    ``CenterCrop`` placement), resampled back to the full ``H x W``.

    At ``fraction = 0.875`` this is ImageNet's "resize to 256, centre-crop 224" at the stored
    resolution: the objects appear at the scale a RandomResizedCrop shows them on average.
    ``fraction = 1`` returns the images unchanged.
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"centre crop fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, box_h, box_w)`` of the centre box of an ``height x width`` image."""
        box_h = max(1, int(round(self.fraction * height)))
        box_w = max(1, int(round(self.fraction * width)))
        return (int(round((height - box_h) / 2.0)), int(round((width - box_w) / 2.0)),
                box_h, box_w)

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 ``[B, C, H, W]`` -> uint8 ``[B, C, H, W]``."""
        check_images(images)
        if self.fraction == 1.0:
            return images
        b, _, h, w = images.shape
        values = self.box(h, w)
        top, left, box_h, box_w = (torch.full((b,), v, dtype=torch.long, device=images.device)
                                   for v in values)
        return resized_crop(images, BoxParams(top, left, box_h, box_w, None, (h, w)))

    def __repr__(self) -> str:
        return f"CenterCrop(fraction={self.fraction})"
