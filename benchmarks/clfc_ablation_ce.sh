#!/usr/bin/env bash
# The remedy check of the clfc ablation: full clfc and Baseline-1 with Dice + BCE
# (--set ce_weight=1) instead of the paper's Dice-only loss, fold 0, the same budget, data and
# normal model as benchmarks/clfc_ablation.sh (run that first). Each run's fold-0 validation
# is then scored with tumorseg evaluate next to the Dice-only runs of the same fold.
#
#   bash benchmarks/clfc_ablation_ce.sh [WORK_FOLDER]     (default benchmarks/_work/clfc)
set -euo pipefail
WORK=${1:-benchmarks/_work/clfc}
export TUMORSEG_RAW=$WORK/raw TUMORSEG_PREPROCESSED=$WORK/pre TUMORSEG_RESULTS=$WORK/res
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ID=611
STEPS=(--epochs 8 --iterations-per-epoch 25 --val-iterations 5 --batch-size 4)
for extra in ce_weight=1 "ce_weight=1 reference=false"; do
  sets=()
  for s in $extra; do sets+=(--set "$s"); done
  name=$(echo "$extra" | tr ' ' '_')
  tumorseg train $ID 2.5d 0 --trainer clfc "${STEPS[@]}" --device cpu -np 0 "${sets[@]}" \
    > "$WORK/train_${name}_0.log" 2>&1 &
done
wait
for run_folder in "$WORK"/res/Dataset${ID}_Synth/*__tumorsegPlans__2.5d; do
  [ -f "$run_folder/fold_0/validation/labels.json" ] || continue
  scored=$WORK/fold0/$(basename "$run_folder")
  rm -rf "$scored"; mkdir -p "$scored"
  cp "$run_folder"/fold_0/validation/labels.json "$run_folder"/fold_0/validation/*.nii.gz "$scored"/
  tumorseg evaluate "$scored" "$WORK/raw/Dataset${ID}_Synth/labelsTr" -d $ID > "$scored.evaluate.txt"
done
