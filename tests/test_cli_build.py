"""`medglip build SOURCE_OR_RECIPE OUT`: one command for a dataset folder or a recipe, a bar of cases, what
each source built, and a non-zero exit naming what failed; `build-recipe` is its hidden alias."""

from __future__ import annotations

import io
import json
from pathlib import Path

import typer
from rich.console import Console
from typer.testing import CliRunner

import layouts
from medglip.cli import app

runner = CliRunner()


def _said(r) -> str:
    return " ".join(r.output.split())


def _recipe(tmp_path: Path, *sources: str) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("recipe: 1\nname: two\nsources:\n" + "".join(f"  - {s}\n" for s in sources))
    return recipe


def test_build_takes_a_dataset_folder_and_says_what_it_built(tmp_path, monkeypatch):
    from medglip.cli import progress

    bar = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=bar, force_terminal=True, width=200))
    src = layouts.make_kvasir(tmp_path / "data", n_cases=3)
    r = runner.invoke(app, ["build", str(src), str(tmp_path / "out"), "--split", "1,0,0"])
    assert r.exit_code == 0, r.output
    cases = json.loads((tmp_path / "out" / "cases.json").read_text())
    assert len(cases) == 3 and "dataset ready" in _said(r) and f"built {len(cases)} case(s)" in _said(r)
    assert "building" in bar.getvalue() and "3/3" in bar.getvalue()
    r = runner.invoke(app, ["build", str(src), str(tmp_path / "out"), "--split", "1,0,0"])  # resumes: nothing to do
    assert r.exit_code == 0 and "built 0 case(s)" in _said(r) and "3 already done" in _said(r)


def test_build_takes_a_recipe_and_names_what_failed(tmp_path):
    data = tmp_path / "data"
    kvasir = layouts.make_kvasir(data, n_cases=2)
    recipe = _recipe(tmp_path, f"{{id: kvasir_seg, path: {kvasir}}}", "{id: gone, path: nowhere}")
    r = runner.invoke(app, ["build", str(recipe), str(tmp_path / "out")])
    said = _said(r)
    assert r.exit_code == 1, r.output
    assert "built 2 case(s) (kvasir_seg 2)" in said and "in 2 source(s)" in said
    assert "source not built gone" in said and "nowhere" in said
    assert "error: 1 source(s) not built" in said and "re-run" in said
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert set(report["failed_sources"]) == {"gone"}


def test_a_recipe_refuses_the_options_of_one_source(tmp_path):
    recipe = _recipe(tmp_path, f"{{id: kvasir_seg, path: {layouts.make_kvasir(tmp_path / 'data', n_cases=1)}}}")
    r = runner.invoke(app, ["build", str(recipe), str(tmp_path / "out"), "--layout", "msd", "--split", "1,0,0"])
    assert r.exit_code == 2 and "--layout, --split" in _said(r) and "recipe" in _said(r)
    assert not (tmp_path / "out").exists()
    r = runner.invoke(app, ["build", str(tmp_path / "nope"), str(tmp_path / "o")])
    assert r.exit_code == 2 and "nope: no such dataset folder or recipe file" in _said(r)


def test_build_recipe_is_a_hidden_alias_of_build(tmp_path):
    commands = typer.main.get_command(app).commands
    assert commands["build-recipe"].hidden and not commands["build"].hidden
    kvasir = layouts.make_kvasir(tmp_path / "data", n_cases=2)
    recipe = _recipe(tmp_path, f"{{id: kvasir_seg, path: {kvasir}}}")
    r = runner.invoke(app, ["build-recipe", str(recipe), str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    r2 = runner.invoke(app, ["build", str(recipe), str(tmp_path / "b")])
    assert r2.exit_code == 0, r2.output
    for name in ("cases.json", "annotations/train.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    r = runner.invoke(app, ["build-recipe", str(kvasir), str(tmp_path / "c")])
    assert r.exit_code == 2 and "medglip build" in _said(r)
