"""Batched GPU data augmentations of augkd, found by spec string.

Every DA takes uint8 images ``[B, C, H, W]`` on any device and returns an
:class:`AugmentOutput`; random parameters are drawn per image (or once per batch with
``per_batch=true``, as the paper's code does) from an optional ``torch.Generator``::

    from augkd.augment import create, ViewPipeline
    aug = create("cutmix(beta=1.0)")
    out = aug(images, generator=g)          # out.images uint8, out.mix.partner / out.mix.lam
    views = ViewPipeline.for_dataset(mean, std, "cutout")(images, g)
    pick = create("pick(autoaugment, by=teacher)")  # keep the best-scored half of 2 draws

Importing this package registers every DA (the imports below have that side effect).
"""

from augkd.augment import autoaugment  # noqa: F401  (registers autoaugment & co.)
from augkd.augment.base import Augmentation, AugmentOutput, MixRecord
from augkd.augment.erase import Cutout, CutoutParams
from augkd.augment.geometric import (
    Crop,
    CropFlip,
    CropFlipParams,
    CropParams,
    Flip,
    FlipParams,
    Identity,
)
from augkd.augment.mixing import CutMix, CutMixParams, Mixup, MixupParams
from augkd.augment.pick import (
    CutMixPick,
    Pick,
    PickParams,
    Scorer,
    entropy_scorer,
    kl_scorer,
    make_scorer,
)
from augkd.augment.pipeline import BASE_SPEC, Normalize, ViewPipeline, Views
from augkd.augment.registry import AUGMENTATIONS, register_augmentation
from augkd.augment.resized_crop import BoxParams, CenterCrop, ResizedCrop, ResizedCropFlip
from augkd.augment.spec import ALIASES, PAPER_DAS, create, list_augmentations, parse_spec, spec_of

__all__ = [
    "ALIASES",
    "AUGMENTATIONS",
    "BASE_SPEC",
    "PAPER_DAS",
    "AugmentOutput",
    "Augmentation",
    "BoxParams",
    "CenterCrop",
    "Crop",
    "CropFlip",
    "CropFlipParams",
    "CropParams",
    "CutMix",
    "CutMixParams",
    "CutMixPick",
    "Cutout",
    "CutoutParams",
    "Flip",
    "FlipParams",
    "Identity",
    "MixRecord",
    "Mixup",
    "MixupParams",
    "Normalize",
    "Pick",
    "PickParams",
    "ResizedCrop",
    "ResizedCropFlip",
    "Scorer",
    "ViewPipeline",
    "Views",
    "create",
    "entropy_scorer",
    "kl_scorer",
    "list_augmentations",
    "make_scorer",
    "parse_spec",
    "register_augmentation",
    "spec_of",
]
