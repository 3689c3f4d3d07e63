"""Datasets decoded once to a stored resolution and kept in a memory-mapped uint8 cache.

A layout (Tiny ImageNet, ImageNet, an image folder) lists its files and labels; this module
decodes them in parallel (:mod:`augkd.data.decode`) straight into ``.npy`` files on local disk
and opens those files memory-mapped, so a dataset larger than RAM is paged in as batches touch
it, and a second load reads nothing but the manifest.

The cache folder is named by a key over the source's identity (an archive's sha256, or a
directory's listing of paths, sizes and modification times) and every option that changes the
pixels (``size``, the class subset, ``bad_images``), so a changed source or option builds a new
folder and never reuses a stale one. Each folder holds::

    manifest.json                     classes, mean, std, checksum, options, skipped files
    train_images.npy  test_images.npy uint8 [N, 3, size, size]
    train_labels.npy  test_labels.npy int64 [N]

The folder is built under a temporary name and renamed when complete; a build killed half way
leaves a temporary folder that the next build removes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from augkd.data.archive import FileTree
from augkd.data.cache import default_cache_dir
from augkd.data.dataset import Dataset, channel_stats, positive_int_option
from augkd.data.decode import decode_into

#: Bump when the stored arrays for the same source and options would change.
CACHE_FORMAT = 1
SPLITS = ("train", "test")
#: ``size`` bounds (the stored side): below 8 px nothing of an ImageNet photo is left; above
#: 512 px ImageNet-1K alone is 1 TB.
MIN_SIZE, MAX_SIZE = 8, 512


@dataclasses.dataclass(frozen=True)
class Listing:
    """What a layout found: class names (label order) and, per split, files and labels.

    Attributes:
        tree: the files, by relative path (bytes for an archive, paths for a directory).
        classes: ``classes[k]`` names label ``k`` (WordNet ids for ImageNet).
        files: ``files[split]`` the relative paths of that split's images, in a fixed order.
        labels: ``labels[split][i]`` the label of ``files[split][i]``.
    """

    tree: FileTree
    classes: list[str]
    files: dict[str, list[str]]
    labels: dict[str, list[int]]


def check_size(value: object) -> int:
    """``value`` if it is a usable stored side, else a ValueError naming option and range."""
    positive_int_option("size", value)
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise ValueError(f"dataset option size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {value}")
    return value


def cache_key(parts: dict) -> str:
    """The sha256 (hex) of ``parts`` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def arrays_checksum(classes: list[str], arrays: list[np.ndarray], chunk: int = 1024) -> str:
    """:func:`augkd.data.dataset.tensors_checksum` of the arrays as tensors, computed a chunk
    of rows at a time so a memory-mapped array is never copied whole."""
    digest = hashlib.sha256()
    digest.update("\n".join(classes).encode())
    for array in arrays:
        dtype = torch.from_numpy(array[:0]).dtype
        digest.update(f"|{dtype}{list(array.shape)}|".encode())
        for start in range(0, array.shape[0], chunk):
            digest.update(np.ascontiguousarray(array[start:start + chunk]).tobytes())
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(folder: Path) -> None:
    """Remove temporary folders of builds of ``folder`` whose process is gone."""
    for stale in folder.parent.glob(f".{folder.name}.*.tmp"):
        try:
            pid = int(stale.name.rsplit(".", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(stale, ignore_errors=True)


def open_cached(folder: Path, name: str, source: str) -> Dataset | None:
    """The dataset stored in the cache ``folder``, memory-mapped, or None when there is none
    (a damaged folder is warned about and treated as missing)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != CACHE_FORMAT:
            return None
        tensors = {}
        for split in SPLITS:
            # copy-on-write mapping: pages are read on demand and a write never reaches the file
            images = np.load(folder / f"{split}_images.npy", mmap_mode="c")
            labels = np.load(folder / f"{split}_labels.npy")
            tensors[f"{split}_images"] = torch.from_numpy(images)
            tensors[f"{split}_labels"] = torch.from_numpy(labels)
        return Dataset(name=name, classes=list(manifest["classes"]),
                       mean=tuple(manifest["mean"]), std=tuple(manifest["std"]),
                       checksum=manifest["checksum"], source=source,
                       options=dict(manifest["options"]), **tensors)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"ignoring damaged cache folder {folder} ({exc}); rebuilding it",
                      stacklevel=3)
        return None


def _allocate(where: Path | None, split: str, n: int, size: int) -> np.ndarray:
    shape = (n, 3, size, size)
    if where is None:
        return np.zeros(shape, dtype=np.uint8)
    return np.lib.format.open_memmap(where / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                     shape=shape)


def _keep_rows(array: np.ndarray, good: np.ndarray, where: Path | None, split: str) -> np.ndarray:
    """``array`` without the rows of skipped images (a new file when it is memory-mapped)."""
    if good.all():
        return array
    if where is None:
        return array[good]
    path = where / f"{split}_images.npy"
    kept = np.lib.format.open_memmap(where / f"{split}_images.kept.npy", mode="w+",
                                     dtype=np.uint8, shape=(int(good.sum()), *array.shape[1:]))
    rows = np.flatnonzero(good)
    for start in range(0, len(rows), 1024):
        kept[start:start + 1024] = array[rows[start:start + 1024]]
    kept.flush()
    del array
    os.replace(where / f"{split}_images.kept.npy", path)
    return np.load(path, mmap_mode="c")


def build_stored(
    name: str,
    root: Path,
    key_parts: dict,
    list_files: Callable[[], Listing],
    *,
    size: int,
    options: dict,
    bad_images: str = "error",
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    max_image_pixels: int,
) -> Dataset:
    """Open the cached dataset for ``key_parts``, or list, decode and cache it first.

    Args:
        name: the registry name (``tinyimagenet``...), part of the folder's name.
        root: the source (for messages and ``Dataset.source``).
        key_parts: everything that identifies the stored arrays (source identity, options).
        list_files: the layout's listing, called only when the cache misses.
        size: the stored side.
        options: what ``Dataset.options`` records (the options that changed the data).
        bad_images, workers, max_image_pixels: see :func:`augkd.data.decode.decode_into`.
        cache: False decodes into memory and writes nothing.
        cache_dir: the cache root; None means ``$AUGKD_CACHE`` or ``~/.cache/augkd``.
    """
    key = cache_key({"format": CACHE_FORMAT, "dataset": name, "size": size,
                     "bad_images": bad_images, **key_parts})
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = base / f"{name}-{size}px-v{CACHE_FORMAT}-{key[:32]}"
    if cache:
        found = open_cached(folder, name, str(root))
        if found is not None:
            return found
    listing = list_files()
    counts = {split: len(listing.files[split]) for split in SPLITS}
    where: Path | None = None
    if cache:
        need = sum(counts.values()) * 3 * size * size
        try:
            base.mkdir(parents=True, exist_ok=True)
            _remove_stale_builds(folder)
            free = shutil.disk_usage(base).free
            if need > free:
                raise ValueError(
                    f"the {name} cache at {size} px needs {need / 2**30:.1f} GiB but "
                    f"{base} has {free / 2**30:.1f} GiB free; free space, choose another "
                    "cache_dir, or a smaller size"
                )
            where = base / f".{folder.name}.{os.getpid()}.tmp"
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
        except OSError as err:
            warnings.warn(f"cannot write the data cache in {base} ({err.strerror or err}); "
                          "decoding into memory instead", stacklevel=3)
            where = None
    try:
        arrays, labels, skipped = {}, {}, []
        for split in SPLITS:
            names = listing.files[split]
            images = _allocate(where, split, len(names), size)
            good = decode_into(images, names, [listing.tree.files[n] for n in names], size=size,
                               max_pixels=max_image_pixels, bad_images=bad_images,
                               workers=workers, describe=listing.tree.describe)
            skipped += [listing.tree.describe(n) for n, ok in zip(names, good, strict=True)
                        if not ok]
            if not good.any():
                raise ValueError(f"{root}: no readable image in the {split} split")
            if where is not None:
                images.flush()
            arrays[split] = _keep_rows(images, good, where, split)
            labels[split] = np.asarray(listing.labels[split], dtype=np.int64)[good]
        if skipped:
            warnings.warn(f"{name}: left out {len(skipped)} unreadable image(s) "
                          f"(bad_images=skip), e.g. {skipped[0]}", stacklevel=3)
        checksum = arrays_checksum(listing.classes, [arrays["train"], labels["train"],
                                                     arrays["test"], labels["test"]])
        mean, std = channel_stats(torch.from_numpy(arrays["train"]))
        manifest = {"format": CACHE_FORMAT, "dataset": name, "source": str(root),
                    "classes": listing.classes, "mean": list(mean), "std": list(std),
                    "checksum": checksum, "options": options, "skipped": skipped,
                    "counts": {s: int(len(labels[s])) for s in SPLITS}}
        if where is not None:
            for split in SPLITS:
                np.save(where / f"{split}_labels.npy", labels[split])
            (where / "manifest.json").write_text(json.dumps(manifest, indent=1))
            del arrays
            try:
                os.replace(where, folder)
            except OSError:  # the folder exists: another process finished it first, or it
                if open_cached(folder, name, str(root)) is None:  # is damaged: replace it
                    shutil.rmtree(folder, ignore_errors=True)
                    os.replace(where, folder)
                else:
                    shutil.rmtree(where, ignore_errors=True)
            where = None
            found = open_cached(folder, name, str(root))
            if found is None:
                raise ValueError(f"the cache folder {folder} just written cannot be read back")
            return found
        return Dataset(name=name, train_images=torch.from_numpy(arrays["train"]),
                       train_labels=torch.from_numpy(labels["train"]),
                       test_images=torch.from_numpy(arrays["test"]),
                       test_labels=torch.from_numpy(labels["test"]),
                       classes=listing.classes, mean=mean, std=std, checksum=checksum,
                       source=str(root), options=options)
    finally:
        if where is not None:
            shutil.rmtree(where, ignore_errors=True)
