#!/usr/bin/env bash
# The CPU-scale CIFAR-10 study of reports/cifar10-cpu/: three sweeps in a row, each resumable
# (run the script again after a kill: finished jobs are skipped, a half-done run resumes).
#   1. experiments/cifar10_cpu.yaml: teacher, 9 DAs x 5 seeds, per-batch students + T. stddev
#   2. the same students with one joint forward over [x; x~] (3 seeds), the two-forward ablation
#   3. with --per-image: per-image students + T. stddev (3 seeds); not part of the committed
#      report (the 2-core machine's time budget ran out), about 45 more minutes
# Then: python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \
#   --joint runs/sweeps/cifar10_cpu_joint --per-image runs/sweeps/cifar10_cpu_per_image \
#   --out reports/cifar10-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
T=runs/sweeps/cifar10_cpu/teachers/resnet20
PAIR="pairs=[{teacher: resnet20, student: resnet8, teacher_run: $T}]"
date; echo "== main (per-batch, 5 seeds)"
python -m augkd.sweep experiments/cifar10_cpu.yaml --workers 2 --no-progress
date; echo "== joint forward ablation (per-batch, 3 seeds)"
python -m augkd.sweep experiments/cifar10_cpu.yaml --workers 2 --no-progress --students-only \
  --set student.joint_forward=true 'grid.seed=[0,1,2]' "$PAIR" --out runs/sweeps/cifar10_cpu_joint
if [ "${1:-}" = "--per-image" ]; then
date; echo "== per-image (3 seeds)"
python -m augkd.sweep experiments/cifar10_cpu.yaml --workers 2 --no-progress \
  --set 'grid.mode=[per-image]' 'tstddev.modes=[per-image]' 'grid.seed=[0,1,2]' "$PAIR" \
  --out runs/sweeps/cifar10_cpu_per_image
fi
date; echo "== all done"
