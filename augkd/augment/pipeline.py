"""From a uint8 batch to the two normalized views the trainer and the T. stddev metric consume.

::

    images (uint8) -> base DA (crop+flip) -> x  -> normalize -> Views.original
                                          \\-> extra DA -> x~ -> normalize -> Views.augmented

The extra DA works on the base-augmented batch and never writes into it (every DA is
out-of-place), so x~ is an augmented copy of x and x itself stays as it is (docs/protocol.md §1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from augkd.augment.base import Augmentation, MixRecord, check_images
from augkd.augment.pick import Scorer
from augkd.augment.spec import create

#: The base DA of the CIFAR recipe, drawn per sample: pad H // 8, random crop, flip p = 0.5.
BASE_SPEC = "crop+flip"


class Normalize:
    """uint8 ``[B, C, H, W]`` -> ``(x / 255 - mean) / std`` as float.

    Args:
        mean, std: per-channel statistics in ``[0, 1]`` units, length C.
        dtype: output dtype (the arithmetic runs in float32 and is cast at the end).
        memory_format: output layout, e.g. ``torch.channels_last``; by default the input's.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.preserve_format,
    ) -> None:
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std need one value per channel, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {std}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.dtype = dtype
        self.memory_format = memory_format
        # x * scale - shift == (x / 255 - mean) / std; kept per device to avoid re-uploads.
        self._constants: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _scale_shift(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._constants:
            mean = torch.tensor(self.mean, dtype=torch.float64)
            std = torch.tensor(self.std, dtype=torch.float64)
            scale = (1.0 / (255.0 * std)).float().view(1, -1, 1, 1).to(device)
            shift = (mean / std).float().view(1, -1, 1, 1).to(device)
            self._constants[device] = (scale, shift)
        return self._constants[device]

    def __call__(self, images: Tensor, erased: Tensor | None = None) -> Tensor:
        """Normalize ``images`` (uint8 ``[B, C, H, W]``).

        Args:
            images: the batch to normalize.
            erased: optional bool ``[B, 1, H, W]`` (or ``[B, C, H, W]``); those pixels come out
                exactly 0 (the mean colour), as after the paper's Cutout.

        Returns:
            ``[B, C, H, W]`` in ``self.dtype``, on the images' device.
        """
        check_images(images)
        if images.shape[1] != len(self.mean):
            raise ValueError(
                f"Normalize has {len(self.mean)} channels, images have {images.shape[1]}"
            )
        scale, shift = self._scale_shift(images.device)
        out = images.to(torch.float32, memory_format=self.memory_format)
        out = out.mul_(scale).sub_(shift)
        if erased is not None:
            out = out.masked_fill_(erased, 0.0)
        return out if self.dtype == torch.float32 else out.to(self.dtype)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, dtype={self.dtype})"


@dataclasses.dataclass(frozen=True)
class Views:
    """The normalized views of one batch.

    Attributes:
        original: x, the normalized base-augmented batch, float ``[B, C, H, W]``.
        augmented: x~, the normalized extra-DA view of x, float ``[B, C, H, W]``; None when
            the pipeline has no extra DA.
        mix: what the extra DA mixed (mixing DAs), else None.
    """

    original: Tensor
    augmented: Tensor | None
    mix: MixRecord | None = None


class ViewPipeline:
    """Base DA, extra DA and normalization: the block the trainer and T. stddev share.

    Args:
        base: the base DA applied to every batch (None: images used as they are, e.g. for
            evaluation); the recipe's is ``create(BASE_SPEC)``.
        extra: the DA under study, producing x~ from x; None for a single view.
        normalize: the dataset's normalization.
    """

    def __init__(
        self, base: Augmentation | None, extra: Augmentation | None, normalize: Normalize
    ) -> None:
        self.base = base
        self.extra = extra
        self.normalize = normalize

    @classmethod
    def for_dataset(
        cls,
        mean: Sequence[float],
        std: Sequence[float],
        extra_spec: str | None,
        *,
        base_spec: str | None = BASE_SPEC,
    ) -> ViewPipeline:
        """Build the pipeline from specs: per-sample ``crop+flip`` base, ``extra_spec`` on top."""
        base = create(base_spec) if base_spec is not None else None
        extra = create(extra_spec) if extra_spec is not None else None
        return cls(base, extra, Normalize(mean, std))

    @property
    def needs_scorer(self) -> bool:
        """True when the extra DA ranks samples with a model (CutMixPick); see ``make_scorer``."""
        return self.extra is not None and self.extra.needs_scorer

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        scorer: Scorer | None = None,
    ) -> Views:
        """Make the views of a uint8 ``[B, C, H, W]`` batch (all draws from ``generator``).

        ``scorer`` (uint8 ``[N, C, H, W]`` -> float ``[N]``) is required when
        :attr:`needs_scorer` and ignored otherwise.
        """
        check_images(images)
        x = self.base(images, generator).images if self.base is not None else images
        original = self.normalize(x)
        if self.extra is None:
            return Views(original=original, augmented=None)
        if self.extra.needs_scorer:
            out = self.extra(x, generator, scorer=scorer)  # type: ignore[call-arg]
        else:
            out = self.extra(x, generator)
        augmented = self.normalize(out.images, out.erased)
        return Views(original=original, augmented=augmented, mix=out.mix)

    def __repr__(self) -> str:
        base = str(self.base) if self.base is not None else None
        extra = str(self.extra) if self.extra is not None else None
        return f"ViewPipeline(base={base}, extra={extra}, normalize={self.normalize})"
