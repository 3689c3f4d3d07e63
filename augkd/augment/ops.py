"""Batched image operations of AutoAugment / RandAugment / TrivialAugment, one op per image.

Every function takes uint8 images ``[B, C, H, W]`` (C = 1 or 3, any device) and per-image
magnitudes, and returns uint8 images of the same shape. The arithmetic follows torchvision's
tensor kernels (``torchvision.transforms.functional`` as called by ``AutoAugment._apply_op``)
operation by operation, in float32, so that the result of image ``i`` equals the torchvision
kernel applied to image ``i`` alone:

- the geometric ops (shear, translate, rotate) build torchvision's inverse affine matrix per image
  and sample with nearest interpolation and fill 0 through one ``grid_sample``;
- brightness, contrast, posterize, solarize, invert, autocontrast and equalize are per-image,
  per-channel lookup tables of 256 entries, applied with one ``gather``;
- color (saturation) and sharpness are per-pixel blends.

The magnitude convention is the one of ``_apply_op``: blends use the factor ``1 + magnitude``,
shears the shear factor ``magnitude`` (angle ``atan(magnitude)``), translations
``int(magnitude)`` pixels, rotation ``magnitude`` degrees counter-clockwise, posterize
``int(magnitude)`` bits, solarize the threshold ``magnitude``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor


class Op(enum.IntEnum):
    """The ops, numbered; op tensors hold these values (int64)."""

    IDENTITY = 0
    SHEAR_X = 1
    SHEAR_Y = 2
    TRANSLATE_X = 3
    TRANSLATE_Y = 4
    ROTATE = 5
    BRIGHTNESS = 6
    COLOR = 7
    CONTRAST = 8
    SHARPNESS = 9
    POSTERIZE = 10
    SOLARIZE = 11
    AUTOCONTRAST = 12
    EQUALIZE = 13
    INVERT = 14


#: torchvision's op names (as in ``_apply_op``) -> :class:`Op`.
OPS_BY_NAME: dict[str, Op] = {
    "Identity": Op.IDENTITY,
    "ShearX": Op.SHEAR_X,
    "ShearY": Op.SHEAR_Y,
    "TranslateX": Op.TRANSLATE_X,
    "TranslateY": Op.TRANSLATE_Y,
    "Rotate": Op.ROTATE,
    "Brightness": Op.BRIGHTNESS,
    "Color": Op.COLOR,
    "Contrast": Op.CONTRAST,
    "Sharpness": Op.SHARPNESS,
    "Posterize": Op.POSTERIZE,
    "Solarize": Op.SOLARIZE,
    "AutoContrast": Op.AUTOCONTRAST,
    "Equalize": Op.EQUALIZE,
    "Invert": Op.INVERT,
}

#: Ops whose magnitude gets a random sign in the policies.
SIGNED_OPS: frozenset[Op] = frozenset(
    {
        Op.SHEAR_X,
        Op.SHEAR_Y,
        Op.TRANSLATE_X,
        Op.TRANSLATE_Y,
        Op.ROTATE,
        Op.BRIGHTNESS,
        Op.COLOR,
        Op.CONTRAST,
        Op.SHARPNESS,
    }
)

ALL_OPS: frozenset[Op] = frozenset(Op)
_GEOMETRIC = frozenset({Op.SHEAR_X, Op.SHEAR_Y, Op.TRANSLATE_X, Op.TRANSLATE_Y, Op.ROTATE})
_LINEAR_LUT = frozenset({Op.BRIGHTNESS, Op.CONTRAST})
_HISTOGRAM = frozenset({Op.AUTOCONTRAST, Op.EQUALIZE})
_SOLARIZE_LUT = frozenset({Op.SOLARIZE, Op.INVERT})

# Python's math.radians / math.degrees constants, so the float64 matrix maths below rounds as
# torchvision's (which runs in Python floats).
_DEG_TO_RAD = math.pi / 180.0
_RAD_TO_DEG = 180.0 / math.pi
# rgb_to_grayscale weights of torchvision (ITU-R 601-2 luma, as in TensorFlow).
_LUMA = (0.2989, 0.587, 0.114)

_grid_cache: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}
_level_cache: dict[torch.device, tuple[Tensor, Tensor]] = {}


def _column(t: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, 1, 1]``, to broadcast a per-image value over an image batch."""
    return t.view(-1, 1, 1, 1)


