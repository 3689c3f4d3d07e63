"""Throughput of augkd's batched DAs against per-image and other batched implementations.

Arms, each timed on batches of 32x32 uint8 images (images per second, median of ``--repeats``):

- ``augkd``: ``augkd.augment.create(spec)`` on one ``[B, 3, 32, 32]`` uint8 batch on ``--device``.
- ``torchvision``: the reference pipeline's way: a ``DataLoader`` over a CIFAR-like dataset of
  HWC uint8 arrays, per-image PIL transforms (``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``AutoAugment(CIFAR10)``, a per-image Cutout on the tensor), then
  batched ``transforms.v2.MixUp``/``CutMix`` on the collated batch; CPU, ``--workers`` workers.
- ``albumentations``: per-image loop on the CPU, for the ops it has (flip, pad+crop, cutout).
- ``kornia``: its batched ops on ``--device`` (float input, conversion included).

The ``speedup_vs_torchvision`` column divides each arm's rate by the torchvision rate of the
same DA. CutMixPick is timed with a model-free scorer (mean brightness), so its row measures
the augmentation alone, not the teacher/student forward that ranks the pool.

Usage::

    python benchmarks/bench_augment.py --device cpu --batch 512 --repeats 5 \
        --out benchmarks/results/augment_cpu
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from augkd.augment import PAPER_DAS, create

# cutmixpick-s would time the same work as cutmixpick-t with the model-free scorer used here
DAS = tuple(spec for spec in PAPER_DAS if spec != "cutmixpick-s")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int
) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------- augkd arm


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Model-free CutMixPick scorer: mean pixel value, uint8 ``[N, C, H, W]`` -> float ``[N]``."""
    return images.float().mean(dim=(1, 2, 3))


def augkd_rate(spec: str, images: torch.Tensor, repeats: int) -> float | None:
    """Images/s of ``create(spec)`` on uint8 ``[B, 3, H, W]`` ``images``; None if unknown."""
    try:
        aug = create(spec)
    except ValueError:
        return None
    g = torch.Generator(device=images.device).manual_seed(0)
    kwargs = {"scorer": brightness} if aug.needs_scorer else {}
    seconds = median_seconds(lambda: aug(images, g, **kwargs), images.device, repeats, warmup=3)
    return images.shape[0] / seconds


# --------------------------------------------------------------------------- torchvision arm


class CifarLike(torch.utils.data.Dataset):
    """HWC uint8 numpy images turned into PIL images per item, as torchvision's CIFAR does."""

    def __init__(self, images: np.ndarray, transform: Callable) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), index % 100


class PerImageCutout:
    """The reference code's Cutout on one CHW tensor: one square hole, clipped at the border."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        cy, cx = np.random.randint(h), np.random.randint(w)
        y1, y2 = max(cy - self.size // 2, 0), min(cy + self.size // 2, h)
        x1, x2 = max(cx - self.size // 2, 0), min(cx + self.size // 2, w)
        image = image.clone()
        image[:, y1:y2, x1:x2] = 0
        return image


def torchvision_pipeline(da: str) -> tuple[Callable, Callable | None] | None:
    """(per-image transform, batch transform) reproducing ``da`` with torchvision, or None."""
    from torchvision import transforms as T
    from torchvision.transforms import v2

    to_tensor = T.PILToTensor()
    per_image = {
        "identity": [to_tensor],
        "flip": [T.RandomHorizontalFlip(), to_tensor],
        "crop+flip": [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), to_tensor],
        "cutout": [to_tensor, PerImageCutout(8)],
        "mixup": [to_tensor],
        "cutmix": [to_tensor],
        "autoaugment": [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10), to_tensor],
    }
    if da not in per_image:
        return None
    batch = {"mixup": v2.MixUp(alpha=1.0, num_classes=100), "cutmix": v2.CutMix(num_classes=100)}
    return T.Compose(per_image[da]), batch.get(da)


def torchvision_rate(da: str, images: np.ndarray, batch: int, workers: int, repeats: int) -> float:
    """Images/s of one DataLoader pass over HWC uint8 ``images``; NaN if torchvision lacks it."""
    built = torchvision_pipeline(da)
    if built is None:
        return float("nan")
    transform, batch_transform = built
    loader = torch.utils.data.DataLoader(
        CifarLike(images, transform), batch_size=batch, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0,
    )

    def one_pass() -> None:
        for x, y in loader:
            if batch_transform is not None:
                batch_transform(x.float() / 255, y)  # v2 MixUp/CutMix need float

    seconds = median_seconds(one_pass, torch.device("cpu"), repeats, warmup=1)
    return len(images) / seconds


# ------------------------------------------------------------------------ albumentations arm


def albumentations_rate(da: str, images: np.ndarray, repeats: int) -> float | None:
    """Images/s of a per-image loop over HWC uint8 ``images``; None if not available."""
    try:
        import albumentations as A
    except ImportError:
        return None
    ops = {
        "flip": [A.HorizontalFlip(p=0.5)],
        "crop+flip": [
            A.PadIfNeeded(40, 40, border_mode=0, fill=0),
            A.RandomCrop(32, 32),
            A.HorizontalFlip(p=0.5),
        ],
        "cutout": [
            A.CoarseDropout(
                num_holes_range=(1, 1), hole_height_range=(8, 8), hole_width_range=(8, 8),
                fill=0, p=1.0,
            )
        ],
    }
    if da not in ops:
        return None
    transform = A.Compose(ops[da])

    def one_batch() -> None:
        np.stack([transform(image=image)["image"] for image in images])

    return len(images) / median_seconds(one_batch, torch.device("cpu"), repeats, warmup=1)


# -------------------------------------------------------------------------------- kornia arm


def kornia_rate(da: str, images: torch.Tensor, repeats: int) -> float | None:
    """Images/s of kornia's batched op on uint8 ``[B, 3, H, W]``; None if not available."""
    try:
        import kornia.augmentation as K
        from kornia.augmentation.auto import AutoAugment
    except ImportError:
        return None
    labels = torch.arange(images.shape[0], device=images.device) % 100
    builders: dict[str, Callable[[], Callable[[torch.Tensor], object]]] = {
        "flip": lambda: K.RandomHorizontalFlip(p=0.5),
        "crop+flip": lambda: torch.nn.Sequential(
            K.RandomCrop((32, 32), padding=4), K.RandomHorizontalFlip(p=0.5)
        ),
        # kornia has no Cutout: an always-on 8x8 erasing (1/16 of the area, square) is closest.
        "cutout": lambda: K.RandomErasing(scale=(0.0625, 0.0625), ratio=(1.0, 1.0), p=1.0),
        "mixup": lambda: _with_labels(K.RandomMixUpV2(data_keys=["input", "class"]), labels),
        "cutmix": lambda: _with_labels(
            K.RandomCutMixV2(data_keys=["input", "class"], use_correct_lambda=True), labels
        ),
        "autoaugment": lambda: AutoAugment(policy="cifar10"),
    }
    if da not in builders:
        return None
    op = builders[da]()
    seconds = median_seconds(lambda: op(images.float() / 255), images.device, repeats, warmup=2)
    return images.shape[0] / seconds


