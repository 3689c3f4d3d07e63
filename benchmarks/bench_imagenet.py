"""augkd's input path against a torchvision DataLoader, on one ImageNet-sized KD step.

The issue's benchmark (beyond CIFAR): ImageNet-100-sized data at 160 px, ResNet34 -> ResNet18 KD
(``tv:resnet34`` teacher, ``tv:resnet18`` student, both with random weights: the speed of a step
does not depend on them) with CutMix, images/s of two ways of feeding the *same* step:

* ``augkd``: the dataset as one uint8 tensor on the device, RandomResizedCrop + flip and CutMix
  batched on the device with per-image parameters (augkd's Trainer, one epoch);
* ``dataloader``: the way the reference code and mdistiller feed ImageNet: JPEG files decoded by
  ``torchvision.datasets.ImageFolder`` with ``RandomResizedCrop(size) + RandomHorizontalFlip +
  ToTensor + Normalize`` in ``--loader-workers`` processes, pinned batches copied to the device,
  then CutMix and the same forward/backward (teacher and student forwards, CE + KD with T = 4,
  SGD), bf16 autocast and channels_last as augkd uses.

The synthetic images are smooth random fields (so JPEG files have realistic sizes), written once
as JPEG (quality 90) for the DataLoader and held as a tensor for augkd; ``--images`` of them at
``--size`` px, 100 classes. Each path runs ``--warmup`` untimed steps, then ``--steps`` timed
steps; figures are images per second of the timed steps (and augkd's whole epoch). Goal: augkd
at least 3x the DataLoader's images/s.

    python benchmarks/bench_imagenet.py --device cuda --out benchmarks/results/gpu/imagenet
    # CPU smoke at toy size (no figure to keep):
    python benchmarks/bench_imagenet.py --device cpu --images 256 --size 64 --batch 32 \\
        --steps 3 --warmup 1 --loader-workers 2 --teacher tv:resnet18 --out /tmp/bench_in
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from augkd.models import create_model
from augkd.training import TrainConfig, Trainer
from augkd.training.trainer import Split

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 100


def smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` uint8 ``[size, size, 3]`` images: random 8x8 fields upsampled, plus noise."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    images = images + 0.05 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _write_chunk(args: tuple[Path, int, int, int, int]) -> None:
    root, start, count, size, seed = args
    images = smooth_images(count, size, seed)
    for i, image in enumerate(images):
        k = start + i
        folder = root / f"c{k % CLASSES:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{k:07d}.jpg", quality=90)


def make_data(root: Path, n: int, size: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The JPEG folder (written once, in parallel) and the same images as one tensor."""
    chunk = 1024
    starts = list(range(0, n, chunk))
    jobs = [(root, s, min(chunk, n - s), size, s) for s in starts]
    if not (root / "done").is_file():
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_chunk, jobs))
        (root / "done").write_text(str(n))
    images = torch.from_numpy(np.concatenate([smooth_images(c, size, s) for _, s, c, _, _ in jobs]))
    labels = torch.arange(n) % CLASSES
    return images.permute(0, 3, 1, 2).contiguous(), labels


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_augkd(args, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> dict:
    on_device = Split(images.to(device), labels.to(device))
    test = Split(on_device.images[:args.batch], on_device.labels[:args.batch])
    teacher = create_model(args.teacher, CLASSES, load_weights=False).to(device).eval()
    cfg = TrainConfig(role="student", model=args.student, teacher="(benchmark)", aug="cutmix",
                      balancer="manual", distill="kd", batch_size=args.batch, epochs=2,
                      device=str(device), progress=False, bf16=device.type == "cuda")
    trainer = Trainer(cfg, on_device, test, mean=MEAN, std=STD, num_classes=CLASSES,
                      in_channels=3, teacher=teacher, base_aug="resized-crop+flip",
                      log=lambda s: None)
    steps_per_epoch = len(on_device) // args.batch
    trainer.train_epoch(1)  # warm-up: allocator, cuDNN autotuning
    sync(device)
    t0 = time.perf_counter()
    trainer.train_epoch(2)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"path": "augkd", "images_per_s": steps_per_epoch * args.batch / seconds,
            "seconds": seconds, "steps": steps_per_epoch}


def cutmix(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One CutMix box per batch (the reference code's form); returns the mixed batch."""
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    h, w = x.shape[-2:]
    ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return x


def time_dataloader(args, root: Path, device: torch.device) -> dict:
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.RandomResizedCrop(args.size), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD),
    ])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(root), tf), batch_size=args.batch, shuffle=True,
        num_workers=args.loader_workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=args.loader_workers > 0)
    teacher = create_model(args.teacher, CLASSES, load_weights=False).to(device).eval()
    student = create_model(args.student, CLASSES, load_weights=False).to(device)
    if device.type == "cuda":
        teacher = teacher.to(memory_format=torch.channels_last)
        student = student.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        views = (x, cutmix(x, y, g))
        with amp:
            with torch.no_grad():
                t = [teacher(v) for v in views]
            s = [student(v) for v in views]
            ce = F.cross_entropy(s[0].float(), y)
            kd = sum(F.kl_div(F.log_softmax(si.float() / 4, 1), F.softmax(ti.float() / 4, 1),
                              reduction="batchmean") * 16 for si, ti in zip(s, t, strict=True))
            loss = 0.1 * ce + 0.9 * kd
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    batches = iter(loader)
    for _ in range(args.warmup):
        step(*next(batches))
    sync(device)
    t0 = time.perf_counter()
    done = 0
    for _ in range(args.steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        step(x, y)
        done += 1
    sync(device)
    seconds = time.perf_counter() - t0
    return {"path": "dataloader", "images_per_s": done * args.batch / seconds,
            "seconds": seconds, "steps": done, "loader_workers": args.loader_workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=126_000, help="ImageNet-100's train size")
    parser.add_argument("--size", type=int, default=160, help="stored side and crop size (px)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed DataLoader steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed DataLoader steps")
    parser.add_argument("--loader-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--teacher", default="tv:resnet34")
    parser.add_argument("--student", default="tv:resnet18")
    parser.add_argument("--data", type=Path, default=Path(".data/bench_imagenet"),
                        help="where the JPEG folder is written (reused when present)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    root = args.data / f"n{args.images}-s{args.size}"
    images, labels = make_data(root, args.images, args.size, os.cpu_count() or 1)
    prepare = time.perf_counter() - t0
    rows = [time_dataloader(args, root, device), time_augkd(args, images, labels, device)]
    speedup = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    result = {
        "command": "python benchmarks/bench_imagenet.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()
        or "cpu", "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "images": args.images, "size": args.size, "batch": args.batch,
        "teacher": args.teacher, "student": args.student, "prepare_seconds": prepare,
        "rows": rows, "augkd_over_dataloader": speedup, "goal": 3.0,
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['path']:>10}: {row['images_per_s']:9.1f} images/s ({row['steps']} steps, "
              f"{row['seconds']:.1f} s)")
    print(f"augkd / DataLoader: {speedup:.2f}x (goal >= 3x); data prepared in {prepare:.0f} s")


if __name__ == "__main__":
    main()
