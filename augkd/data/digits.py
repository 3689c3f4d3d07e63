"""scikit-learn's 8x8 handwritten digits: a real dataset that needs no download.

1,797 grayscale images, 10 classes, embedded in scikit-learn. Small enough for end-to-end tests
on a CPU. The train/test split is drawn here (not by scikit-learn) from numpy's legacy
``RandomState``, whose stream numpy keeps frozen, so the default split never changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from augkd.data.dataset import DATASETS, Dataset, make_dataset

# load_digits stores pixel intensities as counts 0..16 (of a 4x4 block of a 32x32 bitmap).
_DIGITS_MAX = 16


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so every class keeps (about) ``test_fraction`` of itself for testing.

    Args:
        labels: int ``[N]`` class labels.
        test_fraction: share of each class put in the test split, in (0, 1).
        seed: seed of the ``numpy.random.RandomState`` that picks the test samples.

    Returns:
        ``(train_indices, test_indices)``: int64 arrays, each sorted ascending, disjoint,
        together covering ``0..N-1``. Class ``c`` with ``n_c`` samples gives
        ``round(n_c * test_fraction)`` test samples.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    rng = np.random.RandomState(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = int(np.floor(len(members) * test_fraction + 0.5))
        test_parts.append(members[rng.permutation(len(members))[:n_test]])
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels), dtype=np.int64), test)
    if len(test) == 0 or len(train) == 0:
        raise ValueError(
            f"test_fraction={test_fraction!r} leaves an empty train or test split "
            f"for {len(labels)} samples"
        )
    return train, test


@DATASETS.register("digits")
def load_digits(root: Path | None, *, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's digits as uint8 ``[N, 1, 8, 8]`` images (0..16 scaled to 0..255).

    Args:
        root: must be ``None``: the data is embedded in scikit-learn.
        test_fraction: share of each class held out for testing.
        seed: seed of the stratified split (``test_fraction=0.25, seed=0`` gives 1,346 train
            and 451 test images, a split that stays fixed across augkd versions).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if root is not None:
        raise ValueError(
            f"dataset 'digits' is embedded in scikit-learn and reads no root, got root={root}"
        )
    bunch = sklearn_digits()
    scaled = np.floor(bunch.images * (255.0 / _DIGITS_MAX) + 0.5)  # round half up
    images = torch.from_numpy(scaled.astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = stratified_split(bunch.target, test_fraction, seed)
    train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
    return make_dataset(
        "digits",
        images[train_t].contiguous(),
        labels[train_t].contiguous(),
        images[test_t].contiguous(),
        labels[test_t].contiguous(),
        classes=[str(k) for k in bunch.target_names],
        source="sklearn",
    )
