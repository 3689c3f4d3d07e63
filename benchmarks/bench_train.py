"""Time one KD epoch of the trainer: wrn_40_2 -> wrn_16_2, 50,000 32x32 images.

Grid: extra DA (cutmix, autoaugment) x batch (64, 256) x balancer (manual, agb). The data are
random uint8 images of CIFAR's shape already on the device (the speed of a step does not
depend on the pixels); the teacher is a randomly initialised wrn_40_2 (ditto). Each cell runs
one untimed warm-up epoch (allocator, cuDNN autotuning, compile) and then times
``--timed-epochs`` epochs; the figure is seconds per epoch (mean of the timed ones).

The reference code takes 19.5 s per epoch with cutmix and 35.5 s with autoaugment at batch 64
on an H100 (protocol.md section 7).

    python benchmarks/bench_train.py --device cuda --out benchmarks/results/train_h100
    python benchmarks/bench_train.py --device cpu --images 2048 --batches 64 \\
        --teacher resnet8 --student resnet8 --out benchmarks/results/train_cpu_smoke
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
import torch

from augkd.models import create_model
from augkd.training import TrainConfig, Trainer
from augkd.training.trainer import Split

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def time_cell(args, aug: str, batch: int, balancer: str) -> dict:
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.images,), generator=g)
    train = Split(images.to(device), labels.to(device))
    test = Split(train.images[:1000], train.labels[:1000])
    teacher = create_model(args.teacher, 10).to(device).eval()
    cfg = TrainConfig(
        role="student", model=args.student, teacher="(benchmark)", aug=aug, balancer=balancer,
        batch_size=batch, epochs=1 + args.timed_epochs, device=str(device), progress=False,
        compile=args.compile, bf16=not args.fp32,
    )
    trainer = Trainer(cfg, train, test, mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10,
                      in_channels=3, teacher=teacher)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    trainer.train_epoch(1)  # warm-up
    sync()
    t0 = time.perf_counter()
    for epoch in range(2, 2 + args.timed_epochs):
        trainer.train_epoch(epoch)
    sync()
    seconds = (time.perf_counter() - t0) / args.timed_epochs
    scale = 50_000 / args.images  # report per 50,000-image epoch when a subset was timed
    return {"teacher": args.teacher, "student": args.student, "aug": aug, "batch": batch,
            "balancer": balancer, "device": torch.cuda.get_device_name() if device.type == "cuda"
            else "cpu", "images_timed": args.images, "s_per_epoch_50k": seconds * scale,
            "compile": args.compile, "bf16": device.type == "cuda" and not args.fp32}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--augs", nargs="+", default=["cutmix", "autoaugment"])
    p.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    p.add_argument("--balancers", nargs="+", default=["manual", "agb"])
    p.add_argument("--teacher", default="wrn_40_2")
    p.add_argument("--student", default="wrn_16_2")
    p.add_argument("--timed-epochs", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--out", default="benchmarks/results/train")
    args = p.parse_args()
    rows = []
    for aug, batch, balancer in itertools.product(args.augs, args.batches, args.balancers):
        row = time_cell(args, aug, batch, balancer)
        print(f"{aug:12s} batch {batch:4d} {balancer:7s} {row['s_per_epoch_50k']:8.2f} s/epoch",
              flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    manual = table[table.balancer == "manual"].set_index(["aug", "batch"])["s_per_epoch_50k"]
    table["vs_manual"] = [r.s_per_epoch_50k / manual.get((r.aug, r.batch), float("nan"))
                          for r in table.itertuples()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
