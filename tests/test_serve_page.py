"""The web page with the shipped model on a real held-out volume, in the system Chromium (headless, WebGL2 on the
CPU through SwiftShader): the page sees by itself that the NIfTI is a volume, the viewer opens on the slice of
the best finding with its number shown, window presets and right-drag, per-finding show / hide and box
outlines, the ground truth beside the prediction, every file to download, phrases suggested from what the model
was trained on, and the report rendered as HTML in which a ``<script>`` phrase stays text.

Screenshots go to ``$MEDGLIP_SCREENSHOTS`` (else the test's temporary folder): ``volume.png`` (the viewer on
the top finding, with the ground truth beside it) and ``report.png`` (the whole page with the report).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from medglip.infer import Grounder
from medglip.serve import create_app

from test_serve_browser import CHROMIUM, live_server
from test_serve_viewer import ARGS

HIPPO = Path(__file__).resolve().parents[1] / "src/medglip/samples/heldout/msd-hippocampus"
IMAGE, TRUTH = HIPPO / "imagesTr/hippocampus_037.nii.gz", HIPPO / "labelsTr/hippocampus_037.nii.gz"
PHRASES = "anterior hippocampus, posterior hippocampus"
EVIL = "<script>window.pwned = 1</script> hippocampus"


@pytest.fixture(scope="module")
def served(one_torch_thread):
    with live_server(create_app(Grounder.from_pretrained())) as url:  # the shipped model, as `medglip serve`
        yield url


@pytest.fixture
def shots(tmp_path) -> Path:
    out = Path(os.environ.get("MEDGLIP_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _canvas(page, selector="#nv-canvas") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour) -> int:
    return int((np.abs(pixels - np.asarray(colour)).max(-1) <= 40).sum())


def _wait(page, predicate: str) -> None:
    page.wait_for_function(f"() => {predicate}")


def test_the_page_grounds_a_volume_opens_on_its_top_finding_and_renders_the_report(served, shots):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` to install the system Chromium")
    with open(IMAGE, "rb") as f:
        want = httpx.post(served + "/v1/ground-volume", timeout=300, files={"file": (IMAGE.name, f.read())},
                          data={"phrases": PHRASES, "modality": "MR", "outputs": "auto,volume"}).json()
    objects = want["objects"]
    assert len(objects) >= 2, want
    top = max(range(len(objects)), key=lambda i: objects[i]["score"])
    errors, requests = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(served + "/")

            # phrases suggested from what the shipped model was trained on, by modality
            _wait(page, "document.body.dataset.model === 'ready'")
            suggested = page.eval_on_selector_all("button.suggestion", "bs => bs.map(b => b.textContent)")
            assert "anterior hippocampus" in suggested and "melanoma" in suggested and "liver" not in suggested
            assert "liver" not in page.get_attribute("#phrases", "placeholder")
            page.select_option("#modality", "MR")
            mr = page.eval_on_selector_all("button.suggestion", "bs => bs.map(b => b.textContent)")
            assert "anterior hippocampus" in mr and "melanoma" not in mr
            page.click("button.suggestion:text-is('anterior hippocampus')")
            page.click("button.suggestion:text-is('posterior hippocampus')")
            assert page.input_value("#phrases") == PHRASES

            # the NIfTI is a volume: no box to tick
            page.set_input_files("#file", str(IMAGE))
            _wait(page, "document.getElementById('file-kind').dataset.kind === 'volume'")
            assert "34 × 51 × 32" in page.text_content("#file-kind")
            page.set_input_files("#truth-file", str(TRUTH))
            page.click("#ground-btn")
            _wait(page, "document.getElementById('viewer').dataset.ready === '1'")
            _wait(page, "document.getElementById('truth-frame').dataset.ready === '1'")
            assert page.is_hidden("#error"), page.text_content("#error")
            assert any(u.endswith("/v1/ground-volume") for u in requests)
            assert not any(u.endswith("/v1/ground") for u in requests)  # sent straight to the volume endpoint

            # it opens on the slice of the best finding and says which
            z0, z1 = objects[top]["slices"]
            k = int(page.get_attribute("#viewer", "data-slice"))
            assert z0 <= k <= z1, (k, objects[top])
            assert page.text_content("#slice-number").startswith(f"axial slice {k} (0–31)")
            assert int(page.input_value("#slice-slider")) == k

            # the findings read apart: id, slice range, size and its source
            items = page.eval_on_selector_all("#findings button.finding", "bs => bs.map(b => b.textContent)")
            if "findings" in want:  # the findings model: the server's ids, order and words
                listed = [(f["id"], f["slices"], f["size_source"]) for f in want["findings"]]
                top_id = max(want["findings"], key=lambda f: f["score"])["id"]
            else:
                listed = [(f"F{i}", o["slices"], "mask") for i, o in enumerate(objects, start=1)]
                top_id = f"F{top + 1}"
            ids = page.eval_on_selector_all("#findings button.finding span.id", "ss => ss.map(s => s.textContent)")
            assert ids == [name for name, _, _ in listed]
            assert len(items) == len(listed) and len(set(items)) == len(items)
            for text, (name, (a, b), source) in zip(items, listed):
                assert (f"slice {a}" if a == b else f"slices {a}–{b}") in text and f" mm ({source})" in text
            assert top_id in [b["id"] for b in page.evaluate("() => window.medglipViewer.boxes()")]

            page.screenshot(path=str(shots / "volume.png"))
            page.fill("#overlay-opacity", "1")  # the masks' own colours (both views follow the slider)
            page.dispatch_event("#overlay-opacity", "input")
            pred = _canvas(page)
            truth = _canvas(page, "#nv-truth-canvas")
            colours = {e["label"]: e["color"] for e in want["labels"]["labels"]}
            assert _count(pred, colours[top + 1]) > 20  # the top finding's mask (and box) are drawn
            assert _count(truth, (230, 25, 75)) + _count(truth, (60, 180, 75)) > 20  # ground-truth labels 1 and 2
            assert pred.std() > 10 and truth.std() > 10

            # hide the top finding: its colour and its box go
            page.uncheck(f"#findings input.shown[data-id='{top_id}']")
            assert top_id not in [b["id"] for b in page.evaluate("() => window.medglipViewer.boxes()")]
            assert _count(_canvas(page), colours[top + 1]) < _count(pred, colours[top + 1]) // 4
            page.check(f"#findings input.shown[data-id='{top_id}']")
            page.uncheck("#show-boxes")
            assert page.evaluate("() => window.medglipViewer.boxes()") == []
            page.check("#show-boxes")

            # window presets and right-drag
            auto = page.evaluate("() => window.medglipViewer.windowRange()")
            page.select_option("#window-preset", "full")
            full = page.evaluate("() => window.medglipViewer.windowRange()")
            assert full[1] - full[0] > auto[1] - auto[0] and page.text_content("#window-text").startswith("W ")
            box = page.locator("#nv-canvas").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx - 60, cy - 60)
            page.mouse.down(button="right")
            page.mouse.move(cx + 60, cy + 60, steps=5)
            page.mouse.up(button="right")
            _wait(page, "document.getElementById('window-preset').value === 'custom'")
            assert page.evaluate("() => window.medglipViewer.windowRange()") != full

            # every file the CLI's --out writes (NIfTI input: no SEG / SR), and the answer as JSON
            links = page.eval_on_selector_all("#downloads a", "as => as.map(a => a.download)")
            assert set(links) == {"labels.nii.gz", "labels.json", "result.json"}

            # the report, rendered: headings, list and table, no Markdown marks; a <script> phrase stays text
            page.fill("#phrases", f"{PHRASES}, {EVIL}")
            page.click("#report-btn")
            _wait(page, "document.querySelector('#report article h1') !== null")
            text = page.text_content("#report")
            assert "**" not in text and "|---" not in text and "hippocampus_037.nii.gz" in text
            assert page.locator("#report table tbody tr").count() >= 1
            assert EVIL in text and page.evaluate("() => window.pwned") is None
            assert page.locator("#report script").count() == 0
            links = page.eval_on_selector_all("#downloads a", "as => as.map(a => a.download)")
            assert {"report.md", "report.html", "report.json", "report_overlay.png"} <= set(links)
            page.locator("#report").scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert all(u.startswith(served) or u.startswith(("data:", "blob:")) for u in requests), requests
