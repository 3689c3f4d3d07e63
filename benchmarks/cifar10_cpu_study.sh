#!/usr/bin/env bash
# The CPU-scale CIFAR-10 study of reports/cifar10-cpu/: sweeps in a row, each resumable
# (run the script again after a kill: finished jobs are skipped, a half-done run resumes).
#   main       experiments/cifar10_cpu.yaml: teacher, 9 DAs x 5 seeds, per-batch students + T. stddev
#   joint      the same students with one joint forward over [x; x~] (3 seeds), the two-forward ablation
#   per-image  per-image students + T. stddev, 5 seeds, on the main sweep's teacher
# Usage: bash benchmarks/cifar10_cpu_study.sh [STAGE ...]   (default: main joint)
#        bash benchmarks/cifar10_cpu_study.sh --per-image   (= main joint per-image)
# Every stage trains the shared teacher first if it is missing (runs/sweeps/cifar10_cpu/teachers).
# Then: python experiments/cifar10_cpu_report.py --main runs/sweeps/cifar10_cpu \
#   --joint runs/sweeps/cifar10_cpu_joint --per-image runs/sweeps/cifar10_cpu_per_image \
#   --out reports/cifar10-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then stages=(main joint); fi
if [ "${stages[0]}" = "--per-image" ]; then stages=(main joint per-image); fi
T=runs/sweeps/cifar10_cpu/teachers/resnet20
PAIR="pairs=[{teacher: resnet20, student: resnet8, teacher_run: $T}]"
SPEC=experiments/cifar10_cpu.yaml
date; echo "== teacher"
python -m augkd.sweep $SPEC --workers 1 --no-progress --teachers-only
for stage in "${stages[@]}"; do
  date; echo "== $stage"
  case "$stage" in
    main) python -m augkd.sweep $SPEC --workers 2 --no-progress ;;
    joint) python -m augkd.sweep $SPEC --workers 2 --no-progress --students-only \
      --set student.joint_forward=true 'grid.seed=[0,1,2]' "$PAIR" --out runs/sweeps/cifar10_cpu_joint ;;
    per-image) python -m augkd.sweep $SPEC --workers 2 --no-progress \
      --set 'grid.mode=[per-image]' 'tstddev.modes=[per-image]' "$PAIR" \
      --out runs/sweeps/cifar10_cpu_per_image ;;
    *) echo "unknown stage '$stage'; known: main, joint, per-image" >&2; exit 2 ;;
  esac
done
date; echo "== all done"
