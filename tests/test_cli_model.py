"""The model-side CLI end to end on the shipped real cases: train → ground (2D, volume) → eval."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import medglip
from medglip.dataset import BuildConfig, build
from medglip.model.run_checks import seal

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


def _cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "medglip", *args], capture_output=True, text=True, timeout=600)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ds = root / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), ds)
    _cli("train", str(ds), "--out", str(root / "run"), "--preset", "tiny", "--max-steps", "3", "--batch-size", "2",
         "--image-size", "64", "--device", "cpu", "--checkpoint-every", "2")
    return root


def test_train_writes_a_loadable_run(run):
    r = run / "run"
    for name in ("model.safetensors", "config.json", "train_config.json", "log.csv", "loss.png"):
        assert (r / name).exists(), name
    assert len((r / "log.csv").read_text().splitlines()) == 4  # header + 3 steps
    # refusing to overwrite an existing run without --resume, and resuming to more steps
    bad = _cli("train", str(run / "ds"), "--out", str(r), "--preset", "tiny", "--max-steps", "3", ok=False)
    assert bad.returncode != 0 and "resume" in (bad.stdout + bad.stderr).lower()
    _cli("train", str(run / "ds"), "--out", str(r), "--preset", "tiny", "--max-steps", "4", "--batch-size", "2",
         "--image-size", "64", "--device", "cpu", "--resume")
    assert len((r / "log.csv").read_text().splitlines()) == 5


def test_ground_image_json_and_overlay(run):
    test = json.loads((run / "ds" / "annotations" / "test.json").read_text())
    img = run / "ds" / "images" / test["images"][0]["file_name"]
    out = run / "g.json"
    _cli("ground", str(img), "-p", "brain tumor", "-p", "left kidney", "--checkpoint", str(run / "run"),
         "--modality", "MR", "--json", str(out), "--overlay", str(run / "g.png"), "--top-k", "2")
    res = json.loads(out.read_text())
    got = {g["phrase"]: g for g in res["groundings"]} if "groundings" in res else {g["phrase"]: g for g in res["phrases"]}
    assert set(got) == {"brain tumor", "left kidney"}
    for g in got.values():
        assert len(g["boxes"]) == len(g["scores"]) <= 2
        for x0, y0, x1, y1 in g["boxes"]:
            assert 0 <= x0 <= x1 <= 256 and 0 <= y0 <= y1 <= 256
    from PIL import Image

    assert Image.open(run / "g.png").size[0] >= 256


def test_ground_volume_gives_voxel_and_world_boxes(run):
    out = run / "v.json"
    floorless = run / "run-floorless"  # an untrained model is under the default 0.05 floor: lower it
    if not floorless.exists():
        shutil.copytree(run / "run", floorless)
        cfg = json.loads((floorless / "config.json").read_text())
        # a deliberate change of the settings: sealed again, as medglip calibrate does
        (floorless / "config.json").write_text(json.dumps(seal({**cfg, "score_threshold": 0.0})))
    _cli("ground", str(SAMPLES / "breast1_image.nrrd"), "-p", "breast lesion", "--checkpoint", str(floorless),
         "--modality", "MR", "--json", str(out), "--score-threshold", "0")
    res = json.loads(out.read_text())
    assert res["objects"], "an untrained model still scores above a threshold of 0: objects expected"
    calibrated = run / "v_default.json"  # by default, the calibrated threshold: an untrained model finds nothing
    _cli("ground", str(SAMPLES / "breast1_image.nrrd"), "-p", "breast lesion", "--checkpoint", str(run / "run"),
         "--modality", "MR", "--json", str(calibrated))
    assert json.loads(calibrated.read_text())["objects"] == []
    shape = res["shape"]
    for obj in res["objects"]:
        (i0, j0, k0), (i1, j1, k1) = obj["voxel_box"]
        assert 0 <= i0 <= i1 < shape[0] and 0 <= j0 <= j1 < shape[1] and 0 <= k0 <= k1 < shape[2]
        assert len(obj["world_box_mm"]) == 2 and obj["slices"][0] <= obj["slices"][1]


def test_eval_writes_metrics(run):
    out = run / "ev" / "m.json"
    _cli("eval", str(run / "ds"), "--checkpoint", str(run / "run"), "--json", str(out))
    m = json.loads(out.read_text())
    assert set(m["overall"]) >= {"AP", "AP50", "acc50", "miou", "absent_fp_rate"}
    assert "MR" in m["by_modality"] and (out.parent / "metrics.md").exists()


def test_bad_inputs_name_the_problem(run):
    r = _cli("ground", str(run / "missing.png"), "-p", "x", "--checkpoint", str(run / "run"), ok=False)
    assert r.returncode == 2 and "missing.png" in r.stderr
    r = _cli("ground", str(SAMPLES / "breast1_image.nrrd"), "-p", "x", "--checkpoint", str(run / "nope"), ok=False)
    assert r.returncode == 2 and "nope" in r.stderr
    r = _cli("ground", str(SAMPLES / "breast1_image.nrrd"), "-p", "x", "--checkpoint", str(run / "run"),
             "--modality", "PET", ok=False)
    assert r.returncode == 2 and "PET" in r.stderr


def test_train_sampling_weights_from_the_cli(run):
    images = json.loads((run / "ds" / "annotations" / "train.json").read_text())["images"]
    source = images[0]["source"]
    r = run / "run-weighted"
    _cli("train", str(run / "ds"), "--out", str(r), "--preset", "tiny", "--max-steps", "1", "--batch-size", "2",
         "--image-size", "64", "--device", "cpu", "--source-weight", f"{source}=2", "--modality-weight", "MR=0.5",
         "--freeze", "image_backbones")
    saved = json.loads((r / "train_config.json").read_text())["config"]
    assert saved["source_weights"] == [[source, 2.0]] and saved["modality_weights"] == [["MR", 0.5]]
    assert saved["freeze"] == ["image_backbones"]
    bad = _cli("train", str(run / "ds"), "--out", str(run / "w4"), "--preset", "tiny", "--max-steps", "1",
               "--freeze", "backbone", ok=False)
    assert bad.returncode != 0 and "'backbone'" in bad.stderr and "image_backbones" in bad.stderr
    bad = _cli("train", str(run / "ds"), "--out", str(run / "w2"), "--preset", "tiny", "--max-steps", "1",
               "--source-weight", "no-such-source=2", ok=False)
    assert bad.returncode != 0 and "no-such-source" in bad.stderr and source in bad.stderr
    bad = _cli("train", str(run / "ds"), "--out", str(run / "w3"), "--preset", "tiny", "--max-steps", "1",
               "--modality-weight", "MR=-1", ok=False)
    assert bad.returncode != 0 and "MR=-1" in bad.stderr
