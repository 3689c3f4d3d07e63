"""Shared fixtures: small, fast configurations on the embedded digits dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep dataset and teacher caches out of the user's home during the whole session."""
    old = os.environ.get("AUGKD_CACHE")
    os.environ["AUGKD_CACHE"] = str(tmp_path_factory.getbasetemp() / "augkd-cache")
    yield
    if old is None:
        os.environ.pop("AUGKD_CACHE", None)
    else:
        os.environ["AUGKD_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits():
    from augkd.data import load_dataset

    return load_dataset("digits")

