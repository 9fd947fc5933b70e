"""The HTTP service on a tiny random checkpoint: endpoints on real files, batching, failures, limits, fuzz."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from medglip.context import result_json
from medglip.errors import MedglipError
from medglip.serve import Batcher, ServerBusy, ServiceConfig, create_app
from fakes import tiny_grounder

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medglip" / "samples" / "pyradiomics"
BRAIN = SAMPLES / "brain1_image.nrrd"
CT_SMALL = get_testdata_file("CT_small.dcm")


class Gated:
    """Wraps a Grounder: records the images per ``ground`` call, can hold the worker, can fail."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def ground(self, images, phrases, **kw):
        self.calls.append(len(images) if isinstance(images, list) else 1)
        self.entered.set()
        assert self.gate.wait(30), "test gate never opened"
        if "boom" in phrases:
            raise RuntimeError("simulated bug")
        return self.inner.ground(images, phrases, **kw)


@pytest.fixture(scope="module")
def grounder(tmp_path_factory, one_torch_thread):
    return tiny_grounder(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def client(grounder):
    with TestClient(create_app(grounder)) as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real inputs on disk: a PNG, a one-slice NIfTI, a zip of a 3-slice DICOM series."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((90, 140)) * 255).astype(np.uint8)).save(d / "scan.png")
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image((rng.random((64, 48, 1)) * 1000).astype(np.int16), affine), str(d / "slice.nii.gz"))
    with zipfile.ZipFile(d / "series.zip", "w") as zf:
        for k in range(3):
            ds = pydicom.dcmread(CT_SMALL)
            ds.ImagePositionPatient = [-158.0, -179.0, -75.0 + 5.0 * k]
            ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k + 1}"
            ds.InstanceNumber = k + 1
            buf = io.BytesIO()
            ds.save_as(buf)
            zf.writestr(f"series/slice{k}.dcm", buf.getvalue())
    return {"png": d / "scan.png", "nii": d / "slice.nii.gz", "zip": d / "series.zip"}


def post(client, path, data, file_path=None, *, name=None, content=None):
    body = content if content is not None else Path(file_path).read_bytes()
    return client.post(path, data=data, files={"file": (name or Path(file_path or "x").name, body)})


def without_source(js):
    return {k: v for k, v in js.items() if k not in ("source", "overlay_png")}


def detail(r):
    return r.json()["detail"]


# ---------------------------------------------------------------------------------- endpoints
def test_ground_png_equals_the_grounder_and_draws_an_overlay(client, grounder, files):
    data = {"phrases": '["liver", "left kidney"]', "modality": "CT", "top_k": "4", "score_threshold": "0.01",
            "masks": "true", "overlay": "true"}
    r = post(client, "/v1/ground", data, files["png"])
    assert r.status_code == 200, r.text
    js = r.json()
    want = result_json(grounder.ground_one(str(files["png"]), ["liver", "left kidney"], modality="CT", top_k=4,
                                           score_threshold=0.01, masks=True))  # with the findings every surface shows
    assert [f["id"] for f in js["findings"]] == [f"F{i}" for i in range(1, 9)]  # 4 boxes of each phrase
    assert without_source(js) == without_source(json.loads(json.dumps(want)))
    assert js["source"] == "scan.png" and len(js["phrases"][0]["boxes"]) == 4 and "masks" in js["phrases"][0]
    overlay = Image.open(io.BytesIO(base64.b64decode(js["overlay_png"])))
    assert overlay.mode == "RGB" and overlay.width >= 140


@pytest.mark.parametrize("phrases", ["liver, left kidney", '["liver","left kidney"]', ["liver", "left kidney"]])
def test_phrases_as_json_comma_list_or_repeated_field(client, files, phrases):
    r = post(client, "/v1/ground", {"phrases": phrases, "modality": "MR"}, files["png"])
    assert r.status_code == 200, r.text
    assert [p["phrase"] for p in r.json()["phrases"]] == ["liver", "left kidney"]


