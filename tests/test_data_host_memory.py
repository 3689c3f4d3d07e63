"""Data too large for the device: images in host memory, batches gathered there and copied.

The host path must give the very batches of the device path (same rows, same order), so the
augmentation and the step see the same data. The CPU tests pin the choice of placement and the
plumbing; the CUDA test runs the real host-to-device path where a GPU is present.
"""

from __future__ import annotations

import pytest
import torch

from augkd.data import load_dataset
from augkd.training.batches import shuffled_batches
from tests.helpers import FAST

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _images(n: int = 50) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)


def test_with_rows_on_one_device_is_plain_indexing() -> None:
    images = _images()
    batches = shuffled_batches(50, 16, torch.Generator().manual_seed(1), "cpu")
    pairs = list(batches.with_rows(images))
    assert len(pairs) == len(batches) == 4
    for (index, rows), expected in zip(pairs, batches, strict=True):
        assert torch.equal(index, expected) and torch.equal(rows, images[expected])


@needs_cuda
def test_host_rows_equal_device_rows_on_cuda() -> None:
    images = _images()
    g_host, g_dev = (torch.Generator(device="cuda").manual_seed(1) for _ in range(2))
    host = shuffled_batches(50, 16, g_host, "cuda").with_rows(images)
    device = shuffled_batches(50, 16, g_dev, "cuda").with_rows(images.cuda())
    for (i_host, rows_host), (i_dev, rows_dev) in zip(host, device, strict=True):
        assert rows_host.device.type == "cuda"
        assert torch.equal(i_host, i_dev) and torch.equal(rows_host, rows_dev)


def test_placement_follows_data_on_device(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("digits")  # 1,797 images of 64 bytes: 115,008 bytes
    assert data.images_on("cpu")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**6, 10**9))
    assert data.images_on("cuda")  # fits in half of 1 MB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (200_000, 10**9))
    assert not data.images_on("cuda")  # 115 kB > 100 kB
    always = load_dataset("digits", data_on_device="always")
    never = load_dataset("digits", data_on_device="never")
    assert always.images_on("cuda") and not never.images_on("cuda") and never.images_on("cpu")
    assert always.checksum == never.checksum == data.checksum


def _teacher_weights(tmp_path, data_on_device: str, device: str) -> dict:
    from augkd.training import TrainConfig, train

    cfg = TrainConfig.from_dict({**FAST, "device": device, "role": "teacher", "model": "resnet8",
                                 "epochs": 1, "batch_size": 64, "seed": 3,
                                 "dataset_options": {"train_subset": 256,
                                                     "data_on_device": data_on_device}})
    result = train(cfg, tmp_path / data_on_device, log=lambda line: None)
    state = torch.load(result.run_dir / "model.pt", map_location="cpu", weights_only=False)
    return state["model"], result.summary["last"]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_a_run_with_images_in_host_memory_is_the_same_run(tmp_path, device: str) -> None:
    on_device, last_on = _teacher_weights(tmp_path, "always", device)
    on_host, last_host = _teacher_weights(tmp_path, "never", device)
    for name, value in on_device.items():
        assert torch.equal(value, on_host[name]), name
    assert last_on["test_loss"] == last_host["test_loss"]
