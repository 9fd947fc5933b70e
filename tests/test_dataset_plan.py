"""One build driver for a single source and a recipe; medglip.build as the deprecated name of medglip.dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import sys
import warnings
from pathlib import Path

import layouts
import pytest

from medglip.dataset import BuildConfig, Recipe, build, merge, parse_recipe
from medglip.dataset.plan import RecipePlan, SourcePlan, job_for, plan_of, plan_of_folder
from medglip.errors import MedglipError


def _pngs(out: Path) -> list[str]:
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "images").rglob("*.png"))


def test_a_source_and_its_one_source_recipe_go_through_the_same_steps(tmp_path):
    src = layouts.make_kvasir(tmp_path / "data")
    single = build(BuildConfig(source=str(src)), tmp_path / "single")
    recipe = parse_recipe({"name": "one", "sources": [{"id": "polyps", "path": str(src), "catalog": False}]})
    several = build(recipe, tmp_path / "recipe")
    assert single.n_cases == several.n_cases == 3 and single.merged and several.merged
    assert single.merged.images == several.merged.images
    assert _pngs(tmp_path / "single") == _pngs(tmp_path / "recipe")  # the same per-case machinery
    assert all(k.startswith("polyps/") for k in several.done)       # a recipe names cases by source id
    assert not any(k.startswith("polyps/") for k in single.done)    # a single build keeps the adapter's
    assert isinstance(plan_of_folder(tmp_path / "single"), SourcePlan)
    assert isinstance(plan_of_folder(tmp_path / "recipe"), RecipePlan)
    again = build(recipe, tmp_path / "recipe")
    assert again.done == [] and len(again.skipped) == 3


def test_a_recipe_with_every_shared_setting_changed_merges_from_its_folder(tmp_path):
    # the merge reads the plan back from build_config.json: every setting a recipe shares must survive
    # the round trip, or the merge looks for records stamped with another fingerprint
    src = layouts.make_kvasir(tmp_path / "data")
    recipe = parse_recipe({"name": "older", "sources": [{"id": "polyps", "path": str(src), "catalog": False}],
                           "settings": {"min_pixels": 5, "negative_ratio": 0.3}})
    # as a benchmark builds an older input pipeline: the settings changed in Python, not in the YAML
    recipe = dataclasses.replace(recipe, settings=dataclasses.replace(recipe.settings, input_version=2))
    result = build(recipe, tmp_path / "recipe")
    assert result.merged and sum(result.merged.images.values()) == 3
    back = plan_of_folder(tmp_path / "recipe")
    assert isinstance(back, RecipePlan) and back.recipe.settings == recipe.settings


def test_job_for_reads_a_recipe_file_or_takes_a_folder(tmp_path):
    config = BuildConfig(source="unset", plane="coronal")
    folder = tmp_path / "ds"
    folder.mkdir()
    job = job_for(folder, config)
    assert isinstance(job, BuildConfig) and job.source == str(folder) and job.plane == "coronal"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("recipe: 1\nname: r\nsources:\n  - {id: a, path: ds}\n")
    job = job_for(recipe, config)
    assert isinstance(job, Recipe) and job.sources[0].path == str(folder.resolve())
    with pytest.raises(MedglipError, match="nowhere: no such dataset folder or recipe file"):
        job_for(tmp_path / "nowhere", config)


def test_plan_of_refuses_what_is_not_a_build():
    with pytest.raises(TypeError, match="BuildConfig or a Recipe, got str"):
        plan_of("some/folder")  # type: ignore[arg-type]


def test_merging_a_folder_without_a_build_names_it(tmp_path):
    with pytest.raises(MedglipError, match=f"{tmp_path.name}: not a medglip build folder"):
        merge(tmp_path)


def test_the_old_package_name_still_imports_with_a_warning(monkeypatch):
    for name in [n for n in sys.modules if n == "medglip.build" or n.startswith("medglip.build.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.warns(DeprecationWarning, match="medglip.build is renamed medglip.dataset"):
        old = importlib.import_module("medglip.build")
    import medglip.dataset as new
    from medglip.dataset import merging, plan, runner

    assert old.build is new.build and old.merge is new.merge  # ``medglip.build.merge`` was the function
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the submodules come from the one warning above
        assert importlib.import_module("medglip.build.merge") is merging
        assert importlib.import_module("medglip.build.runner") is runner
        from medglip.build.recipe_build import build_recipe, source_refs
    assert source_refs is plan.source_refs and build_recipe is runner.build_recipe
