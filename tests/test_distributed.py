"""Data-parallel students: 2 gloo processes on the CPU train and stay in sync, AGB included."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from augkd.augment import Normalize, ViewPipeline, create
from augkd.data import load_dataset
from augkd.training import Split, TrainConfig, Trainer, load_teacher
from augkd.training.step import Batch, step_views

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def teacher_dir(digits_teacher):
    return digits_teacher  # resnet8, 3 epochs on digits


def _worker(rank: int, port: int, teacher: str, balancer: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        data = load_dataset("digits")
        cfg = TrainConfig(role="student", model="resnet8", teacher=teacher, aug="cutmix",
                          balancer=balancer, epochs=3, device="cpu", progress=False)
        model, _ = load_teacher(teacher, data)
        trainer = Trainer(cfg, Split(data.train_images, data.train_labels),
                          Split(data.test_images, data.test_labels), mean=data.mean,
                          std=data.std, num_classes=10, in_channels=1, teacher=model)
        batch = Batch(data.train_images[:64], data.train_labels[:64], torch.arange(100, 164))
        views = step_views(trainer.parts, batch, torch.Generator().manual_seed(123))
        torch.save(tuple(views), f"{out}/views{rank}.pt")
        unsynced = []

        def check_ranks_agree(optimizer, args, kwargs):
            flat = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
            copies = [torch.empty_like(flat) for _ in range(WORLD)]
            dist.all_gather(copies, flat)
            if not all(torch.equal(copies[0], c) for c in copies[1:]):
                unsynced.append(len(unsynced))

        trainer.optimizer.register_step_post_hook(check_ranks_agree)
        records = [trainer.train_epoch(epoch) for epoch in (1, 2, 3)]
        steps = sum(int(r.get("balance_steps", 0)) for r in records)
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump({"distill": [r["train_distill"] for r in records], "steps": steps,
                       "unsynced": len(unsynced)}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("balancer", ["agb", "manual"])
def test_two_gloo_ranks_train_and_stay_in_sync(teacher_dir, tmp_path, balancer):
    mp.spawn(_worker, args=(_free_port(), str(teacher_dir), balancer, str(tmp_path)),
             nprocs=WORLD, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    # each rank's views are its share of the single-process views of the same global batch
    data = load_dataset("digits")
    pipeline = ViewPipeline(create("crop+flip"), create("cutmix"), Normalize(data.mean, data.std))
    single = pipeline(data.train_images[:64], torch.Generator().manual_seed(123))
    for r in range(WORLD):
        x, x_aug, labels, index = torch.load(tmp_path / f"views{r}.pt")
        assert torch.equal(index, torch.arange(100, 164)[r::WORLD])  # CRD's memory indices
        assert torch.equal(x, single.original[r::WORLD])
        assert torch.equal(x_aug, single.augmented[r::WORLD])
        assert torch.equal(labels, data.train_labels[:64][r::WORLD])
    for res in results:
        assert res["unsynced"] == 0  # identical weights on both ranks after every step
        assert res["steps"] == 3 * 22  # digits: 22 global batches of 64 per epoch
        assert res["distill"][-1] < res["distill"][0]  # the loss falls


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2, 3])  # 3: uneven shares, and a last batch of 2 < 3 ranks
def test_torchrun_cli_writes_one_run_folder(teacher_dir, tmp_path, nproc):
    out = tmp_path / "ddp-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-port", str(_free_port()), "-m", "augkd.train", "student",
           "--teacher", str(teacher_dir), "--model", "resnet8", "--aug", "mixup",
           "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # rank 0 alone writes
    assert (out / "model.pt").is_file() and (out / "summary.json").is_file()


@pytest.mark.slow
def test_torchrun_on_a_stored_image_folder_in_host_memory(tmp_path):
    """Two torchrun ranks on an image folder stored at 16 px: both ranks open the memory-mapped
    cache at once (one is built, by one of them), and with the images in host memory
    (data_on_device never) each rank gathers its rows of the same batches as with the images
    on the device: the same weights, bit for bit."""
    from tests.test_data_stored import build_folder

    root = build_folder(tmp_path / "folder")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGKD_CACHE": str(tmp_path / "cache")}
    weights = {}
    for where in ("never", "always"):
        config = tmp_path / f"{where}.yaml"
        config.write_text(f"dataset: imagefolder\nroot: {root}\n"
                          f"dataset_options: {{size: 16, workers: 1, data_on_device: {where}}}\n")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(_free_port()), "-m", "augkd.train", "teacher",
               "--config", str(config), "--model", "resnet8", "--epochs", "2",
               "--batch-size", "4", "--device", "cpu", "--no-progress",
               "--out", str(tmp_path / where)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        weights[where] = torch.load(tmp_path / where / "model.pt", weights_only=False)["model"]
    for name, value in weights["always"].items():
        assert torch.equal(value, weights["never"][name]), name
    stored = [p for p in (tmp_path / "cache").rglob("*.npy")]
    assert stored and len({p.parent for p in stored}) == 1  # one cache, built once
