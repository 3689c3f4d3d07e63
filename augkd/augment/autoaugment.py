"""AutoAugment, RandAugment and TrivialAugment on uint8 batches, with per-image random choices.

torchvision's transforms draw one set of choices per call, so a batch gets the same ops on every
image. Here every image draws its own (sub-policy, firing decisions, signs, magnitude bins), and
the ops of :mod:`augkd.augment.ops` apply them in one vectorized pass per op slot; the maths of
each op is torchvision's. ``per_batch=True`` draws once and shares the draw with the whole batch,
which is exactly what torchvision's transform (and the DA-in-KD paper's code) does to a batch.

Every augmentation here is a chain of ``K`` op slots (AutoAugment: the 2 ops of a sub-policy;
RandAugment: ``num_ops``; TrivialAugment: 1). Slot ``k`` of image ``i`` applies op
``params.op[i, k]`` at magnitude bin ``params.level[i, k]``, negated when ``params.negate`` is set
and the op is signed, and only when ``params.fire[i, k]``; the slots run in order.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput, check_images
from augkd.augment.ops import OPS_BY_NAME, SIGNED_OPS, Op, affine_matrices, apply_ops
from augkd.augment.registry import register_augmentation

# (op name, probability, magnitude bin or None) pairs of the learned AutoAugment policies
# (Cubuk et al. 2019), as torchvision's AutoAugmentPolicy defines them.
_PolicyOp = tuple[str, float, int | None]
POLICIES: dict[str, tuple[tuple[_PolicyOp, _PolicyOp], ...]] = {
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}

#: The ops RandAugment and TrivialAugment draw from, in torchvision's order (no Invert).
WIDE_OPS: tuple[Op, ...] = (
    Op.IDENTITY,
    Op.SHEAR_X,
    Op.SHEAR_Y,
    Op.TRANSLATE_X,
    Op.TRANSLATE_Y,
    Op.ROTATE,
    Op.BRIGHTNESS,
    Op.COLOR,
    Op.CONTRAST,
    Op.SHARPNESS,
    Op.POSTERIZE,
    Op.SOLARIZE,
    Op.AUTOCONTRAST,
    Op.EQUALIZE,
)

_AUTOAUGMENT_BINS = 10


def magnitude_table(num_bins: int, height: int, width: int, *, wide: bool = False) -> Tensor:
    """The unsigned magnitude of every op at every bin, as torchvision's augmentation spaces.

    ``wide=False`` is the space of AutoAugment and RandAugment (translations scale with the
    image: ``150 / 331`` of its width or height); ``wide=True`` is TrivialAugmentWide's
    (translations of up to 32 pixels whatever the image size).

    Returns:
        float32 ``[len(Op), num_bins]`` on the CPU; row ``op`` holds its magnitudes (posterize:
        bits; solarize: threshold; ops without a magnitude: 0).
    """
    table = torch.zeros(len(Op), num_bins)
    top = 0.99 if wide else 0.9
    for op in (Op.BRIGHTNESS, Op.COLOR, Op.CONTRAST, Op.SHARPNESS):
        table[op] = torch.linspace(0.0, top, num_bins)
    table[Op.SHEAR_X] = table[Op.SHEAR_Y] = torch.linspace(0.0, 0.99 if wide else 0.3, num_bins)
    table[Op.TRANSLATE_X] = torch.linspace(0.0, 32.0 if wide else 150.0 / 331.0 * width, num_bins)
    table[Op.TRANSLATE_Y] = torch.linspace(0.0, 32.0 if wide else 150.0 / 331.0 * height, num_bins)
    table[Op.ROTATE] = torch.linspace(0.0, 135.0 if wide else 30.0, num_bins)
    bit_steps = 6 if wide else 4
    table[Op.POSTERIZE] = 8 - (torch.arange(num_bins) / ((num_bins - 1) / bit_steps)).round().int()
    table[Op.SOLARIZE] = torch.linspace(255.0, 0.0, num_bins)
    return table


@dataclasses.dataclass(frozen=True)
class OpChainParams:
    """The random choices of an op-chain augmentation for a batch (``K`` op slots per image).

    Attributes:
        op: int64 ``[B, K]``, :class:`~augkd.augment.ops.Op` values.
        level: int64 ``[B, K]``, magnitude bins into the augmentation's magnitude table.
        negate: bool ``[B, K]``; a signed op (shear, translate, rotate, brightness, color,
            contrast, sharpness) uses the negated magnitude where set.
        fire: bool ``[B, K]``; a slot that does not fire leaves the image unchanged.
        sub_policy: int64 ``[B]``, the AutoAugment sub-policy of each image (None for others).
    """

    op: Tensor
    level: Tensor
    negate: Tensor
    fire: Tensor
    sub_policy: Tensor | None = None


@dataclasses.dataclass(frozen=True)
class _Tables:
    """Per image size and device: magnitude float32 ``[len(Op), bins]``, signed bool
    ``[len(Op)]`` and the affine matrices float32 ``[len(Op), bins, 2, 2, 3]`` of every
    (op, bin, sign) (sign index 1 = negated)."""

    magnitude: Tensor
    signed: Tensor
    theta: Tensor


class _OpChain(Augmentation):
    """Shared apply() of the three augmentations: ``K`` slots of per-image ops, in order."""

    wide: ClassVar[bool] = False

    def __init__(self, *, num_bins: int, per_batch: bool) -> None:
        super().__init__(per_batch=per_batch)
        self._num_bins = num_bins
        self._tables: dict[tuple[int, int, torch.device], _Tables] = {}
        self._wide_ops: dict[torch.device, Tensor] = {}

    def _slot_ops(self, slot: int) -> frozenset[Op]:
        """The ops that can occur in ``slot`` (lets apply_ops skip the others)."""
        return frozenset(WIDE_OPS)

    def _tables_for(self, height: int, width: int, device: torch.device) -> _Tables:
        """The magnitude tables for ``height`` x ``width`` images on ``device`` (cached)."""
        key = (height, width, device)
        tables = self._tables.get(key)
        if tables is None:
            magnitude = magnitude_table(self._num_bins, height, width, wide=self.wide)
            signed = torch.tensor([op in SIGNED_OPS for op in Op])
            # every (op, bin, sign) affine matrix, computed once on the CPU
            op, level, negate = torch.meshgrid(
                torch.arange(len(Op)),
                torch.arange(self._num_bins),
                torch.tensor([1, -1]),
                indexing="ij",
            )
            theta = affine_matrices(
                op.flatten(), (magnitude[op, level] * negate).flatten(), height, width
            )
            theta = theta.view(len(Op), self._num_bins, 2, 2, 3)
            tables = _Tables(magnitude.to(device), signed.to(device), theta.to(device))
            self._tables[key] = tables
        return tables

    def _wide_ops_on(self, device: torch.device) -> Tensor:
        """:data:`WIDE_OPS` as int64 ``[14]`` on ``device`` (cached)."""
        ops = self._wide_ops.get(device)
        if ops is None:
            ops = torch.tensor([int(op) for op in WIDE_OPS], device=device)
            self._wide_ops[device] = ops
        return ops

    def _expand(self, params: OpChainParams, batch: int) -> OpChainParams:
        """Share a draw of batch 1 with the whole batch (``per_batch``)."""
        if not self.per_batch:
            return params
        return OpChainParams(
            op=params.op.expand(batch, -1),
            level=params.level.expand(batch, -1),
            negate=params.negate.expand(batch, -1),
            fire=params.fire.expand(batch, -1),
            sub_policy=None if params.sub_policy is None else params.sub_policy.expand(batch),
        )

    def apply(self, images: Tensor, params: OpChainParams) -> AugmentOutput:
        """Run the op slots of ``params`` on uint8 ``images`` ``[B, C, H, W]`` (C = 1 or 3)."""
        check_images(images)
        if images.shape[1] not in (1, 3):
            raise ValueError(
                f"{self.name} needs 1 or 3 channels, got images of shape {tuple(images.shape)}"
            )
        _, _, height, width = images.shape
        tables = self._tables_for(height, width, images.device)
        magnitude = tables.magnitude[params.op, params.level]
        negate = params.negate & tables.signed[params.op]
        magnitude = torch.where(negate, -magnitude, magnitude)
        theta = tables.theta[params.op, params.level, negate.long()]
        op = torch.where(params.fire, params.op, Op.IDENTITY)
        out = images
        for slot in range(op.shape[1]):
            out = apply_ops(
                out, op[:, slot], magnitude[:, slot], self._slot_ops(slot), theta[:, slot]
            )
        return AugmentOutput(images=out)


#: Bounds of RandAugment's ops per image and of the magnitude bins: far above any published
#: setting (2 ops, 31 bins), far below what would exhaust memory in the first batch.
MAX_OPS = 16
MAX_BINS = 1024


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in [low, high], else raise a ValueError naming it."""
    allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


