"""The service under the probe of the 'an upload can make the service read any file' issue: uploads are read
as themselves (no header makes a reader open a server file), the work one request may cost is bounded
whatever its byte size, clients get fair shares of the model, and no secret reaches a log."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time

import httpx
import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import attacks
from fakes import tiny_grounder
from medglip.infer.volume import BETWEEN_BATCHES
from medglip.serve import AccessConfig, Batcher, ServerBusy, ServerSettings, ServiceConfig, create_app
from medglip.serve.budget import CURRENT, RequestScope, WorkLimit
from test_serve_security import running

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-fedcba9876543210"


@pytest.fixture(scope="module")
def grounder(tmp_path_factory, one_torch_thread):
    return tiny_grounder(tmp_path_factory.mktemp("run"))


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _post(c, path, data, body, name, headers=None):
    return c.post(path, data=data, files={"file": (name, body)}, headers=headers or {})


def detail(r) -> str:
    return r.json()["detail"]


# ------------------------------------------------------------------------- 1. uploads read as themselves
@pytest.mark.parametrize("kind", ["nrrd", "mha"])
def test_an_upload_cannot_make_the_service_return_a_server_file(grounder, tmp_path, kind):
    secret = tmp_path / "server" / "environ"
    secret.parent.mkdir()
    secret.write_bytes(b"API_KEY=s3cr3t!!" * 4)  # 64 bytes: a 4 x 4 x 4 uint8 volume
    if kind == "nrrd":  # the probe: comments past the 64 KiB the old check read, then the data file
        head = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n" + "# pad\n" * 12000 \
            + f"data file: {secret}\n\n"
    else:
        head = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n" \
            + "Comment = pad\n" * 6000 + f"ElementDataFile: {secret}\n"
    body = head.encode() + bytes(64)
    assert len(body) > 64 * 1024
    with TestClient(create_app(grounder)) as c:
        for path, data in (("/v1/ground-volume", {"phrases": "liver", "modality": "CT", "outputs": "volume"}),
                           ("/v1/ground", {"phrases": "liver", "modality": "CT"}),
                           ("/v1/report", {"findings": "liver", "modality": "CT"})):
            r = _post(c, path, data, body, f"evil.{kind}")
            assert r.status_code == 422 and "separate data file" in detail(r) and f"evil.{kind}" in detail(r), r.text
            assert "s3cr3t" not in r.text  # (the message may quote the header's own field: the client's text)


# ------------------------------------------------------------------------------- 2. work per request
def test_a_tiny_file_declaring_many_slices_is_refused_before_any_work(grounder, tmp_path):
    thin = tmp_path / "thin.nii.gz"  # the probe: a few hundred bytes declaring 4 x 4 x 32000 voxels
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 32000), np.uint8), np.eye(4)), str(thin))
    assert thin.stat().st_size < 4096
    app = create_app(grounder, config=ServiceConfig(request_timeout_s=10))
    with TestClient(app) as c:
        t0 = time.monotonic()
        r = _post(c, "/v1/ground-volume", {"phrases": "liver", "modality": "CT"}, thin.read_bytes(), "thin.nii.gz")
        assert r.status_code == 413, r.text
        assert "thin.nii.gz" in detail(r) and "32,000 axial slices" in detail(r) and "2,048" in detail(r) \
            and "max_slices" in detail(r)
        for path, data in (("/v1/vqa", {"question": "Is there a liver?", "modality": "CT"}),
                           ("/v1/report", {"findings": "liver", "modality": "CT"})):
            r = _post(c, path, data, thin.read_bytes(), "thin.nii.gz")
            assert r.status_code == 413 and "max_slices" in detail(r), r.text
        assert time.monotonic() - t0 < 5
        assert c.get("/healthz").json()["counters"]["calls"] == 0  # nothing reached the model


def test_slices_times_prompt_chunks_are_bounded_per_request(grounder, tmp_path):
    vol = attacks.nifti_volume(tmp_path / "v.nii.gz", (16, 16, 40))
    with TestClient(create_app(grounder, config=ServiceConfig(max_model_passes=30))) as c:
        r = _post(c, "/v1/ground-volume", {"phrases": "liver", "modality": "CT"}, vol.read_bytes(), "v.nii.gz")
        assert r.status_code == 413 and "40 slice(s) x 1 prompt chunk(s)" in detail(r) \
            and "max_model_passes" in detail(r), r.text
        r = _post(c, "/v1/ground-volume", {"phrases": "liver", "modality": "CT", "plane": "sagittal"}, vol.read_bytes(),
                  "v.nii.gz")
        assert r.status_code == 200, r.text  # 16 sagittal slices fit


def _as_client(name: str | None, fn, **scope):
    token = CURRENT.set(RequestScope(None, None, client=name or "", **scope) if name is not None else None)
    try:
        return fn()
    finally:
        CURRENT.reset(token)


def test_the_worker_counts_a_calls_slices_and_stops_it_past_max_slices():
    b = Batcher(object())
    fut = _as_client("a", lambda: b.submit_call(lambda g: [BETWEEN_BATCHES.get()(8) for _ in range(10)]),
                     max_slices=40)
    with pytest.raises(WorkLimit, match=r"reached 48 slices.*limit of 40 slices per request \(max_slices\)"):
        fut.result(5)
    b.close()


# ------------------------------------------------------------------------------------- fair shares
class _Recorder:
    def __init__(self):
        self.order = []

    def ground(self, images, phrases, **kw):
        self.order.extend(images)
        return list(images)


def test_waiting_jobs_are_served_one_client_at_a_time():
    fake = _Recorder()
    b = Batcher(fake, max_batch=1, batch_wait_ms=0)
    hold = threading.Event()
    blocker = b.submit_call(lambda g: hold.wait(5))
    futs = [_as_client("a", lambda x=x: b.submit_ground(x, (x,))) for x in ("a1", "a2", "a3")]
    futs.append(_as_client("b", lambda: b.submit_ground("b1", ("b1",))))
    hold.set()
    assert blocker.result(5) and [f.result(5) for f in futs] == ["a1", "a2", "a3", "b1"]
    assert fake.order == ["a1", "b1", "a2", "a3"]  # b's request waited for one turn of a, not for all of a's
    b.close()


def test_one_client_cannot_fill_the_queue():
    b = Batcher(_Recorder(), max_queue=10, max_client_jobs=2)
    hold = threading.Event()
    blocker = b.submit_call(lambda g: hold.wait(5))
    time.sleep(0.1)  # the blocker holds the model
    for x in ("a1", "a2"):
        _as_client("a", lambda x=x: b.submit_ground(x, (x,)))
    with pytest.raises(ServerBusy, match="this client already has 2 requests waiting.*max_client_queue"):
        _as_client("a", lambda: b.submit_ground("a3", ("a3",)))
    other = _as_client("b", lambda: b.submit_ground("b1", ("b1",)))  # another client still gets in
    hold.set()
    assert blocker.result(5) and other.result(5) == "b1"
    b.close()


def test_long_calls_of_two_clients_take_turns_between_slice_batches():
    b = Batcher(object())
    seen: list[str] = []
    hold = threading.Event()
    blocker = b.submit_call(lambda g: hold.wait(5))

    def volume(name):
        def run(g):
            for i in range(3):
                seen.append(f"{name}{i}")
                BETWEEN_BATCHES.get()(1)
            return name
        return run

    first = _as_client("a", lambda: b.submit_call(volume("a")))
    second = _as_client("b", lambda: b.submit_call(volume("b")))
    hold.set()
    assert blocker.result(5) and first.result(5) == "a" and second.result(5) == "b"
    assert seen == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert b.stats()["handed_over"] >= 4
    b.close()


def test_a_clients_quick_request_is_not_starved_by_anothers_long_volume(grounder, tmp_path, monkeypatch):
    original = grounder._detect

    def slow(*args, **kwargs):  # every model pass takes at least 60 ms, whoever asks
        time.sleep(0.06)
        return original(*args, **kwargs)

    monkeypatch.setattr(grounder, "_detect", slow)
    volume = attacks.nifti_volume(tmp_path / "long.nii.gz", (32, 32, 240)).read_bytes()  # 30 batches of 8 slices
    access = AccessConfig(api_keys=(("alice", KEY), ("bob", OTHER_KEY)))
    app = create_app(grounder, access=access)

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120) as ac:
            long = asyncio.create_task(ac.post("/v1/ground-volume", data={"phrases": "brain tumor", "modality": "MR"},
                                               files={"file": ("long.nii.gz", volume)}, headers={"X-API-Key": KEY}))
            while app.state.service.batcher.stats()["calls"] < 1:  # alice's volume holds the model
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            quick = await ac.post("/v1/ground", data={"phrases": "liver", "modality": "CT"},
                                  files={"file": ("p.png", _png())}, headers={"X-API-Key": OTHER_KEY})
            return quick, time.monotonic() - t0, long.done(), await long

    quick, waited, long_done_first, long = asyncio.run(main())
    assert quick.status_code == 200 and long.status_code == 200, (quick.text, long.text)
    assert not long_done_first and waited < 1.5, waited  # bob waited for a slice batch, not for alice's volume
    assert app.state.service.batcher.stats()["handed_over"] >= 1


# ------------------------------------------------------------------------------------------ 4. logs
def test_secrets_in_query_strings_and_headers_never_reach_a_log(grounder, capfd, caplog):
    app = create_app(grounder, access=AccessConfig(api_keys=(("ward", KEY),)))
    with caplog.at_level(logging.INFO), running(app, ServerSettings(), log_level="info") as port:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz?api_key={KEY}&token=tok-123456&x=1").status_code == 200
        r = httpx.post(f"{base}/v1/ground?key=abc-secret-987&access_token=zz-998877", headers={"X-API-Key": KEY},
                       data={"phrases": "liver", "modality": "CT"}, files={"file": ("p.png", _png())}, timeout=60)
        assert r.status_code == 200
        logging.getLogger("medglip.serve").warning("a client sent %s and %r", f"Authorization: Bearer {KEY}",
                                                   [(b"x-api-key", KEY.encode())])
        logging.getLogger("some.library").info("GET https://host/path?apikey=lib-secret-42&page=2")
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert "GET /healthz?api_key=[redacted]&token=[redacted]&x=1" in text, text[-2000:]
    assert "apikey=[redacted]&page=2" in text and "Authorization: [redacted]" in text
    for secret in (KEY, "tok-123456", "abc-secret-987", "zz-998877", "lib-secret-42"):
        assert secret not in text, secret