def test_ground_dicom_uses_its_modality_tag(client, grounder):
    r = post(client, "/v1/ground", {"phrases": "liver", "top_k": "3"}, CT_SMALL)
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["modality"] == "CT" and js["modality_source"] == "metadata" and js["image_size"] == [128, 128]
    want = result_json(grounder.ground_one(CT_SMALL, ["liver"], top_k=3))
    assert without_source(js) == without_source(json.loads(json.dumps(want)))


def test_ground_one_slice_nifti_keeps_its_world_mapping(client, grounder, files):
    r = post(client, "/v1/ground", {"phrases": "brain tumor", "modality": "MR", "top_k": "2"}, files["nii"])
    assert r.status_code == 200, r.text
    want = json.loads(json.dumps(result_json(grounder.ground_one(str(files["nii"]), ["brain tumor"], modality="MR", top_k=2))))
    assert without_source(r.json()) == without_source(want) and "pixel_to_world" in r.json()


def test_ground_volume_nrrd_equals_the_grounder(client, grounder):
    r = post(client, "/v1/ground-volume", {"phrases": "brain tumor", "modality": "MR", "score_threshold": "0.05"}, BRAIN)
    assert r.status_code == 200, r.text
    want = json.loads(json.dumps(result_json(grounder.ground_volume(str(BRAIN), ["brain tumor"], modality="MR",
                                                                    score_threshold=0.05))))
    assert r.json()["findings"] and [f["id"] for f in r.json()["findings"]] == [f"F{i + 1}" for i in range(len(want["objects"]))]
    assert without_source(r.json()) == without_source(want)
    assert r.json()["source"] == "brain1_image.nrrd" and r.json()["shape"] == [256, 256, 25]


def test_ground_volume_takes_a_zip_of_a_dicom_series_and_a_plane(client, files):
    r = post(client, "/v1/ground-volume", {"phrases": "liver", "plane": "coronal"}, files["zip"])
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["shape"] == [128, 128, 3] and js["plane"] == "coronal" and js["modality"] == "CT"


def test_2d_and_3d_inputs_are_sent_to_the_right_endpoint(client, files):
    r = post(client, "/v1/ground", {"phrases": "liver"}, BRAIN)
    assert r.status_code == 422 and "/v1/ground-volume" in detail(r) and "brain1_image.nrrd" in detail(r)
    r = post(client, "/v1/ground-volume", {"phrases": "liver"}, files["png"])
    assert r.status_code == 422 and "/v1/ground" in detail(r) and "scan.png" in detail(r)
    r = post(client, "/v1/ground", {"phrases": "liver"}, files["zip"])
    assert r.status_code == 415 and "zip" in detail(r)