@register_augmentation("autoaugment")
class AutoAugment(_OpChain):
    """AutoAugment (Cubuk et al. 2019) with torchvision's policies and magnitudes.

    Each image draws a sub-policy uniformly, each of its 2 ops fires with the op's probability,
    and each signed op's magnitude is negated with probability 0.5 (magnitudes: 10 bins,
    translations scaled to the image size). ``per_batch=True`` draws once for the batch.

    Args:
        policy: ``cifar10``, ``imagenet`` (used for 64-px data) or ``svhn``.
        per_batch: share one draw across the batch (the paper's code, torchvision's behaviour).
    """

    def __init__(self, *, policy: str = "cifar10", per_batch: bool = False) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
        super().__init__(num_bins=_AUTOAUGMENT_BINS, per_batch=per_batch)
        self.policy = policy
        sub_policies = POLICIES[policy]
        self._policy_op = torch.tensor([[OPS_BY_NAME[o[0]] for o in sp] for sp in sub_policies])
        self._policy_prob = torch.tensor([[o[1] for o in sp] for sp in sub_policies])
        self._policy_level = torch.tensor([[o[2] or 0 for o in sp] for sp in sub_policies])
        self._slot_sets = tuple(
            frozenset(OPS_BY_NAME[sp[slot][0]] for sp in sub_policies) for slot in range(2)
        )
        self._device_policy: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    @property
    def num_sub_policies(self) -> int:
        """The number of sub-policies (25 for each policy)."""
        return len(POLICIES[self.policy])

    def _slot_ops(self, slot: int) -> frozenset[Op]:
        return self._slot_sets[slot]

    def _policy_on(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        tables = self._device_policy.get(device)
        if tables is None:
            tables = tuple(
                t.to(device) for t in (self._policy_op, self._policy_prob, self._policy_level)
            )
            self._device_policy[device] = tables
        return tables

    def params_for(self, sub_policy: Tensor, fire: Tensor, negate: Tensor) -> OpChainParams:
        """The parameters of given choices (to force them in tests or replay them).

        Args:
            sub_policy: int64 ``[B]``, sub-policy index of each image in ``[0, 25)``.
            fire: bool ``[B, 2]``, whether each op of the sub-policy fires.
            negate: bool ``[B, 2]``, whether each (signed) op's magnitude is negated.
        """
        policy_op, _, policy_level = self._policy_on(sub_policy.device)
        return OpChainParams(
            op=policy_op[sub_policy],
            level=policy_level[sub_policy],
            negate=negate,
            fire=fire,
            sub_policy=sub_policy,
        )

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> OpChainParams:
        """Draw sub-policies, firing decisions and signs: tensors of batch ``shape[0]``."""
        n = 1 if self.per_batch else shape[0]
        _, policy_prob, _ = self._policy_on(device)
        sub_policy = torch.randint(self.num_sub_policies, (n,), device=device, generator=generator)
        fire = torch.rand((n, 2), device=device, generator=generator) <= policy_prob[sub_policy]
        negate = torch.randint(2, (n, 2), device=device, generator=generator) == 0
        return self._expand(self.params_for(sub_policy, fire, negate), shape[0])


@register_augmentation("randaugment")
class RandAugment(_OpChain):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` uniform ops at one fixed magnitude bin.

    Each image draws its own ops (uniform over :data:`WIDE_OPS`, with replacement) and signs
    (p = 0.5 per signed op). Magnitudes are torchvision's (``num_magnitude_bins`` bins, translations
    scaled to the image size).

    Args:
        num_ops: ops applied in sequence, >= 1.
        magnitude: the magnitude bin, in ``[0, num_magnitude_bins - 1]``.
        num_magnitude_bins: number of magnitude bins, >= 2.
        per_batch: share one draw across the batch (torchvision's behaviour).
    """

    def __init__(
        self,
        *,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        per_batch: bool = False,
    ) -> None:
        num_ops = _check_int("num_ops", num_ops, 1, MAX_OPS)
        num_magnitude_bins = _check_int("num_magnitude_bins", num_magnitude_bins, 2, MAX_BINS)
        magnitude = _check_int("magnitude", magnitude, 0, num_magnitude_bins - 1)
        super().__init__(num_bins=num_magnitude_bins, per_batch=per_batch)
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.num_magnitude_bins = num_magnitude_bins

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> OpChainParams:
        """Draw ``num_ops`` ops and signs per image: tensors of batch ``shape[0]``."""
        n = 1 if self.per_batch else shape[0]
        size = (n, self.num_ops)
        choice = torch.randint(len(WIDE_OPS), size, device=device, generator=generator)
        negate = torch.randint(2, size, device=device, generator=generator) == 1
        params = OpChainParams(
            op=self._wide_ops_on(device)[choice],
            level=torch.full(size, self.magnitude, dtype=torch.int64, device=device),
            negate=negate,
            fire=torch.ones(size, dtype=torch.bool, device=device),
        )
        return self._expand(params, shape[0])


@register_augmentation("trivialaugment")
class TrivialAugment(_OpChain):
    """TrivialAugment (Mueller & Hutter 2021), torchvision's TrivialAugmentWide magnitudes.

    Each image draws one op uniformly over :data:`WIDE_OPS`, a magnitude bin uniformly over
    ``num_magnitude_bins`` and a sign (p = 0.5 for signed ops).

    Args:
        num_magnitude_bins: number of magnitude bins, >= 2.
        per_batch: share one draw across the batch (torchvision's behaviour).
    """

    wide = True

    def __init__(self, *, num_magnitude_bins: int = 31, per_batch: bool = False) -> None:
        num_magnitude_bins = _check_int("num_magnitude_bins", num_magnitude_bins, 2, MAX_BINS)
        super().__init__(num_bins=num_magnitude_bins, per_batch=per_batch)
        self.num_magnitude_bins = num_magnitude_bins

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> OpChainParams:
        """Draw one op, bin and sign per image: tensors of batch ``shape[0]``."""
        n = 1 if self.per_batch else shape[0]
        size = (n, 1)
        choice = torch.randint(len(WIDE_OPS), size, device=device, generator=generator)
        level = torch.randint(self._num_bins, size, device=device, generator=generator)
        negate = torch.randint(2, size, device=device, generator=generator) == 1
        params = OpChainParams(
            op=self._wide_ops_on(device)[choice],
            level=level,
            negate=negate,
            fire=torch.ones(size, dtype=torch.bool, device=device),
        )
        return self._expand(params, shape[0])
