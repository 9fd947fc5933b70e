"""A newcomer's first hour: tables piped into a file or a pager keep their full rows, and the first errors
met say what to do next in one line. (A phrase or modality the model never saw: tests/test_untrained.py.)"""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from medglip.cli import output
from medglip.catalog import load_catalog
from medglip.cli import app
from medglip.model import shipped

runner = CliRunner()


def _error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_catalog_in_a_pipe_prints_full_rows_as_tsv():
    r = runner.invoke(app, ["catalog"])  # CliRunner's stdout is not a terminal, as in `medglip catalog | less`
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "name", "modalities", "layout", "labels", "licence"]
    entries = load_catalog()
    assert len(lines) == 1 + len(entries) and "…" not in r.stdout
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in lines[1:]}
    for e in entries:
        row = rows[e.id]
        assert len(row) == 6 and row[1] == " ".join(e.name.split()) and row[5] == " ".join(e.licence.split())
        assert row[4] == ", ".join(e.label_names)  # every label, not the first four
    assert max(len(ln) for ln in lines) > 80


def test_catalog_on_a_terminal_is_a_table(monkeypatch):
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    r = runner.invoke(app, ["catalog", "--modality", "XR"])
    assert r.exit_code == 0 and "\t" not in r.stdout and ("┃" in r.stdout or "│" in r.stdout)


def test_resolve_and_scan_in_a_pipe_are_tsv(tmp_path):
    r = runner.invoke(app, ["resolve", "kidney_left", "GTVp"])
    assert r.exit_code == 0, r.output
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert rows[0][:2] == ["source name", "phrase"] and [row[:2] for row in rows[1:]] == [
        ["kidney_left", "left kidney"], ["GTVp", "primary tumor"]]
    r = runner.invoke(app, ["catalog", "--scan", str(tmp_path)])
    assert r.exit_code == 0 and r.stdout.splitlines() == ["folder\tlayout\tcatalogue data set"]


def test_a_folder_of_no_known_layout_says_what_to_do(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scan.nii.gz").write_bytes(b"")
    r = runner.invoke(app, ["build", str(tmp_path / "data"), str(tmp_path / "out")])
    assert r.exit_code != 0
    line = _error_line(r.output)
    assert "no known dataset layout" in line and "--layout NAME" in line and "medglip_manifest.json" in line


def test_a_missing_shipped_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "weights" / "medglip-v1")
    img = tmp_path / "mr.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype("uint8")).save(img)
    for args in (["ground", str(img), "-p", "brain tumor"], ["demo", "--out", str(tmp_path / "demo")],
                 ["serve"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        line = _error_line(r.output)
        assert "the shipped model is missing" in line and "--checkpoint RUN" in line, line
    assert not (tmp_path / "demo" / "dataset").exists()  # stopped before any work