def _levels(device: torch.device) -> tuple[Tensor, Tensor]:
    """The 256 intensity levels on ``device``, int64 and float32 ``[256]`` (cached)."""
    levels = _level_cache.get(device)
    if levels is None:
        levels = (torch.arange(256, device=device), torch.arange(256.0, device=device))
        _level_cache[device] = levels
    return levels


def affine_matrices(op: Tensor, magnitude: Tensor, height: int, width: int) -> Tensor:
    """torchvision's inverse affine matrices of the geometric ops, one per image.

    Reproduces ``F.affine`` / ``F.rotate`` as ``_apply_op`` calls them: shears about the top-left
    corner (``center=[0, 0]``) with angle ``atan(magnitude)``, translations by ``int(magnitude)``
    pixels about the image centre, rotation by ``magnitude`` degrees counter-clockwise about the
    centre. The few scalars per image are computed in float64 (torchvision computes them in
    Python floats) and rounded to float32 at the end, as torchvision does.

    Args:
        op: int64 ``[B]``, :class:`Op` values; non-geometric ops get the identity matrix.
        magnitude: float ``[B]``, signed magnitudes.
        height, width: image size in pixels.

    Returns:
        float32 ``[B, 2, 3]``: the matrix mapping centred output coordinates to centred input
        coordinates (torchvision's ``theta`` before its rescaling to the grid's [-1, 1] range).
    """
    m = magnitude.to(torch.float64)
    zero = torch.zeros_like(m)
    is_shear_x = op == Op.SHEAR_X
    is_shear_y = op == Op.SHEAR_Y
    is_shear = is_shear_x | is_shear_y
    # F.rotate hands -angle to the matrix helper; the shears pass degrees(atan(magnitude)).
    rot = torch.where(op == Op.ROTATE, -m, zero) * _DEG_TO_RAD
    shear_deg = torch.atan(m) * _RAD_TO_DEG
    sx = torch.where(is_shear_x, shear_deg, zero) * _DEG_TO_RAD
    sy = torch.where(is_shear_y, shear_deg, zero) * _DEG_TO_RAD
    tx = torch.where(op == Op.TRANSLATE_X, m.trunc(), zero)
    ty = torch.where(op == Op.TRANSLATE_Y, m.trunc(), zero)
    # center=[0, 0] in pixels is the top-left corner; torchvision centres it: (0 - size / 2).
    cx = torch.where(is_shear, zero - 0.5 * width, zero)
    cy = torch.where(is_shear, zero - 0.5 * height, zero)

    # Rotation-shear matrix [[a, b], [c, d]] = R(rot) SHy(sy) SHx(sx) and its inverse
    # [[d, -b], [-c, a]] (determinant 1), then the centre and translation terms.
    cos_sy = torch.cos(sy)
    cos_rot_sy = torch.cos(rot - sy)
    sin_rot_sy = torch.sin(rot - sy)
    tan_sx = torch.tan(sx)
    a = cos_rot_sy / cos_sy
    b = -cos_rot_sy * tan_sx / cos_sy - torch.sin(rot)
    c = sin_rot_sy / cos_sy
    d = -sin_rot_sy * tan_sx / cos_sy + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    theta = torch.stack((m0, m1, m2, m3, m4, m5), dim=-1)
    return theta.to(torch.float32).view(-1, 2, 3)


def _affine_grid_parts(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """torchvision's base grid float32 ``[1, H*W, 3]`` and grid scale ``[2]`` (cached)."""
    key = (height, width, device)
    parts = _grid_cache.get(key)
    if parts is None:
        base = torch.empty(1, height, width, 3)
        base[..., 0] = torch.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, steps=width)
        rows = torch.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5, steps=height)
        base[..., 1] = rows[:, None]
        base[..., 2] = 1.0
        scale = torch.tensor([0.5 * width, 0.5 * height])
        parts = (base.view(1, height * width, 3).to(device), scale.to(device))
        _grid_cache[key] = parts
    return parts


