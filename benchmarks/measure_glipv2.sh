#!/usr/bin/env bash
# Issue 11's measurement: the held-out protocol with and without GLIPv2's contrastive loss (1) and MLM (2),
# every run with the mask head, then the mask head against LiteMedSAM given the true boxes.
#   benchmarks/measure_glipv2.sh OUT [DATASET] [PYRADIOMICS]
# DATASET: built by scripts/fetch_training_data.sh (train: pyradiomics lung1/brain1/breast1 + MNI152 + ITK brain;
# test: lung2, brain2 — never trained on). One torch thread, nice 10 (2 shared cores: more threads thrash).
set -euo pipefail
OUT=${1:?usage: measure_glipv2.sh OUT [DATASET] [PYRADIOMICS]}
D=${2:-/work/data/ds-all}
PYR=${3:-/work/data/pyradiomics}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1
COMMON=(--preset default --max-steps 200 --batch-size 4 --lr 3e-4 --image-size 192 --device cpu --masks head)
run() {
  local name=$1; shift
  [ -f "$OUT/$name/heldout/heldout.json" ] && return 0
  /usr/bin/time -f "$name lopo %e s" nice -n 10 "$PY" -m medglip lopo "$D" --out "$OUT/$name" "${COMMON[@]}" "$@"
  /usr/bin/time -f "$name heldout %e s" nice -n 10 "$PY" -m medglip heldout "$D" --checkpoint "$OUT/$name/final" \
    --out "$OUT/$name/heldout" --masks head
}
mkdir -p "$OUT"
run base                                                 # mask head only (no 1, no 2)
run both --contrastive-weight 1 --mlm-weight 0.5         # 1 + 2
run contrast --contrastive-weight 1                      # 1 only
run mlm --mlm-weight 0.5                                 # 2 only
for name in base both; do
  nice -n 10 "$PY" benchmarks/bench_mask_head.py --checkpoint "$OUT/$name/final" --data "$PYR" --cases lung2 brain2 \
    --json "$OUT/$name/mask_head_vs_medsam.json" | tee "$OUT/$name/mask_head_vs_medsam.md"
done
