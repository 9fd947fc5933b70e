#!/usr/bin/env bash
# Every real labelled source that can be had offline from the package registries, as medglip
# manifests, and a recipe building them into one dataset (docs: README "Held-out accuracy"):
#   DEST/pyradiomics  CT lung1/lung2, MR brain1/brain2/breast1 with lesion masks (BSD-3; PyPI source tarball)
#   DEST/mni152       the MNI152 2009 T1 template with brain, grey- and white-matter masks (nilearn wheel, BSD-3)
#   DEST/itk_brain    ITK's T1 example brain with its skull-strip mask (Debian insighttoolkit5-examples, Apache-2.0)
#   DEST/recipe.yaml  the three sources (lung2 and brain2 stay in the test split: never trained on)
# Usage: scripts/fetch_training_data.sh DEST   (needs pip, apt-get download and dpkg-deb; about 45 MB)
set -euo pipefail
dest=${1:-data/train-sources}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
bash "$here/fetch_pyradiomics.sh" "$dest/pyradiomics"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" nilearn==0.14.1
(cd "$tmp" && unzip -q -o nilearn-0.14.1-*.whl 'nilearn/datasets/data/mni_icbm152_*' 'nilearn/LICENSE*' 2>/dev/null || \
  unzip -q -o nilearn-0.14.1-*.whl 'nilearn/datasets/data/mni_icbm152_*')
(cd "$tmp" && apt-get download -qq insighttoolkit5-examples 2>/dev/null && dpkg-deb -x insighttoolkit5-examples_*.deb itk)
python3 - "$tmp" "$dest" <<'PY'
import json, sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

tmp, dest = Path(sys.argv[1]), Path(sys.argv[2])
data = tmp / "nilearn" / "datasets" / "data"
mni = dest / "mni152"
mni.mkdir(parents=True, exist_ok=True)
t1 = nib.load(data / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
gm = np.asarray(nib.load(data / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").dataobj, np.float32)
wm = np.asarray(nib.load(data / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").dataobj, np.float32)
zoom = 0.5  # 1 mm → 2 mm: enough for 2D slices, a quarter of the slices to store
affine = t1.affine.copy()
affine[:3, :3] /= zoom
image = ndimage.zoom(np.asarray(t1.dataobj, np.float32), zoom, order=1)
tissue = np.zeros(image.shape, np.uint8)
g, w = ndimage.zoom(gm, zoom, order=1), ndimage.zoom(wm, zoom, order=1)
tissue[(g > 0.5) & (g >= w)] = 1
tissue[(w > 0.5) & (w > g)] = 2
brain = ndimage.binary_fill_holes(ndimage.binary_closing((g + w) > 0.5, iterations=2)).astype(np.uint8)
nib.save(nib.Nifti1Image(image.astype(np.float32), affine), mni / "mni152_t1.nii.gz")
nib.save(nib.Nifti1Image(tissue, affine), mni / "mni152_tissue.nii.gz")
nib.save(nib.Nifti1Image(brain, affine), mni / "mni152_brain.nii.gz")
(mni / "medglip_manifest.json").write_text(json.dumps({
    "medglip_manifest": 1, "name": "mni152", "modality": "MR",
    "license": "nilearn BSD-3-Clause; MNI ICBM152 2009 template: permissive (see nilearn)",
    "absent": ["brain tumor"],  # a healthy population template: no lesion anywhere
    "cases": [{"id": "mni152", "image": "mni152_t1.nii.gz", "label": ["mni152_brain.nii.gz", "mni152_tissue.nii.gz"],
               "labels": [{"1": "brain"}, {"1": "grey matter", "2": "white matter"}], "split": "train"}]}, indent=1))

itk = dest / "itk_brain"
itk.mkdir(parents=True, exist_ok=True)
src = tmp / "itk" / "usr" / "share" / "doc" / "insighttoolkit5-examples" / "examples" / "Data"
img = nib.load(src / "KmeansTest_T1UCharRaw.nii.gz")
strip = np.asarray(nib.load(src / "KmeansTest_T1RawSkullStrip.nii.gz").dataobj)
nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine), itk / "t1.nii.gz")
nib.save(nib.Nifti1Image((strip > 0).astype(np.uint8), img.affine), itk / "brain.nii.gz")
(itk / "medglip_manifest.json").write_text(json.dumps({
    "medglip_manifest": 1, "name": "itk_brain", "modality": "MR", "license": "Apache-2.0 (ITK examples)",
    "absent": ["brain tumor"],
    "cases": [{"id": "itk_t1", "image": "t1.nii.gz", "label": "brain.nii.gz", "labels": {"1": "brain"},
               "split": "train"}]}, indent=1))

(dest / "recipe.yaml").write_text("""recipe: 1
name: pyradiomics-mni-itk
settings: {negative_ratio: 0.5, split_ratios: [1, 0, 0]}
sources:
  - {id: pyradiomics, path: pyradiomics, layout: manifest, split: declared, licence: BSD-3-Clause}
  - {id: mni152, path: mni152, layout: manifest, split: train, licence: BSD-3-Clause (nilearn)}
  - {id: itk_brain, path: itk_brain, layout: manifest, split: train, licence: Apache-2.0}
""")
print(f"wrote {dest}/pyradiomics, mni152, itk_brain and recipe.yaml")
PY
