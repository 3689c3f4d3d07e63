"""Mixing DAs: Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019).

Both mix image ``i`` with a partner ``partner[i]`` from the same batch and report what they did
in a :class:`~augkd.augment.base.MixRecord`. Labels are never mixed in augkd (the KD target of
the augmented view is the teacher's output on it), but the record keeps the DAs testable.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput, MixRecord
from augkd.augment.geometric import like_input_format, per_image
from augkd.augment.registry import register_augmentation
from augkd.grammar import check_param


def sample_beta(
    concentration: float, n: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """``n`` draws of Beta(c, c), float32 ``[n]``, from ``generator``.

    ``torch.distributions.Beta`` takes no generator, so the draw is X / (X + Y) with X, Y ~
    Gamma(c) from ``torch._standard_gamma`` (which does); Beta(1, 1) is drawn as a uniform.
    """
    if concentration == 1.0:
        return torch.rand(n, device=device, generator=generator)
    shape = torch.full((2, n), concentration, device=device, dtype=torch.float32)
    gammas = torch._standard_gamma(shape, generator=generator)
    lam = gammas[0] / (gammas[0] + gammas[1])
    # For tiny c both gammas can underflow to 0 (0/0): Beta(c, c) is then a coin flip at 0 or 1.
    return torch.where(torch.isnan(lam), (gammas[0] >= gammas[1]).float(), lam)


def sample_permutation(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """A uniformly random permutation of ``range(n)``, int64 ``[n]`` (fixed points allowed)."""
    return torch.randperm(n, device=device, generator=generator)


#: Largest Beta concentration accepted by Mixup and CutMix: Beta(c, c) at c = 1e4 is already a
#: point mass at 1/2 within 0.005, and the gamma draws overflow far beyond (c = 1e308 did).
MAX_CONCENTRATION = 1e4

#: Candidate permutations drawn at once by :func:`sample_derangement`. A uniform permutation
#: of n >= 2 items has no fixed point with probability >= 1/2 (n = 2) and about 1/e for
#: larger n, so all 64 candidates fail with probability below 0.64 ** 64 < 1e-12.
DERANGEMENT_CANDIDATES = 64


def sample_derangement(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """A permutation of ``range(n)`` without fixed points, uniform over all such, int64 ``[n]``.

    Rejection sampling, vectorized so that nothing waits for the device: draw
    :data:`DERANGEMENT_CANDIDATES` independent uniform permutations (argsort of uniform noise)
    and keep the first without a fixed point. The first success of independent uniform draws
    is uniform over the derangements. In the (< 1e-12) event that every candidate has a fixed
    point, the first candidate is rotated so it has none: a negligible bias, no host sync.
    With ``n == 1`` no derangement exists and the single image is its own partner.
    """
    if n == 1:
        return torch.zeros(1, dtype=torch.long, device=device)
    noise = torch.rand(DERANGEMENT_CANDIDATES, n, device=device, generator=generator)
    candidates = noise.argsort(dim=1)
    ok = (candidates != torch.arange(n, device=device)).all(dim=1)
    first = ok.int().argmax()  # index of the first derangement (0 when there is none)
    fallback = candidates[0][(torch.argsort(candidates[0]) + 1) % n]  # a cyclic shift in order
    return torch.where(ok.any(), candidates[first], fallback)


@dataclasses.dataclass(frozen=True)
class MixupParams:
    """Parameters of :class:`Mixup`: ``lam`` float32 ``[B]`` and ``partner`` int64 ``[B]``."""

    lam: Tensor
    partner: Tensor


@register_augmentation("mixup")
class Mixup(Augmentation):
    """``x~_i = round(lam_i x_i + (1 - lam_i) x_partner[i])`` with ``lam_i ~ Beta(alpha, alpha)``.

    The partner is a uniformly random permutation of the batch (as in the paper's code).

    Args:
        alpha: Beta concentration, > 0.
        per_batch: one lambda for the whole batch (the partners stay per image).
    """

    def __init__(self, *, alpha: float = 1.0, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        check_param("mixup", "alpha", alpha, 0 < alpha <= MAX_CONCENTRATION,
                    f"a number in (0, {MAX_CONCENTRATION:g}]")
        self.alpha = float(alpha)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> MixupParams:
        """Draw the lambdas (float32 ``[B]``) and the partner permutation (int64 ``[B]``)."""
        b = shape[0]
        lam = per_image(sample_beta(self.alpha, 1 if self.per_batch else b, device, generator), b)
        return MixupParams(lam=lam, partner=sample_permutation(b, device, generator))

    def apply(self, images: Tensor, params: MixupParams) -> AugmentOutput:
        """Blend the images (uint8 ``[B, C, H, W]``), rounding back to uint8."""
        lam = params.lam[:, None, None, None]
        own = images.float()
        mixed = torch.lerp(own[params.partner], own, lam)  # lam * own + (1 - lam) * partner
        out = mixed.round_().clamp_(0, 255).to(torch.uint8)
        return AugmentOutput(
            images=like_input_format(out, images),
            mix=MixRecord(partner=params.partner, lam=params.lam.float()),
        )


@dataclasses.dataclass(frozen=True)
class CutMixParams:
    """Parameters of :class:`CutMix`: per-image pasted boxes and partners.

    Attributes:
        top, bottom, left, right: int64 ``[B]``, the box ``[top, bottom) x [left, right)``
            already clipped to the image.
        partner: int64 ``[B]``, the image the box is taken from (never the image itself).
    """

    top: Tensor
    bottom: Tensor
    left: Tensor
    right: Tensor
    partner: Tensor

    def mask(self, height: int, width: int) -> Tensor:
        """Bool ``[B, 1, H, W]``, True inside each image's box."""
        rows = torch.arange(height, device=self.top.device)
        cols = torch.arange(width, device=self.top.device)
        in_rows = (rows >= self.top[:, None]) & (rows < self.bottom[:, None])
        in_cols = (cols >= self.left[:, None]) & (cols < self.right[:, None])
        return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]

    def kept_fraction(self, height: int, width: int) -> Tensor:
        """Float32 ``[B]``: 1 - pasted area / (H W), the exact lambda of each output image."""
        area = (self.bottom - self.top) * (self.right - self.left)
        return 1.0 - area.float() / float(height * width)


