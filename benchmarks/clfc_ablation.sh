#!/usr/bin/env bash
# The clfc ablation of BENCHMARKS.md: full clfc, Baseline-1 (reference=false), Baseline-2
# (simsiam=false) and the default trainer, all 2.5d, on the synthetic data at a fixed number of
# optimiser steps, folds 0 and 1; then each run's two validation folds are pooled and compared
# case by case with a paired Wilcoxon test (tumorseg compare).
#
#   bash benchmarks/clfc_ablation.sh [WORK_FOLDER]     (default benchmarks/_work/clfc)
set -euo pipefail
WORK=${1:-benchmarks/_work/clfc}
mkdir -p "$WORK"
export TUMORSEG_RAW=$WORK/raw TUMORSEG_PREPROCESSED=$WORK/pre TUMORSEG_RESULTS=$WORK/res
# One thread per process, two processes at a time: the machine has two cores.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ID=611
STEPS=(--epochs 8 --iterations-per-epoch 25 --val-iterations 5 --batch-size 4)
COMMON=(--device cpu -np 0)

[ -d "$WORK/raw/Dataset${ID}_Synth" ] || tumorseg synth --id $ID --cases 15 --healthy 8 --seed 1 --difficulty basic -np 2
[ -f "$WORK/pre/Dataset${ID}_Synth/tumorsegPlans.json" ] || tumorseg plan $ID -np 2 --device cpu
tumorseg train-normal $ID --epochs 6 --iterations-per-epoch 25 --device cpu --resume

run() {  # fold, trainer, settings...
  local fold=$1 trainer=$2; shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  tumorseg train $ID 2.5d "$fold" --trainer "$trainer" "${STEPS[@]}" "${COMMON[@]}" "${sets[@]}" \
    > "$WORK/train_${trainer}_${*:-full}_${fold}.log" 2>&1
}
for fold in 0 1; do
  run "$fold" clfc & run "$fold" clfc reference=false & wait
  run "$fold" clfc simsiam=false & run "$fold" default & wait
done

RES=$WORK/res/Dataset${ID}_Synth
for run_folder in "$RES"/*__tumorsegPlans__2.5d; do
  pooled=$WORK/pooled/$(basename "$run_folder")
  rm -rf "$pooled"; mkdir -p "$pooled"
  cp "$run_folder"/fold_0/validation/labels.json "$pooled"/
  cp "$run_folder"/fold_[01]/validation/*.nii.gz "$pooled"/
  tumorseg evaluate "$pooled" "$WORK/raw/Dataset${ID}_Synth/labelsTr" -d $ID > "$pooled.evaluate.txt"
done
