"""The model medglip ships: it loads from the package alone (weights verified by SHA-256 against the
registry packages' pretrained weights), knows what it was trained on, and finds the tumour of a held-out
LGG test patient shipped in samples/heldout (a patient it never trained on)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import medglip
from medglip.core.boxes import box_iou
from medglip.infer import Grounder
from medglip.model.checkpoint import CheckpointError, load_checkpoint
from medglip.model.shipped import SHIPPED_DIR

LGG = Path(medglip.__file__).parent / "samples" / "heldout" / "lgg-mri" / "kaggle_3m" / "TCGA_CS_4942_19970222"


@pytest.fixture(scope="module")
def shipped() -> Grounder:
    return Grounder.from_pretrained(refiner=None)


def test_the_shipped_model_is_compact_verified_and_calibrated(shipped):
    cfg = json.loads((SHIPPED_DIR / "config.json").read_text())
    assert cfg["compact"]["format"] == 1 and cfg["sha256"]["model.safetensors"]
    assert (SHIPPED_DIR / "model.safetensors").stat().st_size < 60e6
    assert (SHIPPED_DIR / "MODEL_CARD.md").is_file()
    assert shipped.config.finding_thresholds, "no calibrated thresholds"
    assert {"MR", "CT", "DERM"} <= set(shipped.trained_on)
    assert "brain tumor" in shipped.trained_on["MR"] and "lower-grade glioma" in shipped.trained_on["MR"]
    assert shipped.untrained(["brain tumor"], "MR") == ()
    assert shipped.untrained(["liver"], "MR") and shipped.untrained(["brain tumor"], "US")


def test_a_damaged_copy_of_the_shipped_weights_is_refused(tmp_path):
    copy = Path(shutil.copytree(SHIPPED_DIR, tmp_path / "copy"))
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        load_checkpoint(copy)


def test_it_finds_the_tumour_of_a_held_out_patient(shipped):
    from medglip.sources import list_cases, load_case

    refs = list_cases(LGG.parent.parent, layout="lgg")
    assert len(refs) == 8
    hits, tumour, false_alarms, free = 0, 0, 0, 0
    for ref in refs:
        case = load_case(ref)
        truth = case.labels[0].array > 0
        res = shipped.ground_one(case.image, ["brain tumor"], modality="MR", top_k=1)  # calibrated threshold
        boxes = res["brain tumor"].boxes
        if not truth.any():  # a tumour-free slice of the patient
            free += 1
            false_alarms += len(boxes) > 0
            continue
        tumour += 1
        ys, xs = np.nonzero(truth)
        gt = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        hits += bool(len(boxes)) and float(box_iou(boxes[:1], gt).max()) >= 0.5
    assert tumour >= 5 and hits >= tumour - 2, f"found the tumour on {hits} of {tumour} held-out slices"
    assert false_alarms == 0, f"a 'brain tumor' box on {false_alarms} of {free} tumour-free slices"
