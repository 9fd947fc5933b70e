"""The web page in a real browser: the system Chromium (headless, via playwright) against uvicorn.

The page's Content-Security-Policy forbids eval, so every wait predicate is an arrow function.

Needs /usr/bin/chromium (``bash scripts/install_browser.sh``; or MEDGLIP_CHROMIUM=/path/to/chrome); nothing
is downloaded.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from medglip.infer import Grounder
from medglip.model import GroundingModel, get_preset, save_checkpoint
from medglip.serve import create_app

CHROMIUM = Path(os.environ.get("MEDGLIP_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHRASES = "liver, left kidney"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app):
    """``app`` served by uvicorn on a free local port in a thread; yields its URL."""
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory, one_torch_thread):
    torch.manual_seed(0)
    run = save_checkpoint(GroundingModel(get_preset("tiny", score_threshold=0.0, finding_thresholds=(("*", 0.0),))).eval(), tmp_path_factory.mktemp("run"))
    with live_server(create_app(Grounder.from_pretrained(run, refiner=None))) as url:
        yield url


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scan.png"
    Image.fromarray((np.random.default_rng(3).random((96, 128)) * 255).astype(np.uint8)).save(path)
    return path


@contextmanager
def open_page(server: str):
    """A headless page of the system Chromium on the service's web page; records requests and console errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            pg = browser.new_page()
            pg.set_default_timeout(30_000)
            pg.requests, pg.console_errors = [], []
            pg.on("request", lambda r: pg.requests.append(r.url))
            pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
            pg.goto(server + "/")
            yield pg
        finally:
            browser.close()


def _direct(server, path, data, png):
    with open(png, "rb") as f:
        return httpx.post(server + path, data=data, files={"file": ("scan.png", f.read())}, timeout=60)


