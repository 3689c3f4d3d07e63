#!/usr/bin/env bash
# Study b of the evidence issue (experiments/second_pair_cpu.yaml), resumable: run it again
# after a kill. First the wrn_16_2 teacher on all 50,000 CIFAR-10 training images at 16 px
# (15 epochs), then the sweep of wrn_16_1 students on the 5,000-image subset.
# Usage: bash benchmarks/second_pair_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T=runs/teachers/cifar10-cpu-wrn_16_2-full
ROOT=../shared/data/cifar10-jpeg.tar.xz
date; echo "== teacher"
if [ ! -f "$T/model.pt" ]; then
  resume=()
  if [ -f "$T/config.yaml" ]; then resume=(--resume); fi
  python -m augkd.train teacher --model wrn_16_2 --dataset imagefolder --root "$ROOT" \
    --resize 16 --epochs 15 --device cpu --no-progress --out "$T" "${resume[@]}"
fi
date; echo "== students and T. stddev"
python -m augkd.sweep experiments/second_pair_cpu.yaml --workers 2 --no-progress
date; echo "== all done"
