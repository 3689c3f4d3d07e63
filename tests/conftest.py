"""Shared fixtures: small, fast configurations on the embedded digits dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import FAST

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


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory, digits) -> Path:
    """The run folder of one resnet8 teacher trained 3 epochs on digits (:data:`FAST`), shared
    by every test module that only needs a trained teacher; treat it as read-only."""
    from augkd.training import TrainConfig, train

    out = tmp_path_factory.mktemp("digits-teacher") / "teacher"
    cfg = TrainConfig(role="teacher", model="resnet8", epochs=3, **FAST)
    return train(cfg, out, data=digits, log=lambda s: None).run_dir

