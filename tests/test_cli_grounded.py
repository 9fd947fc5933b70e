"""The downstream CLI end to end on the shipped real cases: vqa, report, vqa-eval, serve."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

import medglip
from medglip.dataset import BuildConfig, build
from medglip.model import GroundingModel, get_preset, save_checkpoint

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


def _cli(*args: str, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "medglip", *args], capture_output=True, text=True, timeout=600, env=env)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The shipped samples built, and a tiny random checkpoint that knows the dataset's phrases."""
    root = tmp_path_factory.mktemp("cli_grounded")
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0), negative_ratio=0.5), root / "ds")
    torch.manual_seed(0)
    run = save_checkpoint(GroundingModel(get_preset("tiny", score_threshold=0.0)).eval(), root / "run")
    (Path(run) / "categories.json").write_text(json.dumps({"phrases": ["brain tumor", "breast lesion"]}))
    return root


def _test_image(root: Path) -> Path:
    test = json.loads((root / "ds" / "annotations" / "test.json").read_text())
    return root / "ds" / "images" / test["images"][0]["file_name"]


def test_vqa_answers_a_closed_question_and_writes_its_evidence(root):
    out, vp = root / "vqa.json", root / "vp.png"
    r = _cli("vqa", str(_test_image(root)), "How many brain tumors are there?", "--checkpoint", str(root / "run"),
             "--modality", "MR", "--score-threshold", "0", "--json", str(out), "--visual-prompt", str(vp))
    res = json.loads(out.read_text())
    assert res["question"]["kind"] == "count" and res["question"]["targets"] == ["brain tumor"]
    n = len([f for f in res["context"]["findings"] if f["phrase"] == "brain tumor"])
    assert res["answer"]["value"] == n and res["answer"]["text"] in r.stdout
    from PIL import Image
    assert Image.open(vp).size == (256, 256)


def test_vqa_open_question_without_an_endpoint_says_how_to_configure(root):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MEDGLIP_LLM")}
    r = _cli("vqa", str(_test_image(root)), "Describe the brain tumor's texture.", "--checkpoint",
             str(root / "run"), "--modality", "MR", env=env)
    assert "MEDGLIP_LLM_ENDPOINT" in r.stdout or "--llm-endpoint" in r.stdout
    bad = _cli("vqa", str(_test_image(root)), "Is there a brain tumor?", "--checkpoint", str(root / "run"),
               "--llm-endpoint", "http://127.0.0.1:9/v1", ok=False)
    assert bad.returncode == 2 and "--llm-model" in bad.stdout + bad.stderr


def test_report_on_a_volume_writes_markdown_json_and_overlay(root):
    out = root / "rep"
    r = _cli("report", str(SAMPLES / "brain2_image.nrrd"), "--checkpoint", str(root / "run"), "--modality", "MR",
             "--out", str(out), "--score-threshold", "0.99")
    js = json.loads((out / "report.json").read_text())
    # nothing scores 0.99 with a random model: both training phrases (the default) are reported absent
    assert "No brain tumor identified." in r.stdout and "No breast lesion identified." in r.stdout
    assert js["context"]["volume"]["shape"] == [256, 256, 23]
    assert (out / "report_overlay.png").stat().st_size > 0 and (out / "report.md").read_text() == js["markdown"]


def test_vqa_eval_reports_predicted_accuracy_next_to_the_ceiling(root):
    out = root / "vq"
    _cli("vqa-eval", str(root / "ds"), "--checkpoint", str(root / "run"), "--out", str(out))
    m = json.loads((out / "vqa_metrics.json").read_text())
    assert m["n_questions"] > 0 and m["overall"]["accuracy_ground_truth"] == 1.0
    assert set(m["by_kind"]) >= {"presence", "count", "size"}


def test_serve_starts_answers_and_refuses_bad_requests(root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "medglip", "serve", "--checkpoint", str(root / "run"),
                             "--port", str(port), "--no-masks"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("medglip serve did not come up: " + proc.stdout.read1().decode(errors="replace"))
        img = _test_image(root).read_bytes()
        ok = httpx.post(f"{url}/v1/ground", files={"file": ("s.png", img, "image/png")},
                        data={"phrases": '["brain tumor"]', "modality": "MR"}, timeout=60)
        assert ok.status_code == 200 and ok.json()["phrases"][0]["phrase"] == "brain tumor"
        bad = httpx.post(f"{url}/v1/ground", files={"file": ("s.png", img, "image/png")},
                         data={"phrases": '["brain tumor"]', "modality": "XYZ"}, timeout=60)
        assert bad.status_code == 422 and "modality" in bad.json()["detail"]
        assert "/v1/ground-volume" in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
