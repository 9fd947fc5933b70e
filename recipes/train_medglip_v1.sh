#!/usr/bin/env bash
# Train the model medglip ships, every stage resumable (run it again after a crash or a stop):
#   1. pyradiomics lung1 / brain1 / breast1 for training, lung2 / brain2 kept apart (never trained on)
#   2. medglip build recipes/medglip-v1.yaml  (patient-level train / val / test per source)
#   3. medglip train  (default preset, 256 px, text encoder frozen; resumes from its last checkpoint)
#   4. medglip calibrate  (per-phrase thresholds on the validation patients)
#   5. medglip source-report  (each source's test patients, measured once) + lung2 / brain2
#   6. medglip pack  (compact float16 weights into src/medglip/weights/medglip-v1)
# Usage: recipes/train_medglip_v1.sh          (CPU: ~2 h on 2 cores; a GPU is used when present)
# Settings (environment): WORK (default ../runs beside the repository), STEPS, BATCH, DEVICE, RECIPE,
# WORKERS, PACK=0 to skip packing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$repo/../runs}
STEPS=${STEPS:-2000}
BATCH=${BATCH:-8}
DEVICE=${DEVICE:-auto}
WORKERS=${WORKERS:-2}
RECIPE=${RECIPE:-$repo/recipes/medglip-v1.yaml}
name=$(basename "$RECIPE" .yaml)
data=$WORK/data-$name run=$WORK/run-$name
mkdir -p "$WORK"

# 1. the pyradiomics cases: three to train on, the two held-out patients apart
if [ ! -f "$WORK/pyradiomics/medglip_manifest.json" ]; then
  bash "$repo/scripts/fetch_pyradiomics.sh" "$WORK/pyradiomics"
fi
python3 "$repo/recipes/split_pyradiomics.py" "$WORK/pyradiomics" "$WORK/pyradiomics-train" "$WORK/pyradiomics-heldout"

# 2. the dataset (resumes case by case)
medglip build "$RECIPE" "$data" --workers "$WORKERS"

# 3. training (resumes from the last checkpoint; the schedule is fixed by --max-steps)
medglip train "$data" --out "$run" --preset default --image-size 256 --batch-size "$BATCH" --lr 2e-4 \
  --max-steps "$STEPS" --freeze text_encoder --coarse-phrases 0.5 --checkpoint-every 100 --device "$DEVICE" --resume

# 4. thresholds on the validation patients
medglip calibrate "$run" "$data" --out "$WORK/calibration-$name"

# 5. the test patients of every source, then the held-out cross-dataset patients
medglip source-report "$data" --checkpoint "$run" --out "$WORK/test-$name"
medglip build "$WORK/pyradiomics-heldout" "$WORK/heldout-data" --split 0,0,1 >/dev/null
medglip heldout "$WORK/heldout-data" --checkpoint "$run" --out "$WORK/heldout-$name" --masks auto

# 6. the compact model medglip ships
if [ "${PACK:-1}" = 1 ]; then
  medglip pack "$run" "$repo/src/medglip/weights/$name"
fi