def test_healthz_openapi_and_the_page(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"]["preset"] == "tiny" and h["model"]["image_size"] == 128
    assert {"requests", "batches", "batched_images", "queue_depth"} <= set(h["counters"])
    schema = client.get("/openapi.json").json()
    assert {"/v1/ground", "/v1/ground-volume", "/v1/vqa", "/v1/report", "/healthz"} <= set(schema["paths"])
    form = schema["components"]["schemas"]["Body_ground_v1_ground_post"]["properties"]
    assert all(form[f].get("description") for f in ("file", "phrases", "modality", "masks", "score_threshold", "top_k"))
    page = client.get("/")
    assert page.status_code == 200 and 'id="ground-btn"' in page.text and "default-src 'self'" in page.headers[
        "content-security-policy"]
    for f in ("app.js", "style.css"):
        assert client.get(f"/static/{f}").status_code == 200
        text = client.get(f"/static/{f}").text
        assert "http://" not in text and "https://" not in text  # nothing from the internet



def test_a_multi_frame_dicom_is_a_volume_everywhere(client):
    emri = get_testdata_file("emri_small.dcm")  # 10 frames of 64 x 64 MR
    r = post(client, "/v1/ground-volume", {"phrases": "brain tumor"}, emri)
    assert r.status_code == 200 and r.json()["shape"] == [64, 64, 10] and r.json()["modality"] == "MR", r.text
    r = post(client, "/v1/vqa", {"question": "Is there a brain tumor?"}, emri)
    assert r.status_code == 200 and r.json()["context"]["volume"]["n_slices"] == 10, r.text
    r = post(client, "/v1/report", {"findings": "brain tumor"}, emri)
    assert r.status_code == 200 and "emri_small.dcm" in r.json()["markdown"], r.text
    r = post(client, "/v1/ground", {"phrases": "brain tumor"}, emri)
    assert r.status_code == 422 and "/v1/ground-volume" in detail(r)


# ---------------------------------------------------------------------------------- validation
BAD_FORMS = [
    ({"phrases": ""}, "phrases"),
    ({"phrases": "   "}, "phrases"),
    ({"phrases": "[]"}, "phrases"),
    ({"phrases": "liver,,spleen"}, "phrases"),
    ({"phrases": '["liver", 3]'}, "phrases"),
    ({"phrases": '["liver"'}, "phrases"),
    ({"phrases": ",".join(f"p{i}" for i in range(40))}, "phrases"),
    ({"phrases": "x" * 300}, "phrases"),
    ({"phrases": "liver, \u0138"}, "phrases"),  # only [UNK] tokens: the model would get an empty prompt
    ({"phrases": "\u0301"}, "phrases"),
    ({"phrases": "liver\x1b"}, "phrases"),
    ({"phrases": "liver", "modality": "banana"}, "modality"),
    ({"phrases": "liver", "score_threshold": "abc"}, "score_threshold"),
    ({"phrases": "liver", "score_threshold": "1.5"}, "score_threshold"),
    ({"phrases": "liver", "score_threshold": "nan"}, "score_threshold"),
    ({"phrases": "liver", "top_k": "0"}, "top_k"),
    ({"phrases": "liver", "top_k": "two"}, "top_k"),
    ({"phrases": "liver", "masks": "maybe"}, "masks"),
    ({"phrases": "[" * 10000}, "phrases"),  # deeper than the JSON parser's recursion limit
    ({}, "phrases"),
]


@pytest.mark.parametrize("data,field", BAD_FORMS)
def test_bad_fields_are_422_naming_the_field(client, files, data, field):
    r = post(client, "/v1/ground", data, files["png"])
    assert r.status_code == 422, r.text
    assert detail(r).startswith(f"{field}:") or f"{field}:" in detail(r), detail(r)


def test_bad_plane_missing_and_empty_files(client, files):
    r = post(client, "/v1/ground-volume", {"phrases": "liver", "plane": "oblique"}, BRAIN)
    assert r.status_code == 422 and detail(r).startswith("plane:")
    r = client.post("/v1/ground", data={"phrases": "liver"})
    assert r.status_code == 422 and detail(r).startswith("file:")
    r = client.post("/v1/ground", data={"phrases": "liver", "file": "not a file"})
    assert r.status_code == 422 and "file:" in detail(r)
    r = post(client, "/v1/ground", {"phrases": "liver"}, name="empty.png", content=b"")
    assert r.status_code == 422 and "empty.png" in detail(r) and "empty" in detail(r)


@pytest.mark.parametrize("name,mutate,status", [
    ("cut.png", lambda b: b[: len(b) // 2], 422),
    ("bad.dcm", lambda b: b[:1000], 422),
    ("noise.nii.gz", lambda b: np.random.default_rng(1).bytes(5000), 415),
    ("cut.nii.gz", lambda b: b[: len(b) // 3], 422),
])
def test_corrupt_files_are_4xx_naming_the_file(client, files, name, mutate, status):
    src = {"cut.png": files["png"], "bad.dcm": CT_SMALL, "noise.nii.gz": files["nii"], "cut.nii.gz": files["nii"]}[name]
    r = post(client, "/v1/ground", {"phrases": "liver"}, name=name, content=mutate(Path(src).read_bytes()))
    assert r.status_code == status, r.text
    assert name in detail(r)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width x height`` (valid CRCs, almost no pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _nifti_declaring(shape) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape(shape)
    hdr["vox_offset"] = 352
    return gzip.compress(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1000)


def test_size_limits_are_413_naming_the_limit(grounder, files):
    with TestClient(create_app(grounder, config=ServiceConfig(max_pixels=5_000, max_voxels=10_000))) as c:
        r = post(c, "/v1/ground", {"phrases": "liver"}, files["png"])  # 90 x 140 = 12,600 pixels
        assert r.status_code == 413 and "5,000 pixels" in detail(r) and "(90, 140)" in detail(r)
        r = post(c, "/v1/ground-volume", {"phrases": "liver"}, files["zip"])  # 128 x 128 x 3
        assert r.status_code == 413 and "10,000 voxels" in detail(r) and "series.zip" in detail(r)
        r = post(c, "/v1/ground-volume", {"phrases": "liver"}, BRAIN)
        assert r.status_code == 413 and "10,000 voxels" in detail(r) and "(256, 256, 25)" in detail(r)
    with TestClient(create_app(grounder, config=ServiceConfig(max_upload_bytes=20_000))) as c:
        r = post(c, "/v1/ground", {"phrases": "liver"}, name="big.png", content=b"\x89PNG\r\n\x1a\n" + b"0" * 30_000)
        assert r.status_code == 413 and "big.png" in detail(r) and "20,000" in detail(r)
        r = post(c, "/v1/ground", {"phrases": "liver"}, name="huge.png", content=b"0" * (3 << 20))  # > body limit
        assert r.status_code == 413 and "upload limit" in detail(r)
    with TestClient(create_app(grounder)) as c:  # decompression bombs: the header alone is refused
        r = post(c, "/v1/ground", {"phrases": "liver"}, name="bomb.png", content=_png_declaring(100_000, 100_000))
        assert r.status_code == 413 and "bomb.png" in detail(r) and "40,000,000 pixels" in detail(r)
        r = post(c, "/v1/ground-volume", {"phrases": "liver"}, name="bomb.nii.gz",
                 content=_nifti_declaring((2000, 2000, 2000)))
        assert r.status_code == 413 and "bomb.nii.gz" in detail(r) and "300,000,000 voxels" in detail(r)


def test_a_chunked_body_over_the_limit_is_413(grounder):
    app = create_app(grounder, config=ServiceConfig(max_upload_bytes=1000))

    async def body():  # no Content-Length: sent chunked
        yield b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(40):
            yield b"0" * 65536

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
            return await ac.post("/v1/ground", content=body(), headers={"content-type": "multipart/form-data; boundary=xx"})

    r = asyncio.run(main())
    assert r.status_code == 413 and r.json()["detail"].startswith("file: request body is above")


def test_no_temp_files_are_left_behind(client, files):
    before = set(Path(tempfile.gettempdir()).glob("medglip-serve-*"))
    for path in (files["png"], BRAIN, files["zip"]):
        post(client, "/v1/ground", {"phrases": "liver"}, path)
    post(client, "/v1/ground", {"phrases": "liver"}, name="cut.png", content=files["png"].read_bytes()[:300])
    assert set(Path(tempfile.gettempdir()).glob("medglip-serve-*")) <= before


# ---------------------------------------------------------------------------------- the worker
async def _post_async(ac, data, body, name="scan.png", path="/v1/ground"):
    return await ac.post(path, data=data, files={"file": (name, body)})


def test_concurrent_same_prompt_requests_are_batched(grounder, files):
    gated = Gated(grounder)
    app = create_app(gated, config=ServiceConfig(max_batch=8, batch_wait_ms=20))
    body = files["png"].read_bytes()
    others = [Image.fromarray((np.random.default_rng(s).random((60 + s, 80)) * 255).astype(np.uint8)) for s in range(6)]
    blobs = []
    for im in others:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        blobs.append(buf.getvalue())

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            gated.gate.clear()
            first = asyncio.create_task(_post_async(ac, {"phrases": "spleen", "modality": "CT"}, body))
            while not gated.entered.is_set():
                await asyncio.sleep(0.01)
            rest = [asyncio.create_task(_post_async(ac, {"phrases": "liver, lesion", "modality": "CT"}, b)) for b in blobs]
            for _ in range(500):
                if app.state.service.batcher.queue_depth >= 6:
                    break
                await asyncio.sleep(0.01)
            gated.gate.set()
            return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first.status_code == 200 and all(r.status_code == 200 for r in rest)
    assert gated.calls == [1, 6], gated.calls
    stats = app.state.service.batcher.stats()
    assert stats["batches"] == 2 and stats["batched_images"] == 7 and stats["largest_batch"] == 6
    for im, r in zip(others, rest):  # each answer is its own image's (batched convolutions: float noise)
        want = result_json(grounder.ground_one(np.asarray(im), ["liver", "lesion"], modality="CT"))
        for got, exp in zip(r.json()["phrases"], want["phrases"]):
            assert got["phrase"] == exp["phrase"] and len(got["boxes"]) == len(exp["boxes"])
            assert np.allclose(got["scores"][:10], exp["scores"][:10], atol=1e-3)
            assert np.allclose(got["boxes"][:10], exp["boxes"][:10], atol=0.05)
        assert r.json()["image_size"] == [im.height, im.width]


def test_a_failing_job_is_500_and_the_worker_goes_on(grounder, files, caplog):
    gated = Gated(grounder)
    with TestClient(create_app(gated)) as c:
        r = post(c, "/v1/ground", {"phrases": "boom"}, files["png"])
        assert r.status_code == 500 and "simulated" not in detail(r) and "server log" in detail(r)
        assert "simulated bug" in caplog.text
        r = post(c, "/v1/ground", {"phrases": "liver", "modality": "CT"}, files["png"])
        assert r.status_code == 200
        assert c.get("/healthz").json()["counters"]["failed"] == 1


def test_a_full_queue_answers_503_with_retry_after(grounder, files):
    gated = Gated(grounder)
    app = create_app(gated, config=ServiceConfig(max_queue=1, max_batch=1, batch_wait_ms=0))
    body = files["png"].read_bytes()

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
            gated.gate.clear()
            first = asyncio.create_task(_post_async(ac, {"phrases": "a"}, body))
            while not gated.entered.is_set():
                await asyncio.sleep(0.01)
            second = asyncio.create_task(_post_async(ac, {"phrases": "b"}, body))
            while app.state.service.batcher.queue_depth < 1:
                await asyncio.sleep(0.01)
            third = await _post_async(ac, {"phrases": "c"}, body)
            gated.gate.set()
            return await first, await second, third

    first, second, third = asyncio.run(main())
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 503)
    assert third.headers["retry-after"] == "1" and "server busy" in third.json()["detail"]


class _Fake:
    def __init__(self):
        self.calls = []

    def ground(self, images, phrases, **kw):
        self.calls.append(list(images))
        if "bad" in images:
            raise MedglipError("bad image")
        return [f"res:{i}" for i in images]


def test_batcher_fails_only_the_bad_job_of_a_batch_and_keeps_other_keys_in_order():
    fake = _Fake()
    b = Batcher(fake, max_batch=4, batch_wait_ms=200)
    hold = threading.Event()
    blocker = b.submit_call(lambda g: hold.wait(5))
    futs = [b.submit_ground(x, ("p",)) for x in ("a", "bad", "c")] + [b.submit_ground("d", ("q",))]
    hold.set()
    assert blocker.result(5) is True
    assert futs[0].result(5) == "res:a" and futs[2].result(5) == "res:c" and futs[3].result(5) == "res:d"
    with pytest.raises(MedglipError):
        futs[1].result(5)
    assert fake.calls[0] == ["a", "bad", "c"] and fake.calls[-1] == ["d"]
    b.close()
    with pytest.raises(ServerBusy):
        b.submit_call(lambda g: None)


# ---------------------------------------------------------------------------------- vqa / report
def _strip_sources(js):
    if isinstance(js, dict):
        return {k: _strip_sources(v) for k, v in js.items() if k not in ("source", "visual_prompt_png", "overlay_png")}
    if isinstance(js, list):
        return [_strip_sources(v) for v in js]
    return js


def test_vqa_answers_like_ask_and_returns_the_visual_prompt(client, grounder, files):
    from medglip.vqa import ask

    q = "Is there a tumor in the left kidney?"
    r = client.post("/v1/vqa", data={"question": q, "modality": "CT"},
                    files={"file": ("scan.png", files["png"].read_bytes())})
    assert r.status_code == 200, r.text
    js = r.json()
    want = json.loads(json.dumps(ask(grounder, str(files["png"]), q, modality="CT").to_json()))
    assert _strip_sources(js) == _strip_sources(want)
    assert js["context"]["source"] == "scan.png" and js["answer"]["kind"] == "presence" and js["answer"]["text"]
    prompt = Image.open(io.BytesIO(base64.b64decode(js["visual_prompt_png"])))
    assert prompt.size == (140, 90)


def test_vqa_on_a_volume_and_bad_questions(client):
    r = post(client, "/v1/vqa", {"question": "Is there a brain tumor?", "modality": "MR"}, SAMPLES / "breast1_image.nrrd")
    assert r.status_code == 200, r.text
    assert r.json()["context"]["volume"]["n_slices"] >= 2 and r.json()["visual_prompt_png"]
    for q, why in [("", "question:"), ("x" * 1001, "question:"), ("Is there a banana?", "question:")]:
        r = post(client, "/v1/vqa", {"question": q}, CT_SMALL)
        assert r.status_code == 422 and detail(r).startswith(why), (q, r.text)


class FakeLLM:
    def __init__(self, fail=False):
        self.fail = fail

    def answer(self, question, context, image):
        if self.fail:
            from medglip.vqa import LLMError
            raise LLMError("http://llm.invalid/v1/chat/completions", "connection refused")
        return "Box 1 shows it."

    def rewrite_report(self, markdown, context):
        return "Prose version."


def test_open_questions_and_prose_use_the_servers_llm(grounder, files):
    body = files["png"].read_bytes()
    with TestClient(create_app(grounder, llm=FakeLLM())) as c:
        r = c.post("/v1/vqa", data={"question": "What is shown?"}, files={"file": ("a.png", body)})
        assert r.status_code == 200 and r.json()["answer"]["via"] == "llm" and r.json()["answer"]["text"] == "Box 1 shows it."
        r = c.post("/v1/report", data={"findings": "liver", "prose": "true"}, files={"file": ("a.png", body)})
        assert r.status_code == 200 and r.json()["prose"] == "Prose version."
    with TestClient(create_app(grounder, llm=FakeLLM(fail=True))) as c:
        r = c.post("/v1/vqa", data={"question": "What is shown?"}, files={"file": ("a.png", body)})
        assert r.status_code == 502 and "server log" in detail(r)
        assert "llm.invalid" not in detail(r) and "connection refused" not in detail(r)  # no upstream details
    with TestClient(create_app(grounder)) as c:
        r = c.post("/v1/vqa", data={"question": "What is shown?"}, files={"file": ("a.png", body)})
        assert r.status_code == 200 and r.json()["answer"]["via"] == "unanswered"
        r = c.post("/v1/report", data={"findings": "liver", "prose": "true"}, files={"file": ("a.png", body)})
        assert r.status_code == 422 and detail(r).startswith("prose:")


def test_report_equals_make_report_and_names_the_findings(client, grounder, files):
    from medglip.report import make_report

    r = client.post("/v1/report", data={"findings": "liver, left kidney", "modality": "CT"},
                    files={"file": ("scan.png", files["png"].read_bytes())})
    assert r.status_code == 200, r.text
    js = r.json()
    rep = make_report(grounder, str(files["png"]), ["liver", "left kidney"], modality="CT")
    want = json.loads(json.dumps({**rep.to_json(), "html": rep.html}))  # the service adds the page's HTML
    want["markdown"] = want["markdown"].replace(str(files["png"]), "scan.png")
    want["html"] = want["html"].replace(str(files["png"]), "scan.png")
    assert _strip_sources(js) == _strip_sources(want)
    assert "liver" in js["markdown"] and "left kidney" in js["markdown"] and "`scan.png`" in js["markdown"]
    assert "medglip-serve-" not in r.text  # no temporary path leaks
    assert Image.open(io.BytesIO(base64.b64decode(js["overlay_png"]))).size == (140, 90)
    r = post(client, "/v1/report", {"findings": "brain tumor"}, files["zip"])  # a DICOM series volume
    assert r.status_code == 200 and r.json()["context"]["volume"]["n_slices"] == 3


def test_report_findings_default_to_the_known_phrases(grounder, files):
    gated = Gated(grounder)
    with TestClient(create_app(gated)) as c:
        r = post(c, "/v1/report", {"modality": "CT"}, files["png"])
        assert r.status_code == 422 and detail(r).startswith("findings:")
        gated.known_phrases = ("liver", "spleen")
        # as Grounder.phrases_for of a run whose categories.json does not say per modality: every known phrase
        gated.phrases_for = lambda modality: gated.known_phrases
        r = post(c, "/v1/report", {"modality": "CT"}, files["png"])
        assert r.status_code == 200 and r.json()["context"]["asked"] == ["liver", "spleen"]


# ---------------------------------------------------------------------------------- fuzz
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)


def _nifti_with_dims(dims, gz):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((4, 4, 2))
    hdr["vox_offset"] = 352
    block = bytearray(hdr.binaryblock)
    block[40:56] = struct.pack("<8h", len(dims), *dims, *([1] * (7 - len(dims))))
    raw = bytes(block) + b"\x00" * 4 + np.zeros(32, np.int16).tobytes()
    return gzip.compress(raw) if gz else raw


@st.composite
def mutated_file(draw, seeds):
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    how = draw(st.sampled_from(["keep", "truncate", "flip", "flip", "magic", "png_ihdr", "nifti_dims"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "flip":
        buf = bytearray(data)
        for pos, val in draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(1, 255)), min_size=1, max_size=8)):
            buf[pos] ^= val
        data = bytes(buf)
    elif how == "magic":
        magic = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\x00" * 128 + b"DICM", b"\x1f\x8b", b"NRRD0004\n",
                                      b"PK\x03\x04", b"II*\x00", b"\xff\xd8\xff"]))
        data = magic + draw(st.binary(max_size=600))
    elif how == "png_ihdr":
        data = _png_declaring(draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1)))
    elif how == "nifti_dims":
        dims = draw(st.lists(st.integers(-3, 32767), min_size=1, max_size=4))
        data = _nifti_with_dims(dims, draw(st.booleans()))
    filename = draw(_mostly(name, st.one_of(TEXT, st.just("../../etc/passwd"))))
    return filename, data


