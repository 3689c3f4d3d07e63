"""CIFAR-10 and CIFAR-100 read from their python-pickle release (the torchvision folder layout).

``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``root/cifar-100-python/{train, test, meta}`` (CIFAR-100 uses its 100 fine labels). Nothing is
downloaded unless the caller passes ``download=True``.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augkd.data.dataset import DATASETS, PUBLISHED_STATS, Dataset, make_dataset

_SIDE = 32


@dataclass(frozen=True)
class _CifarRelease:
    """Where one CIFAR release lives and how its pickles name things."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    labels_key: str
    names_key: str
    url: str
    md5: str


CIFAR10 = _CifarRelease(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{k}" for k in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    labels_key="labels",
    names_key="label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)

CIFAR100 = _CifarRelease(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    labels_key="fine_labels",
    names_key="fine_label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def _download(release: _CifarRelease, root: Path) -> None:
    """Fetch and unpack the release's archive into ``root`` (torchvision checks its md5)."""
    from torchvision.datasets import utils

    try:
        utils.download_and_extract_archive(release.url, download_root=str(root), md5=release.md5)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError; md5: Runtime
        raise OSError(f"{release.name}: download of {release.url} into {root} failed: "
                      f"{str(err) or type(err).__name__}") from err


#: The only globals a CIFAR batch file may name: numpy's array reconstruction (numpy 1 and 2
#: module paths, pickle protocols 2 to 5). Everything else in the files is dicts, lists,
#: strings and numbers, which unpickling builds without naming any global.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles of Python 3 store bytes
})


class _DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers and nothing else: a file that
    names any other global (``os.system``, ``builtins.eval``...) is refused before it runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which is not part of a CIFAR data file (only numpy "
                "arrays, lists, dicts, strings and numbers are read; nothing is executed)"
            )
        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = module.replace("numpy.core", "numpy._core", 1)
        return getattr(importlib.import_module(module), name)


def _unpickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR file {path} is missing")
    try:
        with path.open("rb") as handle:
            content = _DataOnlyUnpickler(handle, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "not part of a CIFAR data file" in str(exc):
            raise ValueError(f"refusing CIFAR file {path}: {exc}") from None
        raise ValueError(f"cannot read CIFAR file {path}: truncated or corrupt ({exc})") from exc
    except (EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot read CIFAR file {path}: truncated or corrupt ({exc})") from exc
    if not isinstance(content, dict):
        raise ValueError(f"CIFAR file {path} does not hold a dict but a {type(content).__name__}")
    # The release was pickled by Python 2 (str keys read back as str); re-pickled copies may
    # carry bytes keys instead.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def _read_split(paths: list[Path], labels_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            batch_labels = np.asarray(batch[labels_key], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"CIFAR file {path} has no entry {exc}") from None
        if data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE or len(batch_labels) != len(data):
            raise ValueError(
                f"CIFAR file {path}: expected data [N, {3 * _SIDE * _SIDE}] and N labels, got "
                f"data {list(data.shape)} and {len(batch_labels)} labels"
            )
        # Each row is the red plane, then green, then blue, each row-major: C, H, W order.
        images.append(data.reshape(-1, 3, _SIDE, _SIDE))
        labels.append(batch_labels)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _load_release(release: _CifarRelease, root: Path | None, download: bool) -> Dataset:
    if root is None:
        raise ValueError(
            f"dataset {release.name!r} needs root, the folder holding {release.folder}/"
        )
    folder = root / release.folder
    if not folder.is_dir():
        if not download:
            raise FileNotFoundError(
                f"{release.name}: folder {folder} not found; pass download=True (--download on "
                f"the command line) to fetch it from {release.url}"
            )
        _download(release, root)
        if not folder.is_dir():
            raise FileNotFoundError(f"{release.name}: downloaded, but {folder} is still missing")
    meta_path = folder / release.meta_file
    meta = _unpickle(meta_path)
    if release.names_key not in meta:
        raise ValueError(f"CIFAR file {meta_path} has no entry {release.names_key!r}")
    classes = [str(name) for name in meta[release.names_key]]
    train_images, train_labels = _read_split(
        [folder / f for f in release.train_files], release.labels_key
    )
    test_images, test_labels = _read_split([folder / release.test_file], release.labels_key)
    return make_dataset(
        release.name,
        train_images,
        train_labels,
        test_images,
        test_labels,
        classes=classes,
        source=str(folder),
        stats=PUBLISHED_STATS[release.name],
    )


@DATASETS.register("cifar10")
def load_cifar10(root: Path | None, *, download: bool = False) -> Dataset:
    """CIFAR-10 from ``root/cifar-10-batches-py``: uint8 ``[50000, 3, 32, 32]`` / ``[10000, ...]``.

    Args:
        root: the folder holding ``cifar-10-batches-py/``.
        download: fetch the release into ``root`` when the folder is missing.
    """
    return _load_release(CIFAR10, root, download)


@DATASETS.register("cifar100")
def load_cifar100(root: Path | None, *, download: bool = False) -> Dataset:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python``: uint8 ``[50000, 3, 32, 32]``...

    Args:
        root: the folder holding ``cifar-100-python/``.
        download: fetch the release into ``root`` when the folder is missing.
    """
    return _load_release(CIFAR100, root, download)
