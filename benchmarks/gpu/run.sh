#!/usr/bin/env bash
# The GPU items of the issues, one step per device call (each well under 10 minutes on an H100).
#
# Here, once:   mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.xz .data/
# On the GPU:   bash benchmarks/gpu/run.sh STEP        (carry: .data; results land in $OUT)
#
# Steps:
#   bench    CUDA tests (CPU/CUDA equivalence, no host sync), augmentation + KD-epoch benchmarks
#   teacher  wrn_40_2 teacher on the CIFAR-10 archive, 60 epochs (issue: >= 90 % top-1)
#   rank     T. stddev ranking of the nine DAs with that teacher, both DA modes (target <= 2 min)
#   kd       wrn_40_2 -> wrn_16_2, 30 epochs: CE only, manual 0.1/0.9, AGB with searched lambda
#   study    the CIFAR-10 correlation sweep (experiments/paper_cifar10.yaml, short schedule),
#            resumable: run it again (with .data/runs carried) until it reports nothing to do
#   long     the long-epoch ablation (experiments/long_epochs.yaml): identity and cutmix at
#            15 and 30 epochs, 3 seeds, resumable like study
#   distill  the distillers table at 32 px: the 14 methods x {manual, AGB} on wrn_40_2 -> wrn_16_2
#            and resnet56 -> resnet20 (teachers trained on demand, 30 epochs), 15-epoch
#            students, 8 sweep workers sharing the GPU; resumable like study
#   temp     seed 002's temperature study at 32 px (experiments/temperature/gpu.yaml: the
#            wrn_40_2 teacher, w2a1 and full-precision wrn_16_2 students), resumable
#   imagenet augkd's on-device input path vs a torchvision DataLoader on ImageNet-100-sized
#            data at 160 px, ResNet34 -> ResNet18 KD with cutmix (benchmarks/bench_imagenet.py)
#   agb      AGB's step against the manual balancer's (benchmarks/bench_agb.py): the four CIFAR
#            pairs at batch 64 and 256, bf16, interleaved rounds (a few minutes, no data needed)
#   quick    everything of the fidelity issue in one call of at most 9 minutes: the wrn_40_2
#            CIFAR-10 teacher (short schedule), the ranking in both modes, and a 9-DA x 3-seed
#            per-batch correlation study with N sweep workers sharing the GPU, plus the epoch
#            times at 1 and N workers. Sizes are variables (QUICK_*, below); the CPU smoke:
#              QUICK_TEACHER=resnet8 QUICK_STUDENT=resnet8 QUICK_RESIZE=8 QUICK_SUBSET=1000 \
#              QUICK_TEACHER_EPOCHS=1 QUICK_RANK_EPOCHS=1 QUICK_STUDENT_EPOCHS=1 \
#              QUICK_WORKERS=2 QUICK_SEEDS=[0] bash benchmarks/gpu/run.sh quick
#
# The GPU machines have torch, torchvision, scipy, pandas, seaborn and matplotlib but not kornia,
# albumentations or optuna, and reach no package index. No step here imports them (augkd imports
# them only for a kornia:/albumentations: DA spec and for augkd.tune). To run such specs there,
# carry their wheels in .whl/ (pip download --no-deps --only-binary=:all: --python-version 3.12
# --platform manylinux_2_28_x86_64 -d .whl kornia kornia_rs albumentations albucore ...): this
# script installs whatever .whl/ holds into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT" .data/runs
ARCHIVE=.data/cifar10-jpeg.tar.xz
CIFAR=(--dataset imagefolder --root "$ARCHIVE")
export AUGKD_CACHE=.data/cache
TEACHER=.data/runs/teacher-wrn_40_2-e60

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt" || true

# train ARGS... --out DIR: a run that continues (--resume) when a killed call left it half done
train() {
    local dir="${@: -1}"
    if [ -f "$dir/config.yaml" ]; then set -- "$@" --resume; fi
    python -m augkd.train "$@"
}

case "${1:?step: bench | teacher | rank | kd | study | long | distill | temp | imagenet | agb | quick}" in
bench)
    python -m pytest -q tests -k "cuda or device" 2>&1 | tee "$OUT/cuda_tests.txt"
    python benchmarks/bench_augment.py --device cuda --workers 8 --out "$OUT/augment_h100"
    python benchmarks/bench_train.py --device cuda --out "$OUT/train_h100"
    ;;
