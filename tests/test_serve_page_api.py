"""What the web page needs of the service, without a browser: what the model knows (``GET /v1/model``),
the endpoint a misdirected upload belongs to (a header on the 422), and the report as escaped HTML."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medglip.infer import Grounder
from medglip.model.shipped import SHIPPED_DIR
from medglip.report import make_report
from medglip.serve import create_app
from medglip.serve.uploads import ENDPOINT_HEADER
from fakes import tiny_grounder

HIPPO = Path(__file__).resolve().parents[1] / "src/medglip/samples/heldout/msd-hippocampus/imagesTr/hippocampus_037.nii.gz"


@pytest.fixture(scope="module")
def grounder(tmp_path_factory, one_torch_thread):
    return tiny_grounder(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scan.png"
    Image.fromarray((np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)).save(path)
    return path


def test_model_endpoint_lists_the_trained_phrases_by_modality_as_the_model_spells_them(grounder):
    g = Grounder(grounder.model, refiner=None, known_phrases=("liver", "Brain Tumor", "left kidney"),
                 trained_on={"CT": ["liver", "left kidney"], "MR": ["brain tumor"], "US": []})
    with TestClient(create_app(g)) as c:
        got = c.get("/v1/model").json()
    assert got["trained_phrases"] == ["liver", "Brain Tumor", "left kidney"]
    assert got["phrases_by_modality"] == {"CT": ["liver", "left kidney"], "MR": ["Brain Tumor"]}
    assert got["modalities"] == list(grounder.config.modalities) and got["mask_head"] is grounder.has_mask_head
    assert got["masks"] is None  # created without a refiner: masks=true would be refused


def test_model_endpoint_of_the_shipped_model_is_its_categories_json(one_torch_thread):
    cats = json.loads((SHIPPED_DIR / "categories.json").read_text())
    with TestClient(create_app(Grounder.from_pretrained())) as c:
        got = c.get("/v1/model").json()
    assert got["masks"] == "head"  # the shipped model has a mask head
    assert got["trained_phrases"] == cats["phrases"]
    assert got["phrases_by_modality"] == {m: ps for m, ps in cats["phrases_by_modality"].items() if ps}
    assert "liver" not in got["trained_phrases"]
    assert got["ct_windows"]["lung"] == [-1350.0, 150.0] and got["default_ct_window"] in got["ct_windows"]


def test_a_misdirected_upload_names_the_endpoint_that_takes_it(grounder, png, tmp_path):
    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random((20, 24, 5)).astype(np.float32), np.eye(4)), str(vol))
    with TestClient(create_app(grounder)) as c:
        r = c.post("/v1/ground", data={"phrases": "liver"}, files={"file": ("vol.nii.gz", vol.read_bytes())})
        assert r.status_code == 422 and r.headers[ENDPOINT_HEADER] == "/v1/ground-volume", r.text
        r = c.post("/v1/ground-volume", data={"phrases": "liver"}, files={"file": ("scan.png", png.read_bytes())})
        assert r.status_code == 422 and r.headers[ENDPOINT_HEADER] == "/v1/ground", r.text
        r = c.post("/v1/ground", data={"phrases": ""}, files={"file": ("scan.png", png.read_bytes())})
        assert r.status_code == 422 and ENDPOINT_HEADER not in r.headers  # only for the wrong dimensionality


def test_report_html_escapes_every_text_and_holds_what_the_markdown_says(grounder, png):
    evil = "<script>window.pwned = 1</script> liver"
    rep = make_report(grounder, str(png), [evil, "liver"], modality="CT")
    html = rep.html
    assert "<script>" not in html and "&lt;script&gt;window.pwned = 1&lt;/script&gt; liver" in html
    assert html.startswith('<article class="report">') and "<h2>Findings</h2>" in html and "<table>" in html
    assert "**" not in html and "|---" not in html
    rows = html.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert rows == len(rep.context.findings) > 0
    for sentence in rep.sentences:  # every sentence of the report, escaped
        assert escape(sentence) in html


def test_report_endpoint_answers_html(grounder, png):
    with TestClient(create_app(grounder)) as c:
        r = c.post("/v1/report", data={"findings": "liver", "modality": "CT"},
                   files={"file": ("a<b>.png", png.read_bytes())})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["html"].count("<tr>") == len(out["context"]["findings"]) + 1  # + the header row
    assert "<code>a&lt;b&gt;.png</code>" in out["html"]
