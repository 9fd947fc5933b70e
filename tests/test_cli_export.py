"""``medglip ground --out`` and ``medglip report --masks``: the masks as files beside the results (in process,
with the oracle grounder of tests/fakes.py standing in for the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import medglip
from medglip.cli import app
from medglip.infer import Grounder

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


@pytest.fixture(scope="module")
def setup(brain1, tmp_path_factory, one_torch_thread):
    return {"root": tmp_path_factory.mktemp("cli_export"), "series": brain1["series"], "grounder": brain1["grounder"]}


@pytest.fixture
def cli(setup, monkeypatch):
    monkeypatch.setattr(Grounder, "from_pretrained", classmethod(lambda cls, run, **kw: setup["grounder"]))
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        r = runner.invoke(app, list(args))
        assert r.exit_code == code, r.output + repr(r.exception)
        return r
    return run


def test_ground_out_writes_the_label_map_seg_and_sr_of_a_series(setup, cli):
    out = setup["root"] / "ground"
    r = cli("ground", str(setup["series"]), "-p", "brain tumor", "-p", "brain", "--checkpoint",
            str(setup["root"] / "run"), "--out", str(out), "--json", str(setup["root"] / "g.json"))
    assert {p.name for p in out.iterdir()} == {"labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"}
    side = json.loads((out / "labels.json").read_text())
    payload = json.loads((setup["root"] / "g.json").read_text())
    assert [e["phrase"] for e in side["labels"]] == [o["phrase"] for o in payload["objects"]]
    assert set(payload["files"]) == {"labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"} and "wrote" in r.output
    assert "coded as its kind (Tumor) in the Brain" in " ".join(r.output.split())  # the coding notes are shown


def test_report_masks_writes_the_findings_masks_beside_the_report(setup, cli):
    import nibabel as nib

    out = setup["root"] / "report"
    cli("report", str(setup["series"]), "-f", "brain tumor", "-f", "brain", "--checkpoint",
        str(setup["root"] / "run"), "--masks", "auto", "--out", str(out))
    names = {p.name for p in out.iterdir()}
    assert names == {"report.md", "report.json", "report_overlay.png", "labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"}
    rep = json.loads((out / "report.json").read_text())
    side = json.loads((out / "labels.json").read_text())
    findings = rep["context"]["findings"]
    assert [(e["label"], e["phrase"]) for e in side["labels"]] == [(f["number"], f["phrase"]) for f in findings]
    assert [round(e["score"], 4) for e in side["labels"]] == [round(f["score"], 4) for f in findings]
    assert rep["exports"]["files"] == sorted(["labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"])
    labels = np.asarray(nib.load(str(out / "labels.nii.gz")).dataobj)
    assert sorted(np.unique(labels)[1:]) == [e["label"] for e in side["labels"] if e["voxels_in_label_map"]]


def test_2d_dicom_out_and_bad_outputs(setup, cli):
    out = setup["root"] / "slice"
    one = sorted(setup["series"].iterdir())[12]
    cli("ground", str(one), "-p", "brain", "--checkpoint", str(setup["root"] / "run"), "--top-k", "2",
        "--out", str(out))
    assert {p.name for p in out.iterdir()} == {"masks.png", "labels.json", "seg.dcm"}
    r = cli("ground", str(SAMPLES / "brain1_image.nrrd"), "-p", "brain tumor", "--checkpoint",
            str(setup["root"] / "run"), "--out", str(setup["root"] / "bad"), "--outputs", "nifti,seg", code=2)
    assert "'seg' needs DICOM input" in " ".join(r.output.split()) and not (setup["root"] / "bad").exists()
