#!/usr/bin/env bash
# The CPU-scale studies of the evidence issue (reports/*-cpu), in a row, each resumable: run the
# script again after a kill and finished jobs are skipped, a half-done run resumes.
#   per-image  T. stddev per image for reports/cifar10-cpu-per-image (its students are done)
#   c          experiments/kd_cmp_vs_crd_cpu.yaml   KD/CRD x crop+flip/cutmixpick-t, 5 seeds
#   d          experiments/pick_any_cpu.yaml        pick(DA) vs DA for 3 DAs, 5 seeds
#   a          experiments/long_epochs_cpu.yaml     4 DAs x 1/2/4/8 x 4 epochs, 3 seeds
#   b          experiments/second_pair_cpu.yaml     wrn_16_2 -> wrn_16_1, 9 DAs x 5 seeds (its teacher first)
#   main       the per-batch main sweep again on the same (61.55 %) teacher as the others
# Usage: bash benchmarks/evidence_studies.sh [STAGE ...]   (default: per-image c d a main)
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then stages=(per-image c d a main); fi
for stage in "${stages[@]}"; do
  date; echo "== $stage"
  case "$stage" in
    per-image|main) bash benchmarks/cifar10_cpu_study.sh "$stage" ;;
    c) python -m augkd.sweep experiments/kd_cmp_vs_crd_cpu.yaml --workers 2 --no-progress ;;
    d) python -m augkd.sweep experiments/pick_any_cpu.yaml --workers 2 --no-progress ;;
    a) python -m augkd.sweep experiments/long_epochs_cpu.yaml --workers 2 --no-progress ;;
    b) bash benchmarks/second_pair_study.sh ;;
    *) echo "unknown stage '$stage'; known: per-image, c, d, a, b, main" >&2; exit 2 ;;
  esac
done
date; echo "== all done"