teacher)
    train teacher --model wrn_40_2 "${CIFAR[@]}" --epochs 60 --no-progress \
        --out "$TEACHER" 2>&1 | tee "$OUT/teacher.txt"
    cp "$TEACHER/metrics.jsonl" "$TEACHER/summary.json" "$OUT/"
    ;;
rank)
    { time python -m augkd.rank "${CIFAR[@]}" --teacher "$TEACHER" \
        --student wrn_16_2 --both-modes --no-progress --out .data/runs/rank-cifar10 ; } \
        2>&1 | tee "$OUT/rank.txt"
    for mode in per-image per-batch; do
        cp .data/runs/rank-cifar10/$mode/results.csv "$OUT/rank_${mode}.csv"
        cp .data/runs/rank-cifar10/$mode/summary.json "$OUT/rank_${mode}.json"
    done
    # the same ranking with bf16 teacher forwards: faster, and does it change the order?
    { time python -m augkd.rank "${CIFAR[@]}" --teacher "$TEACHER" --bf16 \
        --student wrn_16_2 --no-progress --out .data/runs/rank-cifar10-bf16 ; } \
        2>&1 | tee "$OUT/rank_bf16.txt"
    ;;
kd)
    common=(--model wrn_16_2 "${CIFAR[@]}" --epochs 30 --no-progress)
    # about 115 epochs in all (25 of them the AGB search): rerun the step if a call runs out
    train teacher "${common[@]}" --out .data/runs/kd-ce 2>&1 | tee "$OUT/kd.txt"
    train student "${common[@]}" --teacher "$TEACHER" --aug cutmix \
        --balancer manual --out .data/runs/kd-manual 2>&1 | tee -a "$OUT/kd.txt"
    train student "${common[@]}" --teacher "$TEACHER" --aug cutmix \
        --balancer agb --agb-search --out .data/runs/kd-agb 2>&1 | tee -a "$OUT/kd.txt"
    for run in ce manual agb; do cp .data/runs/kd-$run/summary.json "$OUT/kd_$run.json"; done
    cp .data/runs/kd-agb/agb_search.csv "$OUT/"
    ;;
study)
    python -m augkd.sweep experiments/paper_cifar10.yaml --no-progress \
        --set "dataset.root=$ARCHIVE" "pairs=[{teacher: wrn_40_2, student: wrn_16_2, teacher_run: $TEACHER}]" \
        'grid.epochs=[30]' teacher.epochs=60 'grid.balancer=[manual]' \
        --out .data/runs/study 2>&1 | tee "$OUT/study.log"
    cp .data/runs/study/results.csv "$OUT/study_results.csv"
    cp .data/runs/study/summary.csv "$OUT/study_summary.csv"
    ;;
long)
    python -m augkd.sweep experiments/long_epochs.yaml --no-progress \
        --set "dataset.root=$ARCHIVE" "pairs=[{teacher: wrn_40_2, student: wrn_16_2, teacher_run: $TEACHER}]" \
        'grid.epochs=[15, 30]' 'grid.aug=[identity, cutmix]' \
        --out .data/runs/long 2>&1 | tee "$OUT/long.log"
    cp .data/runs/long/results.csv "$OUT/long_results.csv"
    cp .data/runs/long/summary.csv "$OUT/long_summary.csv"
    ;;
distill)
    python -m augkd.sweep experiments/distillers_cpu.yaml --no-progress --workers 8 \
        --set "dataset.root=$ARCHIVE" 'dataset.options={}' teacher.epochs=30 \
        "pairs=[{teacher: wrn_40_2, student: wrn_16_2, teacher_run: $TEACHER}, {teacher: resnet56, student: resnet20}]" \
        'grid.distill=[kd, fitnet, at, sp, cc, vid, rkd, pkt, ft, nst, crd, dkd, mlkd, gt]' \
        'grid.seed=[0]' --out .data/runs/distill 2>&1 | tee "$OUT/distill.log"
    python experiments/distillers_report.py .data/runs/distill "$OUT/distill"
    ;;
temp)
    python experiments/temperature_study.py experiments/temperature/gpu.yaml --workers 8 \
        2>&1 | tee "$OUT/temperature.log"
    python experiments/temperature_report.py .data/runs/temperature "$OUT/temperature"
    ;;
