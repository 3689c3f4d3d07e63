"""Datasets as whole uint8 tensors: ``load_dataset(name, root, **options) -> Dataset``.

Registered names: ``digits`` (scikit-learn, no download), ``cifar10`` and ``cifar100`` (the
python-pickle release), ``imagefolder`` (a directory or archive of ``train/<class>/*`` and
``test/<class>/*`` images, decoded once and cached), ``tinyimagenet`` and ``imagenet`` (their
released layouts, decoded in parallel to a stored resolution into a memory-mapped cache).
"""

from augkd.data import cifar, digits, imagefolder, imagenet  # noqa: F401  (registers the datasets)
from augkd.data.dataset import (
    DATASETS,
    Dataset,
    accepted_options,
    channel_stats,
    list_datasets,
    load_dataset,
    tensors_checksum,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "accepted_options",
    "channel_stats",
    "list_datasets",
    "load_dataset",
    "tensors_checksum",
]
