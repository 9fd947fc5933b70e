"""The service's ``outputs`` field: NIfTI label map, DICOM-SEG, SR, PNG label image and the volume as NIfTI,
base64 in the JSON answer (documented in the OpenAPI schema); bad requests are 422 naming the field."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

import medglip
from medglip.export import export_volume
from medglip.io import read_image
from medglip.serve import create_app


SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


@pytest.fixture(scope="module")
def env(brain1, one_torch_thread):
    g = brain1["grounder"]
    return {"root": brain1["root"], "zip": brain1["zip"].read_bytes(), "files": brain1["files"], "grounder": g,
            "client": TestClient(create_app(g))}


def _post(env, path, data, name, content):
    return env["client"].post(path, data=data, files={"file": (name, content)})


def _file(js, name) -> bytes:
    return base64.b64decode(js["files"][name]["base64"])


def test_a_dicom_series_gives_the_label_map_seg_and_sr_like_the_python_api(env):
    r = _post(env, "/v1/ground-volume", {"phrases": "brain tumor, brain", "outputs": "nifti,seg,sr"},
              "brain1.zip", env["zip"])
    assert r.status_code == 200, r.text
    js = r.json()
    assert set(js["files"]) == {"labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"}
    assert js["files"]["seg.dcm"]["media_type"] == "application/dicom"
    assert js["files"]["labels.nii.gz"]["bytes"] == len(_file(js, "labels.nii.gz"))
    assert js["labels"] == json.loads(_file(js, "labels.json")) and js["labels"]["source"] == "brain1.zip"
    want = export_volume(env["grounder"].ground_volume(env["root"] / "series", ["brain tumor", "brain"], masks=True))
    strip = lambda e: {k: v for k, v in e.items() if k != "tracking_uid"}  # noqa: E731 - new UIDs each time
    assert [strip(e) for e in js["labels"]["labels"]] == [strip(e) for e in want.labels["labels"]]
    labels = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(_file(js, "labels.nii.gz"))).dataobj)
    assert np.array_equal(labels, np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(want.files["labels.nii.gz"])).dataobj))
    seg = pydicom.dcmread(io.BytesIO(_file(js, "seg.dcm")))
    src = pydicom.dcmread(str(env["files"][0]), stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert seg.StudyInstanceUID == src.StudyInstanceUID and len(seg.SegmentSequence) == len(js["labels"]["labels"])
    sr = pydicom.dcmread(io.BytesIO(_file(js, "sr.dcm")))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert js["notes"] and all("coded as its kind" in n for n in js["notes"])


def test_the_volume_alone_needs_no_masks_and_lies_on_the_inputs_grid(env):
    r = _post(env, "/v1/ground-volume", {"phrases": "brain tumor", "outputs": "volume"}, "brain1_image.nrrd",
              (SAMPLES / "brain1_image.nrrd").read_bytes())
    assert r.status_code == 200, r.text
    js = r.json()
    assert set(js["files"]) == {"volume.nii.gz"} and js["labels"] is None
    vol = nib.Nifti1Image.from_bytes(gzip.decompress(_file(js, "volume.nii.gz")))
    img = read_image(SAMPLES / "brain1_image.nrrd")
    assert np.array_equal(np.asarray(vol.dataobj), img.array)
    assert np.allclose(vol.affine, np.diag([-1, -1, 1, 1]) @ img.geometry.affine, atol=1e-4)


def test_2d_dicom_outputs_and_bad_requests(env):
    one = env["files"][12].read_bytes()
    r = _post(env, "/v1/ground", {"phrases": "brain", "top_k": "2", "outputs": "png,seg"}, "slice.dcm", one)
    assert r.status_code == 200, r.text
    assert set(r.json()["files"]) == {"masks.png", "labels.json", "seg.dcm"}
    nrrd = (SAMPLES / "brain1_image.nrrd").read_bytes()
    bad = [("/v1/ground-volume", {"phrases": "brain", "outputs": "nifti,mesh"}, "b.nrrd", nrrd, "outputs: unknown output"),
           ("/v1/ground-volume", {"phrases": "brain", "outputs": "seg"}, "b.nrrd", nrrd, "'seg' needs DICOM input"),
           ("/v1/ground", {"phrases": "brain", "outputs": "volume"}, "slice.dcm", one, "'volume' is an output of volumes")]
    for path, data, name, content, message in bad:
        r = _post(env, path, data, name, content)
        assert r.status_code == 422 and message in r.json()["detail"], r.text
        assert "/tmp" not in r.json()["detail"]  # the upload's name, never the server's path


def test_openapi_documents_the_outputs(env):
    schema = env["client"].get("/openapi.json").json()["components"]["schemas"]
    for body in ("Body_ground_v1_ground_post", "Body_ground_volume_v1_ground_volume_post"):
        text = schema[body]["properties"]["outputs"]["description"]
        assert "labels.nii.gz" in text and "seg.dcm" in text and "base64" in text


def test_exports_run_on_the_services_bounded_pool(env, monkeypatch):
    """Writing the files is blocking work: it runs on the service's pool (bounded, under the request's
    deadline), never on an unbounded default thread pool or the event loop."""
    import threading

    import medglip.serve.exports as exports

    threads: list[str] = []
    real = exports.export_result

    def spy(*a, **k):
        threads.append(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(exports, "export_result", spy)
    r = _post(env, "/v1/ground", {"phrases": "brain", "top_k": "1", "outputs": "png"}, "slice.dcm",
              env["files"][12].read_bytes())
    assert r.status_code == 200, r.text
    assert len(threads) == 1 and threads[0].startswith("medglip-io-"), threads