def warp_nearest(images: Tensor, theta: Tensor) -> Tensor:
    """Resample each image through its own affine matrix, nearest neighbour, fill 0.

    Args:
        images: float32 ``[B, C, H, W]``.
        theta: float32 ``[B, 2, 3]`` from :func:`affine_matrices`.

    Returns:
        float32 ``[B, C, H, W]`` holding the sampled pixel values (0 outside the input).
    """
    b, _, h, w = images.shape
    base, scale = _affine_grid_parts(h, w, images.device)
    # Same float32 steps as torchvision's _gen_affine_grid, batched: rescale theta to the
    # normalized [-1, 1] grid, then one batched matmul with the pixel-centre grid.
    rescaled = theta.transpose(1, 2) / scale
    grid = base.expand(b, -1, -1).bmm(rescaled).view(b, h, w, 2)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _grayscale(images: Tensor) -> Tensor:
    """torchvision's ``rgb_to_grayscale`` (truncated to integers) of float32 ``[B, 3, H, W]``."""
    r, g, b = images.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).trunc_().unsqueeze(1)


def _sharpness_reference(images: Tensor) -> Tensor:
    """torchvision's ``_blurred_degenerate_image`` of float32 ``[B, C, H, W]`` (H, W > 2).

    Inside the border each pixel becomes ``round(s / 13)``, ``s`` being its 3x3 neighbourhood
    sum plus 4 times itself (the kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13); the border is
    kept. ``s / 13`` is never within 1/26 of a tie, so torchvision's float convolution rounds
    to the same integer as the exact ``floor((s + 6) / 13)`` computed here with a few adds
    (exact in float32).
    """
    rows = images[..., :-2, :] + images[..., 1:-1, :] + images[..., 2:, :]
    window = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    centre = images[..., 1:-1, 1:-1]
    degenerate = images.clone()
    degenerate[..., 1:-1, 1:-1] = (window + 4 * centre + 6).div_(13).floor_()
    return degenerate


def _histogram(pixels: Tensor) -> Tensor:
    """Histograms of int64 pixel values ``[B, C, N]`` in [0, 255]: int64 ``[B, C, 256]``."""
    b, c, _ = pixels.shape
    ones = torch.ones(1, 1, 1, dtype=torch.int64, device=pixels.device).expand_as(pixels)
    hist = torch.zeros(b, c, 256, dtype=torch.int64, device=pixels.device)
    return hist.scatter_add_(2, pixels, ones)


