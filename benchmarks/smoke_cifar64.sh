#!/usr/bin/env bash
# The CPU smoke of the beyond-CIFAR path on real images: the CIFAR-10 archive read as an
# image folder stored at 64 px (decoded once into the memory-mapped cache), a tv:resnet18
# teacher for 1 epoch on a 2,000-image subset, a tv:resnet18 student distilled with KD + cutmix
# and one with AT (features through torchvision's feature extractor), and a ranking of two
# DAs; the host-memory input path (data_on_device never) throughout.
# Usage: bash benchmarks/smoke_cifar64.sh [ARCHIVE]   (default ../shared/data/cifar10-jpeg.tar.xz)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE="${1:-../shared/data/cifar10-jpeg.tar.xz}"
OUT="${OUT:-runs/smoke_cifar64}"
rm -rf "$OUT"
DATA="imagefolder(size=64, train_subset=2000, data_on_device=never)"
COMMON=(--root "$ARCHIVE" --epochs 1 --batch-size 64 --device cpu --no-progress)
start=$SECONDS
python -m augkd.train teacher --model tv:resnet18 --dataset "$DATA" "${COMMON[@]}" --lr 0.01 \
    --out "$OUT/teacher"
echo "teacher done at $((SECONDS - start)) s"
python -m augkd.train student --teacher "$OUT/teacher" --model tv:resnet18 --aug cutmix \
    --agb-lambda 0.5 "${COMMON[@]}" --lr 0.01 --out "$OUT/student-kd-cutmix"
echo "KD student done at $((SECONDS - start)) s"
python -m augkd.train student --teacher "$OUT/teacher" --model tv:resnet18 --aug flip \
    --distill at --agb-lambda 0.5 "${COMMON[@]}" --lr 0.01 --out "$OUT/student-at-flip"
echo "AT student done at $((SECONDS - start)) s"
python -m augkd.rank --teacher "$OUT/teacher" --augs flip cutmix --epochs 1 --batch-size 64 \
    --group-size 8 --device cpu --no-progress --out "$OUT/rank"
echo "ranking done at $((SECONDS - start)) s"
