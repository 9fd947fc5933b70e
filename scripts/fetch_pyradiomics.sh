#!/usr/bin/env bash
# Download the five real pyradiomics 3.0.1 test cases (CT lung1/lung2, MR brain1/brain2, breast1)
# from PyPI (the source tarball carries them; BSD-3-Clause) and write a medglip manifest beside them.
# Usage: scripts/fetch_pyradiomics.sh DEST   (needs pip; about 35 MB)
set -euo pipefail
dest=${1:-data/pyradiomics}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$tmp" pyradiomics==3.0.1
tar xzf "$tmp"/pyradiomics-3.0.1.tar.gz -C "$tmp" pyradiomics-3.0.1/data pyradiomics-3.0.1/LICENSE.txt
mkdir -p "$dest"
cp "$tmp"/pyradiomics-3.0.1/data/*_image.nrrd "$tmp"/pyradiomics-3.0.1/data/*_label.nrrd "$dest"/
cp "$tmp"/pyradiomics-3.0.1/LICENSE.txt "$dest"/LICENSE.txt
cat > "$dest"/medglip_manifest.json <<'JSON'
{
  "medglip_manifest": 1,
  "name": "pyradiomics",
  "license": "BSD-3-Clause (LICENSE.txt); pyradiomics 3.0.1 test data",
  "cases": [
    {"id": "brain1", "image": "brain1_image.nrrd", "label": "brain1_label.nrrd", "modality": "MR", "labels": {"1": "brain tumor"}},
    {"id": "brain2", "image": "brain2_image.nrrd", "label": "brain2_label.nrrd", "modality": "MR", "labels": {"1": "brain tumor"}, "split": "test"},
    {"id": "breast1", "image": "breast1_image.nrrd", "label": "breast1_label.nrrd", "modality": "MR", "labels": {"1": "breast lesion"}},
    {"id": "lung1", "image": "lung1_image.nrrd", "label": "lung1_label.nrrd", "modality": "CT", "labels": {"1": "lung tumor"}},
    {"id": "lung2", "image": "lung2_image.nrrd", "label": "lung2_label.nrrd", "modality": "CT", "labels": {"1": "lung tumor"}, "split": "test"}
  ]
}
JSON
echo "wrote $(ls "$dest" | wc -l) files to $dest (lung2 and brain2 are in the test split)"