imagenet)
    # augkd's device-resident input path against a torchvision DataLoader (JPEG files, 16
    # workers) on ResNet34 -> ResNet18 KD with cutmix, 126k synthetic images at 160 px
    # (ImageNet-100-sized); goal >= 3x the DataLoader's images/s. A few minutes, no data needed.
    python benchmarks/bench_imagenet.py --device cuda --out "$OUT/imagenet" \
        --data /tmp/bench_imagenet 2>&1 | tee "$OUT/imagenet.log"
    ;;
agb)
    python benchmarks/bench_agb.py --device cuda --steps 20 --rounds 5 --out "$OUT/agb_gpu" \
        2>&1 | tee "$OUT/agb.log"
    ;;
quick)
    T_MODEL="${QUICK_TEACHER:-wrn_40_2}" S_MODEL="${QUICK_STUDENT:-wrn_16_2}"
    WORKERS="${QUICK_WORKERS:-4}" SEEDS="${QUICK_SEEDS:-[0, 1, 2]}"
    OPTS=() SPEC_OPTS="{}"
    if [ -n "${QUICK_RESIZE:-}" ]; then OPTS+=(--resize "$QUICK_RESIZE"); fi
    if [ -n "${QUICK_SUBSET:-}" ]; then OPTS+=(--train-subset "$QUICK_SUBSET"); fi
    if [ -n "${QUICK_RESIZE:-}${QUICK_SUBSET:-}" ]; then
        SPEC_OPTS="{${QUICK_RESIZE:+resize: $QUICK_RESIZE}${QUICK_RESIZE:+${QUICK_SUBSET:+, }}${QUICK_SUBSET:+train_subset: $QUICK_SUBSET}}"
    fi
    QT=.data/runs/quick-teacher-$T_MODEL
    start=$SECONDS
    train teacher --model "$T_MODEL" "${CIFAR[@]}" "${OPTS[@]}" \
        --epochs "${QUICK_TEACHER_EPOCHS:-10}" --no-progress --out "$QT" 2>&1 | tee "$OUT/quick.log"
    echo "teacher done at $((SECONDS - start)) s" | tee -a "$OUT/quick.log"
    python -m augkd.rank "${CIFAR[@]}" "${OPTS[@]}" --teacher "$QT" --student "$S_MODEL" \
        --both-modes --epochs "${QUICK_RANK_EPOCHS:-2}" --scorer-epochs "${QUICK_STUDENT_EPOCHS:-4}" \
        --no-progress --out .data/runs/quick-rank 2>&1 | tee -a "$OUT/quick.log"
    echo "ranking done at $((SECONDS - start)) s" | tee -a "$OUT/quick.log"
    sweep=(experiments/cifar10_cpu.yaml --no-progress --set "dataset.root=$ARCHIVE"
           "dataset.options=$SPEC_OPTS" "pairs=[{teacher: $T_MODEL, student: $S_MODEL, teacher_run: $QT}]"
           "grid.epochs=[${QUICK_STUDENT_EPOCHS:-4}]" "tstddev.epochs=${QUICK_RANK_EPOCHS:-2}")
    # epoch time at 1 worker: one student alone
    python -m augkd.sweep "${sweep[@]}" 'grid.aug=[cutmix]' 'grid.seed=[0]' \
        --students-only --out .data/runs/quick-1worker 2>&1 | tee -a "$OUT/quick.log"
    python -m augkd.sweep "${sweep[@]}" "grid.seed=$SEEDS" --workers "$WORKERS" \
        --out .data/runs/quick-study 2>&1 | tee -a "$OUT/quick.log"
    echo "study done at $((SECONDS - start)) s" | tee -a "$OUT/quick.log"
    python benchmarks/worker_epoch_times.py .data/runs/quick-1worker .data/runs/quick-study \
        --workers "$WORKERS" | tee "$OUT/quick_epoch_times.md"
    cp .data/runs/quick-study/results.csv "$OUT/quick_results.csv"
    cp .data/runs/quick-study/summary.csv "$OUT/quick_summary.csv"
    for mode in per-image per-batch; do
        cp .data/runs/quick-rank/$mode/results.csv "$OUT/quick_rank_${mode}.csv"
    done
    cp .data/runs/quick-study/results/*/summary.json "$OUT/quick_correlation.json"
    ;;
*)
    echo "unknown step $1" >&2
    exit 2
    ;;
esac
