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
from typing import Any

import torch

from augkd.grammar import parse_spec
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
        options: the load-time transforms applied (``resize``, ``train_subset``,
            ``subset_seed``, and a stored dataset's ``size`` and ``classes``); they are part
            of ``checksum``, so a teacher trained on 16 px images never silently pairs with a
            32 px student.
        base_aug: the spec of the base DA of training batches: ``crop+flip`` (pad H // 8,
            the CIFAR and Tiny ImageNet recipe) or ``resized-crop+flip`` (ImageNet's
            RandomResizedCrop and flip).
        eval_crop: the side of the centre crop evaluation takes, as a fraction of the image
            side, resampled back to the full side (ImageNet: 0.875, i.e. 224 of 256); 1.0
            evaluates the images as stored.
        data_on_device: where a run keeps the images: ``auto`` (on the training device when
            they fit in half its free memory, else in host memory), ``always`` or ``never``
            (batches gathered in host memory and copied, the same batches either way).
        source_checksum: the checksum before the load-time transforms (``resize``,
            ``train_subset``); None when none was applied (then it is ``checksum``). A teacher
            trained on the whole training set is checked against a student's subset with it
            (:func:`transformed_checksum`).
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
    options: dict = dataclasses.field(default_factory=dict)
    base_aug: str = "crop+flip"
    eval_crop: float = 1.0
    data_on_device: str = "auto"
    source_checksum: str | None = None

    def __post_init__(self) -> None:
        if self.data_on_device not in DATA_ON_DEVICE:
            raise ValueError(f"dataset option data_on_device must be one of "
                             f"{', '.join(DATA_ON_DEVICE)}, got {self.data_on_device!r}")
        if (isinstance(self.eval_crop, bool) or not isinstance(self.eval_crop, (int, float))
                or not 0.0 < self.eval_crop <= 1.0):
            raise ValueError(f"dataset option eval_crop must be a fraction in (0, 1], got "
                             f"{self.eval_crop!r}")
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

    def images_on(self, device: torch.device | str) -> bool:
        """Whether a run on ``device`` keeps the images there (else in host memory), by
        :attr:`data_on_device`: ``always``, ``never``, or ``auto``: when train and test images
        take at most half of the device's free memory. Always True for the CPU."""
        device = torch.device(device)
        if device.type == "cpu" or self.data_on_device == "always":
            return True
        if self.data_on_device == "never":
            return False
        size = self.train_images.numel() + self.test_images.numel()  # uint8: one byte each
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return size <= free // 2
        return True

    def summary(self) -> str:
        """A one-line description for command-line tools and logs."""
        c, (h, w) = self.in_channels, self.image_size
        extra = "".join(f", {k}={v}" for k, v in self.options.items())
        if self.base_aug != "crop+flip" or self.eval_crop != 1.0:
            extra += f"; base DA {self.base_aug}, eval crop {self.eval_crop:g}"
        return (
            f"{self.name}: {len(self.train_labels):,} train / {len(self.test_labels):,} test, "
            f"{self.num_classes} classes, {c}x{h}x{w} uint8, from {self.source} "
            f"(checksum {self.checksum[:12]}{extra})"
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
    # _STATS_CHUNK rows up to 32 x 32 RGB (so those sums are what they always were), fewer for
    # larger images: 4096 ImageNet images at 224 px would be a 5 GB float64 temporary
    per_image = max(1, images[0].numel()) if images.shape[0] else 1
    rows = max(1, min(_STATS_CHUNK, _STATS_CHUNK * 3 * 32 * 32 // per_image))
    for start in range(0, images.shape[0], rows):
        chunk = images[start : start + rows].to("cpu", torch.float64) / 255.0
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
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Dataset:
    """Build a :class:`Dataset`, with the normalization ``stats`` given as ``(mean, std)``
    (published constants) or computed from the training split when ``stats`` is None.

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
    mean, std = channel_stats(train_images) if stats is None else stats
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


#: Options :func:`load_dataset` applies to every dataset after its loader ran.
TRANSFORM_OPTIONS = ("resize", "train_subset", "subset_seed")
#: Options of every dataset that say how a run uses the data, not what the data is: they are
#: not part of the checksum (see :class:`Dataset` for each).
USE_OPTIONS = ("base_aug", "eval_crop", "data_on_device")
DATA_ON_DEVICE = ("auto", "always", "never")
#: The base DA and evaluation crop of datasets whose recipe is not CIFAR's.
DEFAULT_USE: dict[str, dict[str, object]] = {
    "imagenet": {"base_aug": "resized-crop+flip", "eval_crop": 0.875},
}


#: ``resize`` bounds: below 4 px the models' two stride-2 stages leave less than a pixel (a
#: teacher at ``resize 1`` trained to chance); above 1024 px a CIFAR-sized set no longer fits
#: in memory (``resize 5000`` asked for 33 GB at once).
MIN_RESIZE, MAX_RESIZE = 4, 1024
#: Largest resized dataset (train + test uint8 bytes) built in memory.
MAX_RESIZED_BYTES = 16 * 2**30


def check_resize(value: object) -> int:
    """``value`` if it is a usable ``resize`` (an int in [MIN_RESIZE, MAX_RESIZE]), else a
    ValueError naming the option, the value and the range."""
    positive_int_option("resize", value)
    if not MIN_RESIZE <= value <= MAX_RESIZE:
        raise ValueError(f"dataset option resize must be in [{MIN_RESIZE}, {MAX_RESIZE}] px, got "
                         f"{value} (smaller images train to chance; larger ones do not fit in "
                         "memory)")
    return value


def positive_int_option(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"dataset option {name} must be a positive integer, got {value!r}")
    return value


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 ``[N, C, H, W]`` to ``[N, C, size, size]`` (uint8).

    Done once at load time, in chunks, so the whole set never sits in memory as float.
    """
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].float()
        chunk = torch.nn.functional.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + _STATS_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices (int64, sorted) of a seeded class-stratified subset of ``n`` of ``labels``.

    Each class gets ``n`` times its share of the set, rounded down, and the images left over
    go one each to the classes with the largest remainders (ties: lower class index), so the
    class proportions of the subset are those of the whole set up to one image per class.
    """
    total = labels.shape[0]
    if n > total:
        raise ValueError(f"train_subset={n} is larger than the training split ({total:,} images)")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    take = exact.floor().long()
    remainder = exact - take
    order = sorted(range(len(classes)), key=lambda k: (-float(remainder[k]), k))
    for k in order[: n - int(take.sum())]:
        take[k] += 1
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(chosen).sort().values


def apply_transforms(
    data: Dataset, resize: int | None = None, train_subset: int | None = None, subset_seed: int = 0
) -> Dataset:
    """``data`` with its images resized to ``resize`` px and its training split cut to a
    class-stratified ``train_subset`` (both optional), mean/std recomputed from the new
    training split unless they are published constants, and a checksum that records both."""
    options: dict = {}
    train_images, train_labels = data.train_images, data.train_labels
    test_images = data.test_images
    if train_subset is not None:
        positive_int_option("train_subset", train_subset)
        if isinstance(subset_seed, bool) or not isinstance(subset_seed, int) or subset_seed < 0:
            raise ValueError(f"dataset option subset_seed must be an integer >= 0, "
                             f"got {subset_seed!r}")
        keep = stratified_subset(train_labels, train_subset, subset_seed)
        train_images, train_labels = train_images[keep], train_labels[keep]
        options.update(train_subset=train_subset, subset_seed=subset_seed)
    if resize is not None:
        check_resize(resize)
        n = len(data.train_images) + len(data.test_images)
        size = n * data.train_images.shape[1] * resize * resize
        if size > MAX_RESIZED_BYTES:
            raise ValueError(f"dataset option resize={resize} would make {n} images of "
                             f"{resize} x {resize} px: {size / 2**30:.1f} GiB, above the "
                             f"{MAX_RESIZED_BYTES / 2**30:.0f} GiB augkd holds in memory")
        if (resize, resize) != data.image_size:
            train_images = resize_images(train_images, resize)
            test_images = resize_images(test_images, resize)
        options["resize"] = resize
    if not options:
        return data
    published = data.name in PUBLISHED_STATS
    mean, std = (data.mean, data.std) if published else channel_stats(train_images)
    return dataclasses.replace(
        data, train_images=train_images, train_labels=train_labels, test_images=test_images,
        mean=mean, std=std, checksum=transformed_checksum(data.checksum, options),
        options={**data.options, **options}, source_checksum=data.checksum,
    )


def transformed_checksum(source: str, transforms: dict[str, Any]) -> str:
    """The checksum of a dataset whose checksum was ``source`` before the load-time
    ``transforms`` (``resize``, ``train_subset``, ``subset_seed``); ``source`` without any."""
    if not transforms:
        return source
    return hashlib.sha256(f"{source}|{sorted(transforms.items())}".encode()).hexdigest()


#: Published normalization constants ([0, 1] scale), used instead of the training split's
#: statistics for these datasets (docs/protocol.md §1 and the CIFAR-10 recipe).
PUBLISHED_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


def split_dataset_spec(spec: str, options: dict[str, object] | None = None
                       ) -> tuple[str, dict[str, object]]:
    """``imagefolder(size=64, train_subset=5000)`` -> ``("imagefolder", {"size": 64, ...})``,
    merged with ``options``: a dataset is named in the spec grammar of every family.

    Raises:
        ValueError: a malformed spec, or an option given in the spec and in ``options``.
    """
    name, given = parse_spec(spec, kind="dataset")
    options = dict(options or {})
    twice = sorted(set(given) & set(options))
    if twice:
        raise ValueError(f"dataset {name}: option {twice[0]!r} given in the spec {spec!r} and "
                         "again as an option")
    return name, {**given, **options}


def load_dataset(name: str, root: str | Path | None = None, **options: object) -> Dataset:
    """Load the dataset registered as ``name``.

    Args:
        name: one of :func:`list_datasets` (``digits``, ``cifar10``, ``cifar100``,
            ``imagefolder``, ``tinyimagenet``, ``imagenet``), or a spec of one with its
            options, ``imagefolder(size=64, train_subset=5000)``.
        root: where the data lives (a folder, or an archive for ``imagefolder``); ``digits``
            is embedded in scikit-learn and takes none.
        **options: dataset-specific keyword options, e.g. ``download=True`` for CIFAR or
            ``cache_dir=...`` for ``imagefolder`` (see :func:`accepted_options`), and for
            every dataset ``resize=PX`` (antialiased, once at load), ``train_subset=N`` (a
            seeded class-stratified subset of the training split), ``subset_seed=S``, and
            ``base_aug``, ``eval_crop``, ``data_on_device`` (see :class:`Dataset`).

    Returns:
        The :class:`Dataset`, on the CPU.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known ones).
        ValueError: an option the dataset does not accept, or data that cannot be read.
        FileNotFoundError: ``root`` (or a file inside it) does not exist.
    """
    if isinstance(name, str) and "(" in name:
        name, options = split_dataset_spec(name, options)
    loader = DATASETS.get(name)
    accepted = accepted_options(name) + list(TRANSFORM_OPTIONS) + list(USE_OPTIONS)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for dataset {name!r}; "
            f"accepted: {', '.join(accepted)}"
        )
    transforms = {k: options.pop(k) for k in TRANSFORM_OPTIONS if k in options}
    use = {**DEFAULT_USE.get(name, {}),
           **{k: options.pop(k) for k in USE_OPTIONS if k in options}}
    if "base_aug" in use:  # a bad spec fails before any data is read
        from augkd.augment import create  # augment does not import data: no cycle

        create(str(use["base_aug"]))
    for key in ("resize", "train_subset"):  # bad values fail before any data is read
        if transforms.get(key) is not None:
            positive_int_option(key, transforms[key])
    if transforms.get("resize") is not None:
        check_resize(transforms["resize"])
    root_path = None if root is None else Path(root).expanduser()
    data = apply_transforms(loader(root_path, **options), **transforms)
    return dataclasses.replace(data, **use) if use else data
