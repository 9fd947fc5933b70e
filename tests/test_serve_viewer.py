"""The volume viewer of the web page in a real browser (the system Chromium, headless, software WebGL2 through
SwiftShader): NiiVue shows the uploaded volume with the label map over it, the overlay's colour is where the
object is, clicking a finding moves to its slice, the views and the slice slider work.

The server grounds volumes with the oracle of tests/fakes.py (the brain1 lesion as "brain tumor"); the upload
is brain1 as a zip of a DICOM MR series, so the page also offers the DICOM-SEG and SR.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from medglip.serve import create_app

from test_serve_browser import CHROMIUM, live_server

#: headless Chromium with WebGL2 on the CPU (SwiftShader); no GPU, nothing downloaded
ARGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
        "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


@pytest.fixture(scope="module")
def served(brain1, one_torch_thread):
    with live_server(create_app(brain1["grounder"])) as url:
        yield {"url": url, "zip": brain1["zip"]}


def _canvas_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#nv-canvas").screenshot())).convert("RGB")).astype(int)


def _near(pixels: np.ndarray, xy, colour, radius: int = 6, tol: int = 60) -> float:
    """Share of the pixels around ``xy`` (off the crosshair's lines) that have ``colour`` (within ``tol``)."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    pts = [(x + dx, y + dy) for dx in range(-radius, radius + 1, 2) for dy in range(-radius, radius + 1, 2)
           if abs(dx) > 1 and abs(dy) > 1]
    hits = [np.abs(pixels[py, px] - np.asarray(colour)).max() <= tol for px, py in pts
            if 0 <= py < pixels.shape[0] and 0 <= px < pixels.shape[1]]
    return float(np.mean(hits)) if hits else 0.0


def test_the_viewer_shows_the_volume_with_the_label_map_and_jumps_to_findings(served):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` to install the system Chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(60_000)
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served["url"] + "/")
            page.set_input_files("#file", str(served["zip"]))
            page.wait_for_function("() => document.getElementById('file-kind').dataset.kind === 'volume'")
            page.fill("#phrases", "brain tumor, brain")
            page.check("#masks")
            page.click("#ground-btn")
            page.wait_for_function("() => document.getElementById('viewer').dataset.ready === '1'")
            assert page.is_hidden("#error"), page.text_content("#error")

            # the answer the page got, asked again directly: what the label map holds
            with open(served["zip"], "rb") as f:
                want = httpx.post(served["url"] + "/v1/ground-volume", timeout=120, files={"file": ("s.zip", f.read())},
                                  data={"phrases": "brain tumor, brain", "outputs": "auto,volume"}).json()
            labels = want["labels"]["labels"]
            items = page.eval_on_selector_all("#findings button.finding", "bs => bs.map(b => b.textContent)")
            assert len(items) == len(labels) and all(e["phrase"] in t for e, t in zip(labels, items))
            links = page.eval_on_selector_all("#downloads a", "as => as.map(a => a.download)")
            assert set(links) == {"labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm", "result.json"}

            # axial view on the first finding: its colour is painted where it is, not elsewhere
            page.click("#viewer button.view[data-view='axial']")
            page.fill("#overlay-opacity", "1")
            page.dispatch_event("#overlay-opacity", "input")
            tumour = max((e for e in labels if e["phrase"] == "brain tumor"), key=lambda e: e["voxels"])
            page.click(f"#findings button.finding[data-label='{tumour['label']}']")
            page.wait_for_function(f"() => document.getElementById('viewer').dataset.label === '{tumour['label']}'")
            vox = [int(v) for v in page.get_attribute("#viewer", "data-vox").split(",")]
            assert np.allclose(vox, tumour["centre_voxel"], atol=1.0)  # the crosshair is on its centre
            xy = page.evaluate("() => window.medglipViewer.crosshairCanvasXY()")
            pixels = _canvas_pixels(page)
            assert _near(pixels, xy, tumour["color"]) >= 0.8, (xy, pixels[int(xy[1]), int(xy[0])])
            w = pixels.shape[1]
            mirror = (w - xy[0], xy[1])  # the same place in the other hemisphere: no overlay there
            assert _near(pixels, mirror, tumour["color"]) == 0.0
            assert (pixels.reshape(-1, 3).std(0) > 10).all()  # the volume itself is drawn (grey levels)

            # another finding on another slice: the slice changes
            other = next(e for e in labels if e["voxels"] and abs(e["centre_voxel"][2] - tumour["centre_voxel"][2]) >= 1)
            page.click(f"#findings button.finding[data-label='{other['label']}']")
            page.wait_for_function(f"() => document.getElementById('viewer').dataset.vox !== '{','.join(map(str, vox))}'")
            vox2 = [int(v) for v in page.get_attribute("#viewer", "data-vox").split(",")]
            assert vox2[2] != vox[2] and np.allclose(vox2, other["centre_voxel"], atol=1.0)

            # the slice slider scrolls through slices; the other views draw
            before = page.get_attribute("#viewer", "data-vox")
            page.fill("#slice-slider", "3")
            page.dispatch_event("#slice-slider", "input")
            page.wait_for_function(f"() => document.getElementById('viewer').dataset.vox !== '{before}'")
            for v in ("coronal", "sagittal", "multiplanar"):
                page.click(f"#viewer button.view[data-view='{v}']")
                assert _canvas_pixels(page).std() > 10, v
            assert "voxel (" in page.text_content("#viewer-location")
        finally:
            browser.close()
    assert all(u.startswith(served["url"]) or u.startswith(("data:", "blob:")) for u in requests), requests
    assert not errors, errors