def cutmix_pixels(images: Tensor, params: CutMixParams) -> Tensor:
    """Paste each partner's box into each image: uint8 ``[B, C, H, W]`` in and out."""
    mask = params.mask(images.shape[-2], images.shape[-1])
    return like_input_format(torch.where(mask, images[params.partner], images), images)


@register_augmentation("cutmix")
class CutMix(Augmentation):
    """Paste a box of a partner image; ``lam ~ Beta(beta, beta)`` sets the box size.

    As the reference code (docs/protocol.md §2): ``cut = int(sqrt(1 - lam) * W)`` (and H), the
    centre ``(cy, cx)`` uniform over the pixels, the box rows ``[cy - cut // 2, cy + cut // 2)``
    and columns likewise, clipped to the image, so an odd side loses a pixel and a side of 1
    pastes nothing. The reported lambda is the exact kept fraction. The partner permutation is
    uniform over the permutations without fixed points (see :func:`sample_derangement`).

    Args:
        beta: Beta concentration, > 0.
        per_batch: one lambda and one box for the whole batch (the partners stay per image).
    """

    def __init__(self, *, beta: float = 1.0, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        check_param("cutmix", "beta", beta, 0 < beta <= MAX_CONCENTRATION,
                    f"a number in (0, {MAX_CONCENTRATION:g}]")
        self.beta = float(beta)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> CutMixParams:
        """Draw lambdas, box centres and the partner derangement (all ``[B]``)."""
        b, _, h, w = shape
        n = 1 if self.per_batch else b
        ratio = torch.sqrt(1.0 - sample_beta(self.beta, n, device, generator))
        cut_h = (ratio * h).floor().long()
        cut_w = (ratio * w).floor().long()
        cy = torch.randint(0, h, (n,), device=device, generator=generator)
        cx = torch.randint(0, w, (n,), device=device, generator=generator)
        top, bottom = (cy - cut_h // 2).clamp(0, h), (cy + cut_h // 2).clamp(0, h)
        left, right = (cx - cut_w // 2).clamp(0, w), (cx + cut_w // 2).clamp(0, w)
        top, bottom, left, right = (per_image(side, b) for side in (top, bottom, left, right))
        partner = sample_derangement(b, device, generator)
        return CutMixParams(top=top, bottom=bottom, left=left, right=right, partner=partner)

    def apply(self, images: Tensor, params: CutMixParams) -> AugmentOutput:
        """Paste the boxes into the images (uint8 ``[B, C, H, W]``)."""
        h, w = images.shape[-2:]
        record = MixRecord(partner=params.partner, lam=params.kept_fraction(h, w))
        return AugmentOutput(images=cutmix_pixels(images, params), mix=record)
