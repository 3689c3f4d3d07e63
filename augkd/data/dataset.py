"""The :class:`Dataset` record, the dataset registry and :func:`load_dataset`.

A dataset in augkd is four uint8/int64 tensors held whole in memory (and later on the device),
plus what a run needs to normalise and to identify them: per-channel mean and std of the
training split and a checksum that teachers record so a student never pairs with a teacher
trained on other data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from augkd.registry import Registry

DatasetLoader = Callable[..., "Dataset"]

DATASETS: Registry[DatasetLoader] = Registry("dataset")

# Images per chunk when reducing the training split to channel statistics: bounds the float64
# temporary to a few tens of MB whatever the dataset size.
_STATS_CHUNK = 4096


@dataclass(frozen=True)
class Dataset:
    """A whole image-classification dataset held as tensors.

    Attributes:
        name: the registry name it was loaded with (``"cifar10"``, ``"imagefolder"``...).
        train_images: uint8 ``[N, C, H, W]``, pixel values 0..255.
        train_labels: int64 ``[N]``, class indices in ``[0, num_classes)``.
        test_images: uint8 ``[M, C, H, W]``, same C, H, W as the training images.
        test_labels: int64 ``[M]``.
        classes: class names; ``classes[k]`` is the name of label ``k``.
        mean: per-channel mean of the training images on the [0, 1] pixel scale.
        std: per-channel (population) standard deviation of the training images, [0, 1] scale.
        checksum: a stable identity of the data: the sha256 of the source archive, or of the
            decoded arrays for sources that are not one archive file.
        source: where it came from: a path, or ``"sklearn"``.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    checksum: str
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images: torch.Tensor = getattr(self, f"{split}_images")
            labels: torch.Tensor = getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(
                    f"{split}_images must be uint8 [N, C, H, W], got {images.dtype} "
                    f"{list(images.shape)}"
                )
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be int64 [{images.shape[0]}], got {labels.dtype} "
                    f"{list(labels.shape)}"
                )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"train images are {list(self.train_images.shape[1:])} but test images are "
                f"{list(self.test_images.shape[1:])}"
            )
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"mean and std need {self.in_channels} values, one per channel")

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels per image (1 for grayscale, 3 for RGB)."""
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Image height and width in pixels."""
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    @property
    def device(self) -> torch.device:
        """The device holding the tensors."""
        return self.train_images.device

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with the four tensors on ``device`` (no copy for tensors already there)."""
        return dataclasses.replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )

    def summary(self) -> str:
        """A one-line description for command-line tools and logs."""
        c, (h, w) = self.in_channels, self.image_size
        return (
            f"{self.name}: {len(self.train_labels):,} train / {len(self.test_labels):,} test, "
            f"{self.num_classes} classes, {c}x{h}x{w} uint8, from {self.source} "
            f"(checksum {self.checksum[:12]})"
        )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images on the [0, 1] scale.

    Args:
        images: uint8 ``[N, C, H, W]``.

    Returns:
        ``(mean, std)``, each a tuple of C floats, accumulated in float64.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].to("cpu", torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    if count == 0:
        raise ValueError("cannot compute channel statistics of an empty image set")
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def tensors_checksum(classes: list[str], *tensors: torch.Tensor) -> str:
    """The sha256 (hex) of class names and tensors' dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    digest.update("\n".join(classes).encode())
    for tensor in tensors:
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"|{tensor.dtype}{list(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def make_dataset(
    name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    classes: list[str],
    source: str,
    checksum: str | None = None,
) -> Dataset:
    """Build a :class:`Dataset`, computing mean/std from the training split.

    Without ``checksum``, the checksum is :func:`tensors_checksum` of the four tensors.
    Labels must lie in ``[0, len(classes))``.
    """
    for split, labels in (("train", train_labels), ("test", test_labels)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ValueError(
                f"{name}: {split} labels span {int(labels.min())}..{int(labels.max())} but "
                f"there are {len(classes)} classes"
            )
    if checksum is None:
        checksum = tensors_checksum(classes, train_images, train_labels, test_images, test_labels)
    mean, std = channel_stats(train_images)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=list(classes),
        mean=mean,
        std=std,
        checksum=checksum,
        source=source,
    )


def list_datasets() -> list[str]:
    """The names :func:`load_dataset` accepts, in registration order."""
    return DATASETS.names()


def accepted_options(name: str) -> list[str]:
    """The keyword options the dataset ``name`` accepts (raises for an unknown name)."""
    loader = DATASETS.get(name)
    return [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def load_dataset(name: str, root: str | Path | None = None, **options: object) -> Dataset:
    """Load the dataset registered as ``name``.

    Args:
        name: one of :func:`list_datasets` (``digits``, ``cifar10``, ``cifar100``,
            ``imagefolder``).
        root: where the data lives (a folder, or an archive for ``imagefolder``); ``digits``
            is embedded in scikit-learn and takes none.
        **options: dataset-specific keyword options, e.g. ``download=True`` for CIFAR or
            ``cache_dir=...`` for ``imagefolder``; see :func:`accepted_options`.

    Returns:
        The :class:`Dataset`, on the CPU.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known ones).
        ValueError: an option the dataset does not accept, or data that cannot be read.
        FileNotFoundError: ``root`` (or a file inside it) does not exist.
    """
    loader = DATASETS.get(name)
    accepted = accepted_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for dataset {name!r}; "
            f"accepted: {', '.join(accepted) if accepted else 'none'}"
        )
    root_path = None if root is None else Path(root).expanduser()
    return loader(root_path, **options)