@pytest.fixture(scope="module")
def seeds(files):
    return {"scan.png": files["png"].read_bytes(), "ct.dcm": Path(CT_SMALL).read_bytes(),
            "slice.nii.gz": files["nii"].read_bytes(), "breast.nrrd": (SAMPLES / "breast1_image.nrrd").read_bytes(),
            "series.zip": files["zip"].read_bytes()}


@pytest.fixture(scope="module")
def fuzz_client(grounder):
    with TestClient(create_app(grounder, config=ServiceConfig(max_pixels=2_000_000, max_voxels=2_000_000))) as c:
        yield c


def _mostly(valid, weird):
    """``valid`` about 3 times in 4, else something from ``weird``."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), weird)


def test_fuzzed_requests_never_get_a_5xx(fuzz_client, seeds):
    required = {
        "phrases": _mostly("liver, left kidney", st.one_of(
            st.sampled_from(["[]", "[1]", "{}", ",", "x" * 250, "\u0301", "\u0138"]), TEXT,
            st.lists(TEXT, max_size=4).map(json.dumps))),
        "findings": _mostly("liver", st.sampled_from(["", "[\"a\", \"\"]"]) | TEXT),
        "question": _mostly("Is there a tumor in the left kidney?", st.sampled_from(
            ["How many kidney stones?", "What is it?", "Is the liver larger than the spleen?", ""]) | TEXT),
    }
    optional = {
        "modality": st.one_of(st.sampled_from(["CT", "mri", "X-ray", "", "auto", "PET"]), TEXT),
        "masks": st.sampled_from(["true", "false", "1", "on", "maybe", ""]),
        "overlay": st.sampled_from(["true", "no", "2"]),
        "score_threshold": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), TEXT),
        "top_k": st.one_of(st.integers(-3, 40).map(str), TEXT),
        "plane": st.sampled_from(["axial", "coronal", "sagittal", "oblique", ""]),
    }

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(endpoint=st.sampled_from(["/v1/ground", "/v1/ground", "/v1/ground-volume", "/v1/vqa", "/v1/report"]),
           fields=st.fixed_dictionaries(required, optional=optional),
           upload=_mostly(None, st.none()).flatmap(lambda _: mutated_file(seeds)) | st.none())
    def run(endpoint, fields, upload):
        files = {"file": upload} if upload is not None else None
        r = fuzz_client.post(endpoint, data=fields, files=files)
        assert r.status_code < 500, (endpoint, fields, upload and (upload[0], upload[1][:64]), r.status_code, r.text)
        assert isinstance(r.json()["detail"], str) if r.status_code >= 400 else r.status_code == 200
        assert fuzz_client.get("/healthz").status_code == 200

    run()


def test_a_lone_job_does_not_wait_for_a_batch():
    fake = _Fake()
    b = Batcher(fake, max_batch=8, batch_wait_ms=3000)
    t0 = time.monotonic()
    assert b.submit_ground("a", ("p",)).result(5) == "res:a"
    assert time.monotonic() - t0 < 1.0  # nothing else queued or announced: no 3 s wait
    b.announce()  # a request on its way: the worker waits for it
    t0 = time.monotonic()
    first = b.submit_ground("b", ("p",))
    time.sleep(0.2)
    second = b.submit_ground("c", ("p",))
    b.withdraw()
    assert first.result(5) == "res:b" and second.result(5) == "res:c"
    assert fake.calls[-1] == ["b", "c"]
    b.close()


@pytest.mark.parametrize("header", [
    b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: {target}\n\n",
    b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = {target}\n",
])
def test_uploaded_headers_may_not_point_at_server_files(client, tmp_path, header):
    secret = tmp_path / "server_secret.raw"
    secret.write_bytes(bytes(range(64)))  # a readable 4x4x4 uint8 "volume" on the server's disk
    body = header.replace(b"{target}", str(secret).encode())
    for path in ("/v1/ground-volume", "/v1/ground"):
        r = post(client, path, {"phrases": "liver"}, name="evil.nrrd", content=body)
        assert r.status_code == 422 and "evil.nrrd" in detail(r) and "separate data file" in detail(r), r.text
