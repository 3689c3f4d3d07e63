"""Image-folder datasets: ``train/<class>/*`` and ``test/<class>/*`` in a directory or archive.

This is how the JPEG copy of CIFAR-10 (``cifar10-jpeg.tar.xz``) or a Tiny-ImageNet-style tree
is read. Classes are the sorted folder names of ``train/``; labels index that order. Images are
decoded once with Pillow (RGB, or L when every image is grayscale) and the tensors are cached,
keyed by the archive's sha256 (or, for a directory, by its file listing), so later loads only
read one file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from augkd.data.archive import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_MEMBER_BYTES,
    SPLITS,
    FileTree,
    read_tree,
    source_key,
    split_prefix,
)
from augkd.data.cache import default_cache_dir, load_cached, save_atomic
from augkd.data.dataset import DATASETS, Dataset, make_dataset, positive_int_option
from augkd.data.imagenet import list_image_folder, load_stored_layout

# Bump when the decoded tensors for the same source would change (decoding rules, layout).
CACHE_FORMAT = 1
_GRAY_MODES = frozenset({"1", "L", "LA"})


def _class_files(tree: FileTree, split_dir: str) -> dict[str, list[str]]:
    """Class name -> sorted relative paths of the files under ``split_dir/<class>/``."""
    classes: dict[str, list[str]] = {}
    for folder in tree.dirs:
        parent, _, name = folder.rpartition("/")
        if parent == split_dir:
            classes[name] = []
    for path in tree.files:
        if not path.startswith(f"{split_dir}/"):
            continue
        inner = path[len(split_dir) + 1 :]
        if "/" not in inner:
            raise ValueError(
                f"{tree.describe(path)} lies directly in {split_dir}/; images must sit in "
                f"{split_dir}/<class>/ folders"
            )
        classes[inner.split("/", 1)[0]].append(path)
    for name, files in classes.items():
        if not files:
            raise ValueError(f"class folder {tree.describe(f'{split_dir}/{name}')} is empty")
        files.sort()
    return dict(sorted(classes.items()))




def _decode(tree: FileTree, path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one image to uint8 ``[H, W]`` (grayscale) or ``[H, W, 3]`` (anything else)."""
    try:
        content = tree.files[path]
        source = io.BytesIO(content) if isinstance(content, bytes) else content
        with PIL.Image.open(source) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(
                    f"it declares {width}x{height} pixels, more than the cap of {max_pixels:,} "
                    "(raise it with the max_image_pixels dataset option)"
                )
            mode = "L" if image.mode in _GRAY_MODES else "RGB"
            return np.asarray(image.convert(mode), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {tree.describe(path)}: {exc}") from exc


def _stack(tree: FileTree, paths: list[str], arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack decoded images into uint8 ``[N, C, H, W]``; all must share one size."""
    height, width = arrays[0].shape[:2]
    for path, array in zip(paths, arrays, strict=True):
        if array.shape[:2] != (height, width):
            raise ValueError(
                f"images differ in size: {tree.describe(path)} is {array.shape[1]}x"
                f"{array.shape[0]} but {tree.describe(paths[0])} is {width}x{height} (WxH)"
            )
    if all(array.ndim == 2 for array in arrays):
        return torch.from_numpy(np.stack(arrays)[:, None])
    # Pillow turns L into RGB by repeating the value, which is what broadcasting does here.
    stacked = np.empty((len(arrays), height, width, 3), dtype=np.uint8)
    for index, array in enumerate(arrays):
        stacked[index] = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def decode_image_folder(
    tree: FileTree, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> tuple[list[str], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Decode the ``train``/``test`` image folders of ``tree``.

    Returns:
        ``(classes, splits)`` with ``splits[split] = (images, labels)``: uint8
        ``[N, C, H, W]`` and int64 ``[N]``, ordered by class then file path.
    """
    prefix = split_prefix(tree)
    per_split = {split: _class_files(tree, f"{prefix}{split}") for split in SPLITS}
    classes = list(per_split["train"])
    if set(per_split["test"]) != set(classes):
        only_train = sorted(set(classes) - set(per_split["test"]))
        only_test = sorted(set(per_split["test"]) - set(classes))
        raise ValueError(
            f"{tree.source}: train/ and test/ hold different classes; only in train: "
            f"{', '.join(only_train) or 'none'}; only in test: {', '.join(only_test) or 'none'}"
        )
    paths = {s: [p for c in classes for p in per_split[s][c]] for s in SPLITS}
    labels = {
        s: torch.tensor(
            [k for k, c in enumerate(classes) for _ in per_split[s][c]], dtype=torch.int64
        )
        for s in SPLITS
    }
    all_paths = paths["train"] + paths["test"]
    # Sequential on purpose: for small images Pillow spends most of its time in Python code
    # holding the GIL, so a thread pool measured no faster (about 3.5 s for CIFAR-10's 60,000).
    images = _stack(tree, all_paths, [_decode(tree, path, max_pixels) for path in all_paths])
    n_train = len(paths["train"])
    # Separate storages, so saving or moving one split never drags the other along.
    splits = {
        "train": (images[:n_train].clone(), labels["train"]),
        "test": (images[n_train:].clone(), labels["test"]),
    }
    return classes, splits


def _from_cache(content: dict, source: Path) -> Dataset | None:
    try:
        if content.get("format") != CACHE_FORMAT:
            return None
        return Dataset(
            name="imagefolder",
            train_images=content["train_images"],
            train_labels=content["train_labels"],
            test_images=content["test_images"],
            test_labels=content["test_labels"],
            classes=list(content["classes"]),
            mean=tuple(content["mean"]),
            std=tuple(content["std"]),
            checksum=content["checksum"],
            source=str(source),
        )
    except (KeyError, TypeError, ValueError):
        return None


@DATASETS.register("imagefolder")
def load_image_folder(
    root: Path | None,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    size: int | None = None,
    classes: str | None = None,
    bad_images: str = "error",
    workers: int | None = None,
) -> Dataset:
    """An image-folder dataset from a directory or a .tar/.tar.gz/.tgz/.tar.xz/.zip archive.

    Without ``size`` every image must have the same size (CIFAR-style sets) and is stored as
    decoded, RGB or (when all are grayscale) single-channel, in one cache file. With ``size``
    images of any size are decoded in parallel to RGB ``size x size`` squares (short side, then
    the centre) into a memory-mapped cache, as for ``tinyimagenet`` (docs/data.md).

    Args:
        root: the directory or archive holding ``train/<class>/*`` and ``test/<class>/*``
            (optionally wrapped in one top-level folder).
        cache: keep the decoded tensors in a cache file and reuse them on later loads.
        cache_dir: where cache files go; ``None`` means ``$AUGKD_CACHE`` or ``~/.cache/augkd``.
        max_member_bytes: the largest file accepted (default 64 MiB), refused before reading.
        max_image_pixels: the largest image accepted, by its declared width x height
            (default 4096 x 4096), refused before decoding.
        size: the stored side in px for images of any size (None: keep the images' size).
        classes: with ``size``: keep only these classes (a file of one name per line).
        bad_images: with ``size``: ``"error"`` or ``"skip"`` unreadable images (counted).
        workers: with ``size``: decoding processes (default: every core).

    Returns:
        A :class:`Dataset` whose checksum is the archive's sha256, or for a directory the
        sha256 of the decoded tensors.
    """
    if size is not None:
        return load_stored_layout(
            "imagefolder", root, list_image_folder, size=size, classes=classes,
            bad_images=bad_images, workers=workers, cache=cache, cache_dir=cache_dir,
            max_member_bytes=max_member_bytes, max_image_pixels=max_image_pixels,
        )
    given = [f"{k}={v!r}" for k, v in (("classes", classes), ("workers", workers))
             if v is not None] + ([f"bad_images={bad_images!r}"] if bad_images != "error" else [])
    if given:
        raise ValueError(f"dataset option(s) {', '.join(given)} of imagefolder need size=PX "
                         "(the stored resolution of the parallel decoder)")
    positive_int_option("max_member_bytes", max_member_bytes)
    positive_int_option("max_image_pixels", max_image_pixels)
    if root is None:
        raise ValueError("dataset 'imagefolder' needs root, a directory or archive of images")
    if not root.exists():
        raise FileNotFoundError(f"image folder or archive {root} does not exist")
    kind, digest = source_key(root)
    cache_file = (
        Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    ) / f"imagefolder-v{CACHE_FORMAT}-{kind}-{digest}.pt"
    if cache:
        content = load_cached(cache_file)
        dataset = None if content is None else _from_cache(content, root)
        if dataset is not None:
            return dataset
    classes, splits = decode_image_folder(read_tree(root, max_member_bytes), max_image_pixels)
    dataset = make_dataset(
        "imagefolder",
        *splits["train"],
        *splits["test"],
        classes=classes,
        source=str(root),
        # An archive's bytes identify its data; a directory's listing (paths, sizes, mtimes)
        # only keys the cache, so its identity is the hash of the decoded tensors.
        checksum=digest if kind == "archive" else None,
    )
    if cache:
        save_atomic(
            {
                "format": CACHE_FORMAT,
                "train_images": dataset.train_images,
                "train_labels": dataset.train_labels,
                "test_images": dataset.test_images,
                "test_labels": dataset.test_labels,
                "classes": dataset.classes,
                "mean": list(dataset.mean),
                "std": list(dataset.std),
                "checksum": dataset.checksum,
            },
            cache_file,
        )
    return dataset