def _histogram_luts(pixels: Tensor) -> tuple[Tensor, Tensor]:
    """AutoContrast and Equalize lookup tables of int64 pixels ``[B, C, N]``: float32
    ``[B, C, 256]`` each, per image and channel."""
    levels, levels_f = _levels(pixels.device)
    hist = _histogram(pixels)
    present = hist > 0
    lowest = torch.where(present, levels, 256).amin(dim=2, keepdim=True)
    highest = torch.where(present, levels, -1).amax(dim=2, keepdim=True)

    # autocontrast: (v - min) * (255 / (max - min)); torchvision's 255 / t is t.reciprocal() * 255.
    low = lowest.to(torch.float32)
    scale = (highest.to(torch.float32) - low).reciprocal() * 255
    flat = ~torch.isfinite(scale)
    low = torch.where(flat, 0.0, low)
    scale = torch.where(flat, 1.0, scale)
    autocontrast = ((levels_f - low) * scale).clamp_(0.0, 255.0)

    # equalize (PIL's algorithm as torchvision writes it): the step leaves out the pixels of the
    # highest level present; a zero step leaves the channel unchanged.
    step = (pixels.shape[2] - hist.gather(2, highest)) // 255
    cumulative = hist.cumsum(dim=2)
    lut = (cumulative + step // 2) // step.clamp(min=1)
    lut = torch.cat((torch.zeros_like(lut[..., :1]), lut[..., :-1]), dim=2).clamp_(0, 255)
    equalize = torch.where(step == 0, levels, lut).to(torch.float32)
    return autocontrast, equalize


def apply_ops(
    images: Tensor,
    op: Tensor,
    magnitude: Tensor,
    possible: Iterable[Op] = ALL_OPS,
    theta: Tensor | None = None,
) -> Tensor:
    """Apply op ``op[i]`` with magnitude ``magnitude[i]`` to image ``i``, for the whole batch.

    Each op type is computed once over the batch with per-image parameters, in three stages
    that are exact no-ops for the images whose op belongs to another stage: a per-image lookup
    table (the intensity ops), a per-image blend (color, sharpness) and a per-image affine warp
    selected with ``torch.where`` (the geometric ops). ``Op.IDENTITY`` images come back
    unchanged. No host synchronization.

    Args:
        images: uint8 ``[B, C, H, W]``, C = 1 or 3.
        op: int64 ``[B]``, :class:`Op` values.
        magnitude: float32 ``[B]``, signed magnitudes in ``_apply_op``'s convention (see the
            module docstring); ignored by ops without a magnitude.
        possible: the ops that may occur in ``op`` (a static hint that skips the work of the
            others); an image whose op is not listed is returned unchanged.
        theta: float32 ``[B, 2, 3]``, the images' :func:`affine_matrices` if already known
            (e.g. gathered from a table); computed from ``op`` and ``magnitude`` when None.

    Returns:
        uint8 ``[B, C, H, W]``.
    """
    possible = frozenset(possible)
    b, c, h, w = images.shape
    op = op.reshape(b)
    magnitude = magnitude.reshape(b).to(torch.float32)
    x = images.to(torch.float32)
    gray = _grayscale(x) if c == 3 and possible & {Op.COLOR, Op.CONTRAST} else x

    # Stage 1: intensity ops as lookup tables; the other images get the identity table.
    lut_ops = possible - _GEOMETRIC - {Op.IDENTITY, Op.COLOR, Op.SHARPNESS}
    if lut_ops:
        pixels = images.reshape(b, c, h * w).long()
        lut = _lookup_tables(pixels, op, magnitude, gray, lut_ops)
        y = lut.gather(2, pixels).view(b, c, h, w)
    else:
        y = x

    # Stage 2: blends with a per-image partner; weights (1, 0) keep the other images exact.
    # torchvision leaves 1-channel images unchanged in Color, and images of side <= 2 in
    # Sharpness.
    is_color = (op == Op.COLOR) if Op.COLOR in possible and c == 3 else None
    is_sharp = (op == Op.SHARPNESS) if Op.SHARPNESS in possible and h > 2 and w > 2 else None
    if is_color is not None or is_sharp is not None:
        if is_sharp is None:
            partner, is_blend = gray, is_color
        elif is_color is None:
            partner, is_blend = _sharpness_reference(x), is_sharp
        else:
            partner = torch.where(_column(is_color), gray, _sharpness_reference(x))
            is_blend = is_color | is_sharp
        # _blend(img, partner, 1 + m): torchvision's 1 - ratio is exactly -m (float64 maths).
        own_weight = torch.where(is_blend, 1.0 + magnitude, 1.0)
        partner_weight = torch.where(is_blend, -magnitude, 0.0)
        y = (_column(own_weight) * y + _column(partner_weight) * partner).clamp_(0.0, 255.0)

    # Stage 3: geometric ops, one per-image affine matrix and one grid_sample.
    if possible & _GEOMETRIC:
        is_geometric = (op >= Op.SHEAR_X) & (op <= Op.ROTATE)
        if theta is None:
            theta = affine_matrices(op, magnitude, h, w)
        warped = warp_nearest(x, theta)
        y = torch.where(_column(is_geometric), warped, y)
    # Every value lies in [0, 255]; the cast truncates like torchvision's .to(uint8).
    return y.to(torch.uint8)


def _lookup_tables(
    pixels: Tensor, op: Tensor, magnitude: Tensor, gray: Tensor, lut_ops: frozenset[Op]
) -> Tensor:
    """Per-image, per-channel lookup tables float32 ``[B, C, 256]`` of the intensity ops.

    ``pixels`` are the images as int64 ``[B, C, H*W]``, ``gray`` their float32 grayscale
    ``[B, 1, H, W]`` (the images themselves for 1 channel); other images get the identity.
    """
    b, c = pixels.shape[:2]
    levels, levels_f = _levels(pixels.device)
    per_image = op.view(b, 1, 1)
    lut = levels_f.expand(b, c, 256)

    if lut_ops & _LINEAR_LUT:
        # brightness blends with 0, contrast with the mean of the grayscale image.
        offset = torch.zeros_like(magnitude)
        if Op.CONTRAST in lut_ops:
            mean = gray.mean(dim=(1, 2, 3))
            offset = torch.where(op == Op.CONTRAST, -magnitude * mean, offset)
        linear = ((1.0 + magnitude).view(b, 1, 1) * levels_f + offset.view(b, 1, 1)).clamp_(0, 255)
        is_linear = (per_image == Op.BRIGHTNESS) | (per_image == Op.CONTRAST)
        lut = torch.where(is_linear, linear, lut)

    if Op.POSTERIZE in lut_ops:
        dropped_bits = (8 - magnitude.trunc()).clamp(0, 8).to(torch.int64).view(b, 1, 1)
        posterized = ((levels >> dropped_bits) << dropped_bits).to(torch.float32)
        lut = torch.where(per_image == Op.POSTERIZE, posterized, lut)

    if lut_ops & _SOLARIZE_LUT:
        # invert is solarize with threshold 0
        threshold = torch.where(op == Op.INVERT, 0.0, magnitude).view(b, 1, 1)
        solarized = torch.where(levels_f >= threshold, 255.0 - levels_f, levels_f)
        lut = torch.where((per_image == Op.SOLARIZE) | (per_image == Op.INVERT), solarized, lut)

    if lut_ops & _HISTOGRAM:
        autocontrast, equalize = _histogram_luts(pixels)
        lut = torch.where(per_image == Op.AUTOCONTRAST, autocontrast, lut)
        lut = torch.where(per_image == Op.EQUALIZE, equalize, lut)
    return lut


def _single(op: Op, images: Tensor, magnitude: Tensor | float) -> Tensor:
    magnitude = torch.as_tensor(magnitude, dtype=torch.float32, device=images.device)
    magnitude = magnitude.expand(images.shape[0])
    return apply_ops(images, torch.full_like(magnitude, op, dtype=torch.int64), magnitude, {op})


def shear_x(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Shear along x by factor ``magnitude`` (float32 ``[B]`` or a number); uint8 in and out."""
    return _single(Op.SHEAR_X, images, magnitude)


def shear_y(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Shear along y by factor ``magnitude`` (float32 ``[B]`` or a number); uint8 in and out."""
    return _single(Op.SHEAR_Y, images, magnitude)


def translate_x(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Translate right by ``int(magnitude)`` pixels (float32 ``[B]``); uint8 in and out."""
    return _single(Op.TRANSLATE_X, images, magnitude)


def translate_y(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Translate down by ``int(magnitude)`` pixels (float32 ``[B]``); uint8 in and out."""
    return _single(Op.TRANSLATE_Y, images, magnitude)


def rotate(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Rotate counter-clockwise by ``magnitude`` degrees (float32 ``[B]``); uint8 in and out."""
    return _single(Op.ROTATE, images, magnitude)


def brightness(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Brightness with factor ``1 + magnitude`` (float32 ``[B]``); uint8 in and out."""
    return _single(Op.BRIGHTNESS, images, magnitude)


def color(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Saturation with factor ``1 + magnitude`` (identity on 1 channel); uint8 in and out."""
    return _single(Op.COLOR, images, magnitude)


def contrast(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Contrast with factor ``1 + magnitude`` (float32 ``[B]``); uint8 in and out."""
    return _single(Op.CONTRAST, images, magnitude)


def sharpness(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Sharpness with factor ``1 + magnitude`` (float32 ``[B]``); uint8 in and out."""
    return _single(Op.SHARPNESS, images, magnitude)


def posterize(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Keep the ``int(magnitude)`` high bits (0..8, float32 ``[B]``); uint8 in and out."""
    return _single(Op.POSTERIZE, images, magnitude)


def solarize(images: Tensor, magnitude: Tensor | float) -> Tensor:
    """Invert the pixels ``>= magnitude`` (float32 ``[B]``); uint8 in and out."""
    return _single(Op.SOLARIZE, images, magnitude)


def autocontrast(images: Tensor) -> Tensor:
    """Stretch each channel to [0, 255]; uint8 ``[B, C, H, W]`` in and out."""
    return _single(Op.AUTOCONTRAST, images, 0.0)


def equalize(images: Tensor) -> Tensor:
    """Histogram-equalize each channel (torchvision's PIL-like algorithm); uint8 in and out."""
    return _single(Op.EQUALIZE, images, 0.0)


def invert(images: Tensor) -> Tensor:
    """``255 - images``; uint8 ``[B, C, H, W]`` in and out."""
    return _single(Op.INVERT, images, 0.0)
