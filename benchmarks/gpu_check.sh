#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): train default and glip-t with bf16 (one process, then
# torchrun over NCCL), evaluate, and measure images/s and peak GPU memory against Grounding DINO,
# in under 8 minutes on a CUDA GPU; without a GPU (or with --smoke) a tiny CPU run of the same steps.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