def test_ground_ask_report_and_errors_in_the_page(server, png):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` to install the system Chromium")
    with open_page(server) as page:
        _drive(page, server, png)


def _drive(page, server, png):
    assert page.title().startswith("medglip")
    page.wait_for_function("() => document.getElementById('model-info').textContent.includes('tiny')")
    page.wait_for_function("() => document.body.dataset.model === 'ready'")
    assert not page.is_checked("#masks")  # this server has no mask refiner: the page does not ask for masks
    page.set_input_files("#file", str(png))
    page.fill("#phrases", PHRASES)
    page.select_option("#modality", "CT")
    page.click("#ground-btn")
    page.wait_for_function("() => { const i = document.getElementById('overlay-img');"
                           " return !i.hidden && i.complete && i.naturalWidth > 0; }")
    want = _direct(server, "/v1/ground", {"phrases": PHRASES, "modality": "CT", "masks": "false"}, png).json()
    n_boxes = sum(len(p["boxes"]) for p in want["phrases"])
    assert n_boxes > 0
    page.wait_for_function(f"() => document.querySelectorAll('#results tbody tr').length === {n_boxes}")
    rows = page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    if "findings" in want:  # the findings model: its ids and order
        expected = [(f["id"], f["phrase"], f["score"], f["box"]) for f in want["findings"]]
    else:
        expected = [(str(i), p, s, b) for i, (p, s, b) in enumerate(
            ((p["phrase"], s, b) for p in want["phrases"] for b, s in zip(p["boxes"], p["scores"])), start=1)]
    assert len(rows) == len(expected)
    for row, (name, phrase, score, box) in zip(rows, expected):  # the table shows 3 / 1 decimals
        assert row[0] == name and row[1] == phrase and abs(float(row[2]) - score) <= 0.0006
        assert np.allclose([float(v) for v in row[3].split(",")], box, atol=0.051), (row, box)
    assert page.eval_on_selector("#overlay-img", "i => i.naturalWidth") >= 128

    question = "Is there a tumor in the left kidney?"
    page.fill("#question", question)
    page.click("#ask-btn")
    page.wait_for_function("() => document.getElementById('answer').textContent.length > 0")
    # the page asks with the grounding's phrases (so the answer cites that grounding's ids) and its masks box
    answer = _direct(server, "/v1/vqa", {"question": question, "modality": "CT", "phrases": PHRASES,
                                         "masks": "false"}, png).json()["answer"]["text"]
    assert page.text_content("#answer") == answer
    page.wait_for_function("() => { const i = document.getElementById('prompt-img'); return !i.hidden && i.naturalWidth > 0; }")

    page.click("#report-btn")
    page.wait_for_function("() => document.getElementById('report').textContent.length > 0")
    report = page.text_content("#report")
    assert "liver" in report and "left kidney" in report and "scan.png" in report
    page.wait_for_function("() => { const i = document.getElementById('report-img'); return !i.hidden && i.naturalWidth > 0; }")
    assert page.is_hidden("#error")

    page.fill("#phrases", "")  # an error: the server's message shows in #error
    page.click("#ground-btn")
    page.wait_for_selector("#error:not([hidden])")
    message = _direct(server, "/v1/ground", {"phrases": ""}, png).json()["detail"]
    assert page.text_content("#error") == message and message.startswith("phrases:")

    assert all(u.startswith(server) or u.startswith("data:") for u in page.requests), page.requests
    assert not [e for e in page.console_errors if "422" not in e], page.console_errors


# A volume answer of the findings model: findings ordered by phrase and score, not as the objects (label n of the
# label map = object n); the page must tie each finding to its object by phrase, slices and world box.
_OBJECTS = [{"phrase": "a", "score": 0.4, "slices": [1, 2], "voxel_box": [[0, 0, 1], [3, 3, 2]],
             "world_box_mm": [[0, 0, 1], [3, 3, 2]]},
            {"phrase": "b", "score": 0.9, "slices": [4, 6], "voxel_box": [[1, 1, 4], [2, 2, 6]],
             "world_box_mm": [[1, 1, 4], [2, 2, 6]]},
            {"phrase": "a", "score": 0.7, "slices": [5, 5], "voxel_box": [[0, 0, 5], [1, 1, 5]],
             "world_box_mm": [[0, 0, 5], [1, 1, 5]]}]
_FINDINGS = [{"id": "F1", "phrase": "a", "score": 0.7, "slices": [5, 5], "size_mm": [2, 2, 1], "size_source": "mask",
              "side": "left", "location": "left, slice 5", "world_box_mm": [[0, 0, 5], [1, 1, 5]],
              "location_mm": [0.5, 0.5, 5]},
             {"id": "F2", "phrase": "a", "score": 0.4, "slices": [1, 2], "size_mm": [4, 4, 2], "size_source": "box",
              "side": None, "location": "slices 1–2", "world_box_mm": [[0, 0, 1], [3, 3, 2]], "location_mm": [1.5, 1.5, 1.5]},
             {"id": "F3", "phrase": "b", "score": 0.9, "slices": [4, 6], "size_mm": [2, 2, 3], "size_source": "box",
              "side": "right", "location": "right", "world_box_mm": [[1, 1, 4], [2, 2, 6]], "location_mm": [1.5, 1.5, 5]}]
_GEOMETRY = {"spacing": [1, 1, 1], "origin": [0, 0, 0], "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1]}


def test_the_page_shows_the_findings_model_tied_to_its_objects(server):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` to install the system Chromium")
    answer = {"objects": _OBJECTS, "findings": _FINDINGS, "geometry": _GEOMETRY}
    with open_page(server) as page:
        got = page.evaluate("a => medglipFindings.ofVolume(a).map(f => [f.id, f.label, f.size, f.sizeSource, f.side, "
                            "medglipFindings.details(f)])", answer)
        old = page.evaluate("a => medglipFindings.ofVolume(a).map(f => [f.id, f.label, f.sizeSource])",
                            {"objects": _OBJECTS, "geometry": _GEOMETRY})
        image = page.evaluate("a => medglipFindings.ofImage(a).map(f => [f.id, f.size, f.location])",
                              {"findings": [{"id": "F1", "phrase": "x", "score": 0.5, "box": [0, 0, 1, 1],
                                             "size_mm": None, "size_px": [12.5, 3], "location": "left, upper third"}]})
    assert got == [["F1", 3, "2 × 2 × 1 mm", "mask", "left", "slice 5 · 2 × 2 × 1 mm (mask) · left"],
                   ["F2", 1, "4 × 4 × 2 mm", "box", None, "slices 1–2 · 4 × 4 × 2 mm (box)"],
                   ["F3", 2, "2 × 2 × 3 mm", "box", "right", "slices 4–6 · 2 × 2 × 3 mm (box) · right"]]
    assert old == [["F1", 1, "box"], ["F2", 2, "box"], ["F3", 3, "box"]]  # an older server: objects in order
    assert image == [["F1", "13 × 3 px", "left, upper third"]]
