#!/usr/bin/env bash
# The paper's setting of the clfc ablation: whole tumour only (--set regions=whole_tumor),
# full / Baseline-2 / Baseline-1 on fold 0, the same budget and normal model as
# benchmarks/clfc_ablation.sh (run that first: it makes the data and the normal model).
set -euo pipefail
WORK=${1:-benchmarks/_work/clfc}
export TUMORSEG_RAW=$WORK/raw TUMORSEG_PREPROCESSED=$WORK/pre TUMORSEG_RESULTS=$WORK/res
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ID=611
STEPS=(--epochs 8 --iterations-per-epoch 25 --val-iterations 5 --batch-size 4)
for extra in reference=false simsiam=false ""; do
  sets=(--set regions=whole_tumor)
  [ -n "$extra" ] && sets+=(--set "$extra")
  tumorseg train $ID 2.5d 0 --trainer clfc "${STEPS[@]}" --device cpu -np 0 "${sets[@]}" \
    > "$WORK/train_wt_${extra:-full}_0.log" 2>&1
done