def _with_labels(op: torch.nn.Module, labels: torch.Tensor) -> Callable[[torch.Tensor], object]:
    return lambda x: op(x, labels)


# ------------------------------------------------------------------------------------ driver


def main() -> None:
    """Parse the CLI, time every (DA, arm) pair, print and optionally write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (torchvision)")
    parser.add_argument(
        "--loader-images", type=int, default=4096, help="images per torchvision DataLoader pass"
    )
    parser.add_argument("--das", default=",".join(DAS), help="comma-separated DA specs")
    parser.add_argument("--skip", default="", help="comma-separated arms to skip")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads (0: torch's default); 1 avoids stalls on a shared, busy CPU",
    )
    parser.add_argument("--out", type=Path, help="path stem: writes STEM.csv and STEM.md")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch_cpu = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    batch_dev = batch_cpu.to(device)
    loader_images = np.random.default_rng(0).integers(
        0, 256, (args.loader_images, 32, 32, 3), dtype=np.uint8
    )
    hwc_batch = batch_cpu.permute(0, 2, 3, 1).contiguous().numpy()
    skip = set(filter(None, args.skip.split(",")))

    rows = []
    for da in args.das.split(","):
        rates: dict[str, float | None] = {}
        if "torchvision" not in skip:
            rates["torchvision"] = torchvision_rate(
                da, loader_images, args.batch, args.workers, max(1, args.repeats // 3)
            )
        if "augkd" not in skip:
            rates["augkd"] = augkd_rate(da, batch_dev, args.repeats)
        if "kornia" not in skip:
            rates["kornia"] = kornia_rate(da, batch_dev, args.repeats)
        if "albumentations" not in skip:
            rates["albumentations"] = albumentations_rate(da, hwc_batch, max(1, args.repeats // 3))
        reference = rates.get("torchvision")
        for arm, rate in rates.items():
            if rate is None or rate != rate:  # arm lacks this op
                continue
            arm_device = "cpu" if arm in ("torchvision", "albumentations") else device.type
            speedup = rate / reference if reference and reference == reference else float("nan")
            rows.append({"da": da, "arm": arm, "device": arm_device, "images_per_s": rate,
                         "speedup_vs_torchvision": speedup})
            print(f"{da:14s} {arm:15s} {arm_device:5s} {rate:14,.0f} img/s  x{speedup:.2f}",
                  flush=True)

    if args.out is not None:
        write_results(args, rows, device)


def write_results(args: argparse.Namespace, rows: list[dict], device: torch.device) -> None:
    """Write ``--out``.csv (one row per DA and arm) and ``--out``.md (the Markdown table)."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["batch", "repeats"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "batch": args.batch, "repeats": args.repeats})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"Batch {args.batch}, 32x32 uint8, median of {args.repeats} repeats; device {name}; "
        f"torchvision DataLoader with {args.workers} workers over {args.loader_images} images; "
        f"torch CPU threads: {torch.get_num_threads()}.",
        "",
        "| DA | arm | device | images/s | speed-up vs torchvision per-image |",
        "|---|---|---|---:|---:|",
    ]
    for row in rows:
        speedup = row["speedup_vs_torchvision"]
        speedup_text = "n/a" if speedup != speedup else f"{speedup:.2f}x"
        lines.append(
            f"| {row['da']} | {row['arm']} | {row['device']} | {row['images_per_s']:,.0f} "
            f"| {speedup_text} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
