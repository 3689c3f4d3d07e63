"""AGB's step against the manual balancer's, for the CIFAR pairs at batch 64 and 256.

AGB computes two gradients per step (task and distill, on the one graph of the step's
forwards); the manual balancer one. This times whole training steps of the real trainer
(teacher and student forwards of both views, the DA, the balancer, the SGD step) and reports
seconds per step and AGB / manual. The cells alternate (manual, agb, manual, agb, ...) over
``--rounds`` rounds of ``--steps`` steps each and the figure is the median round, so a load
that comes and goes on the machine hits both balancers alike.

Images are random uint8 tensors of CIFAR's shape already on the device and the teacher is
randomly initialised: the cost of a step does not depend on either.

    python benchmarks/bench_agb.py --device cpu --threads 2 --out benchmarks/results/agb_cpu
    python benchmarks/bench_agb.py --device cuda --out benchmarks/results/agb_gpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from augkd.models import create_model
from augkd.training import TrainConfig, Trainer
from augkd.training.trainer import Split

PAIRS = [("resnet56", "resnet20"), ("wrn_40_2", "wrn_16_2"), ("resnet32x4", "resnet8x4"),
         ("vgg13", "vgg8")]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_trainer(args, teacher: str, student: str, batch: int, balancer: str) -> Trainer:
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n = batch * args.steps
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    split = Split(images.to(device), labels.to(device))
    cfg = TrainConfig(role="student", model=student, teacher="(benchmark)", aug=args.aug,
                      balancer=balancer, agb_search=False, distill=args.distill,
                      batch_size=batch, epochs=10_000, device=str(device), progress=False,
                      bf16=not args.fp32)
    model = create_model(teacher, 10).to(device).eval()
    return Trainer(cfg, split, Split(split.images[:batch], split.labels[:batch]), mean=MEAN,
                   std=STD, num_classes=10, in_channels=3, teacher=model, log=lambda s: None)


def time_round(trainer: Trainer, epoch: int) -> float:
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    trainer.train_epoch(epoch)
    sync()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pairs", nargs="+", default=[f"{t}:{s}" for t, s in PAIRS],
                        help="teacher:student pairs")
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per balancer")
    parser.add_argument("--aug", default="cutmix", help="the extra DA of the second view")
    parser.add_argument("--distill", default="kd")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--out", required=True, help="writes OUT.csv and OUT.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for pair in args.pairs:
        teacher, student = pair.split(":")
        for batch in args.batches:
            trainers = {b: make_trainer(args, teacher, student, batch, b)
                        for b in ("manual", "agb")}
            for trainer in trainers.values():  # warm-up: allocator, cuDNN, first-call costs
                trainer.train_epoch(1)
            times: dict[str, list[float]] = {b: [] for b in trainers}
            for r in range(args.rounds):
                for name, trainer in trainers.items():
                    times[name].append(time_round(trainer, 2 + r) / args.steps)
            manual, agb = (statistics.median(times[b]) for b in ("manual", "agb"))
            rows.append({"teacher": teacher, "student": student, "batch": batch,
                         "aug": args.aug, "distill": args.distill,
                         "device": (torch.cuda.get_device_name() if args.device == "cuda"
                                    else f"cpu x{torch.get_num_threads()}"),
                         "manual_ms": 1000 * manual, "agb_ms": 1000 * agb,
                         "agb_vs_manual": agb / manual,
                         "ratio_min": min(a / m for a, m in zip(times["agb"], times["manual"],
                                                                strict=True)),
                         "ratio_max": max(a / m for a, m in zip(times["agb"], times["manual"],
                                                                strict=True))})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
