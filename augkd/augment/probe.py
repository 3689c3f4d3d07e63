"""Check a DA once on a real batch before a run or a T. stddev measurement starts.

Two ways a DA spec can be accepted and still be wrong, found only hours later:

- it changes nothing: kornia's ``ColorJitter(saturation=...)`` or ``RandomGrayscale`` on
  1-channel images, ``crop(padding=0)``, albumentations' ``ChannelShuffle`` on one channel,
  any transform at ``p=0``. The student then trains without the DA under study and the run
  ends with exit 0;
- it fails on the data's images (kornia's ``ColorJitter(hue=...)`` on 1-channel images), and
  the error, raised deep inside a training step, does not say which DA.

:func:`probe_augmentation` runs the DA on up to :data:`PROBE_BATCH` training images, a few
times with fixed seeds (a per-batch DA may draw "no change" for one batch), and refuses a DA
that never changes a pixel, unless ``allow_noop`` (then it warns). ``identity`` is a copy by
definition and is not checked; DAs that need a scorer (CutMixPick) always mix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from augkd.augment.base import Augmentation

#: Images of the probe batch.
PROBE_BATCH = 256
#: Draws (seeds 0..N-1) before a DA counts as changing nothing.
PROBE_DRAWS = 16
#: The flag that lets a DA that changes nothing run (with a warning).
ALLOW_FLAG = "--allow-noop-aug"


class NoOpAugmentationError(ValueError):
    """A DA changed no pixel of the probe batch in any draw."""


def probe_augmentation(aug: Augmentation, spec: str, images: Tensor, *,
                       allow_noop: bool = False,
                       warn: Callable[[str], None] | None = None) -> None:
    """Run ``aug`` (built from ``spec``) on ``images`` (uint8 ``[N, C, H, W]``, the first
    :data:`PROBE_BATCH` are used) and check that it works and changes pixels.

    Raises:
        ValueError: the DA failed on the images (the message names the spec, the batch's
            shape and the DA's error).
        NoOpAugmentationError: no pixel changed in :data:`PROBE_DRAWS` draws (and not
            ``allow_noop``); the message names the spec and :data:`ALLOW_FLAG`.
    """
    if getattr(type(aug), "name", None) == "identity" or aug.needs_scorer:
        return
    batch = images[:PROBE_BATCH]
    for seed in range(PROBE_DRAWS):
        generator = torch.Generator(device=batch.device).manual_seed(seed)
        try:
            out = aug(batch, generator).images
        except Exception as err:  # any library's error, named with the DA that raised it
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(f"DA {spec}: fails on a batch of {list(batch.shape)} uint8 images "
                             f"of this dataset: {type(err).__name__}: {first}") from err
        if out.shape != batch.shape or not torch.equal(out, batch):
            return
    message = (f"DA {spec} changed no pixel of {len(batch)} training images of shape "
               f"{list(batch.shape[1:])} in {PROBE_DRAWS} draws (e.g. a colour transform on "
               "1-channel images, p=0, padding=0)")
    if not allow_noop:
        raise NoOpAugmentationError(f"{message}; a run with it would train without the DA under "
                                    f"study. Pass {ALLOW_FLAG} to run it anyway")
    (warn or (lambda text: warnings.warn(text, stacklevel=2)))(f"warning: {message}; running "
                                                               f"it as asked ({ALLOW_FLAG})")
