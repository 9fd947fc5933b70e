"""Recipe builds: several sources into one dataset; growth, resume, shards, faults; the multi-source card."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import layouts
import pytest
from catalog_layouts import write

from medglip.dataset import Shard, build_recipe, load_recipe, merge, parse_recipe
from medglip.catalog import get_entry
from medglip.errors import MedglipError, RecipeError
from medglip.modality import MODALITIES


def _fixture(root: Path, entry_id: str) -> Path:
    sides = {"tumor": "right", "cyst": "right", "RV": "right", "LV": "left"}
    return write(get_entry(entry_id), root, sides)


def _weird(root: Path) -> Path:
    """An nnU-Net dataset whose label 2 has a name no ontology knows."""
    src = layouts.make_nnunetv2(root, n_cases=2, with_test=False)
    meta = json.loads((src / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "liver": 1, "zorblax": 2}
    (src / "dataset.json").write_text(json.dumps(meta))
    return src


def _coco_all(out: Path) -> tuple[list[dict], list[dict], dict]:
    imgs, anns, info = [], [], {}
    for s in ("train", "val", "test"):
        d = json.loads((out / "annotations" / f"{s}.json").read_text())
        imgs += d["images"]
        anns += d["annotations"]
        info = d["info"]
    return imgs, anns, info


def _digest(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.relative_to(out).as_posix().startswith(("records/", "failures/"))}


def test_multi_source_recipe_and_its_card(tmp_path):
    data = tmp_path / "data"
    spec = {"name": "mix", "settings": {"negative_ratio": 0, "seed": 3}, "sources": [
        {"id": "lits", "path": str(_fixture(data, "lits"))},
        {"id": "kits23", "path": str(_fixture(data, "kits23"))},
        {"id": "acdc", "path": str(_fixture(data, "acdc"))},
        {"id": "kvasir_seg", "path": str(layouts.make_kvasir(data)), "weight": 2.5},
        {"id": "weird", "path": str(_weird(data)), "split": "test", "licence": "CC0"},
    ]}
    recipe = parse_recipe(spec)
    out = tmp_path / "out"
    res = build_recipe(recipe, out)
    assert not res.failed and not res.failed_sources and res.merged is not None
    assert res.built_by_source == {"lits": 1, "kits23": 1, "acdc": 2, "kvasir_seg": 3, "weird": 2}
    imgs, anns, info = _coco_all(out)
    # case ids unique across sources, files under the source id
    cases = {(i["source"], i["case_id"]) for i in imgs}
    assert {s for s, _ in cases} == {"lits", "kits23", "acdc", "kvasir_seg", "weird"}
    assert all(i["file_name"].startswith(i["source"] + "/") for i in imgs)
    split_of = {}
    for i in imgs:
        assert split_of.setdefault((i["source"], i["case_id"]), i["split"]) == i["split"]
    assert {split_of[c] for c in cases if c[0] == "weird"} == {"test"}
    assert len({split_of[c] for c in cases if c[0] == "acdc"}) == 1  # both frames of patient001 together
    # weights and licences travel with the dataset
    assert info["sources"]["kvasir_seg"]["weight"] == 2.5 and info["sources"]["weird"]["licence"] == "CC0"
    assert info["sources"]["kits23"]["licence"] == get_entry("kits23").licence
    # the card's counts are the annotations' counts
    card = json.loads((out / "card.json").read_text())
    source_of = {i["id"]: i["source"] for i in imgs}
    assert card["annotations_by_source"] == dict(Counter(source_of[a["image_id"]] for a in anns))
    for k in ("modality", "region", "class", "level"):
        assert card[f"annotations_by_{k}"] == dict(Counter(a[k] for a in anns)), k
    assert card["sources"]["kvasir_seg"]["weight"] == 2.5
    md = (out / "card.md").read_text()
    n_kits = card["annotations_by_source"]["kits23"]
    assert re.search(rf"\| kits23 \| kits23 \| kits \| 1 \| \d+ \| {n_kits} \| 1 \| CC BY-NC-SA 4.0 \|", md)
    assert f"| kvasir_seg | kvasir_seg | kvasir | 3 | 3 | {card['annotations_by_source']['kvasir_seg']} | 2.5 |" in md
    for mod, n in Counter(a["modality"] for a in anns).items():
        assert f"| {mod} | {n:,} |" in md
    # label conflicts resolved and unmapped names
    tumor = next(c for c in card["label_conflicts"] if c["name"] == "tumor")
    assert tumor["phrases"] == {"kidney tumor": ["kits23"], "liver tumor": ["lits"]}
    assert "| `tumor` | kidney tumor (kits23); liver tumor (lits) |" in md
    assert card["unmapped"] == [{"name": "zorblax", "sources": ["weird"], "cases": 2}]
    assert "| `zorblax` | weird | 2 |" in md
    for rel in card["plots"].values():
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({rel})" in md
    assert set(card["plots"]) == {"modality", "region", "level", "class", "source"}
    # the trainer reads the weights and accepts the recipe's input pipeline, source by source
    from medglip.core.pipeline import InputConfig
    from medglip.train import GroundingDataset

    ds = GroundingDataset(out, "train", image_size=64, prompt_builder=lambda p: [], modalities=MODALITIES,
                          input_config=InputConfig())
    assert ds.source_weights["kvasir_seg"] == 2.5 and ds.source_weights["lits"] == 1.0
    with pytest.raises(MedglipError, match="built with input"):
        GroundingDataset(out, "train", image_size=64, prompt_builder=lambda p: [], modalities=MODALITIES,
                         input_config=InputConfig(ct_windows=((-160.0, 240.0),) * 3))


def test_adding_a_source_builds_only_that_source(tmp_path):
    data = tmp_path / "data"
    lits, kvasir, kits = _fixture(data, "lits"), layouts.make_kvasir(data), _fixture(data, "kits23")
    first = [{"id": "lits", "path": str(lits)}, {"id": "kvasir_seg", "path": str(kvasir)}]
    out = tmp_path / "out"
    r1 = build_recipe(parse_recipe({"name": "grow", "sources": first}), out)
    assert len(r1.done) == 4 and r1.merged is not None
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").rglob("*.json")}
    r2 = build_recipe(parse_recipe({"name": "grow", "sources": first + [{"id": "kits23", "path": str(kits)}]}), out)
    assert r2.done == ["kits23/case_00000"] and sorted(r2.skipped) == sorted(r1.done)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # old records untouched
    imgs, _, _ = _coco_all(out)
    assert {i["source"] for i in imgs} == {"lits", "kvasir_seg", "kits23"}
    # changing one source's label map rebuilds that source only
    changed = [first[0], {**first[1], "label_map": {"polyp": "adenomatous polyp"}}, {"id": "kits23", "path": str(kits)}]
    r3 = build_recipe(parse_recipe({"name": "grow", "sources": changed}), out)
    assert sorted(r3.done) == sorted(k for k in r1.done if k.startswith("kvasir_seg/"))
    _, anns, _ = _coco_all(out)
    assert {a["phrase"] for a in anns if a["source_label"] == "polyp"} == {"adenomatous polyp"}


def test_shards_side_by_side_and_workers_give_the_same_dataset(tmp_path):
    data = tmp_path / "data"
    spec = {"name": "shards", "sources": [
        {"id": "ct", "path": str(layouts.make_nnunetv2(data, n_cases=4, with_test=False))},
        {"id": "kvasir_seg", "path": str(layouts.make_kvasir(data))},
        {"id": "busi", "path": str(layouts.make_busi(data))}]}
    recipe = parse_recipe(spec)
    ref = tmp_path / "ref"
    assert build_recipe(recipe, ref, workers=2).merged is not None
    out = tmp_path / "sharded"
    r0 = build_recipe(recipe, out, shard=Shard.parse("0/2"))
    assert r0.merged is None and r0.pending == 5 and not (out / "card.json").exists()
    assert {k.split("/")[0] for k in r0.done} == {"ct", "kvasir_seg", "busi"}  # shards cut across sources
    with pytest.raises(MedglipError, match="not built yet"):
        merge(out)
    r1 = build_recipe(recipe, out, shard=Shard.parse("1/2"))
    assert r1.merged is not None and not set(r0.done) & set(r1.done)
    assert _digest(out) == _digest(ref)
    merge(out)  # `medglip merge` on a recipe build gives the same files again
    assert _digest(out) == _digest(ref)


def test_bad_case_and_bad_source_are_reported_and_the_rest_builds(tmp_path):
    data = tmp_path / "data"
    ct = layouts.make_nnunetv2(data, n_cases=3, with_test=False)
    (ct / "imagesTr" / "case_001_0000.nii.gz").write_bytes(b"\x1f\x8b not a nifti")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"recipe: 1\nname: faults\nsources:\n  - {{id: ct, path: {ct}}}\n"
                      f"  - {{id: kvasir_seg, path: {layouts.make_kvasir(data)}}}\n  - {{id: gone, path: nowhere}}\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "medglip", "build-recipe", str(recipe), str(out)],
                       capture_output=True, text=True)
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    assert "case_001_0000.nii.gz" in text and "gone" in text and "nowhere" in text
    report = json.loads((out / "build_report.json").read_text())
    assert [f["key"] for f in report["failures"]] == ["ct/case_001"]
    assert "no such dataset folder" in report["failed_sources"]["gone"]
    imgs, _, _ = _coco_all(out)
    assert {(i["source"], i["case_id"]) for i in imgs} >= {("ct", "case_000"), ("ct", "case_002")}
    assert "Sources not built" in (out / "card.md").read_text()
    # a single-source build refuses to write into the recipe's folder
    from medglip.dataset import BuildConfig, build

    with pytest.raises(MedglipError, match="recipe build"):
        build(BuildConfig(source=str(ct)), out)


def test_build_complete_names_the_recipe_and_the_case_that_failed(tmp_path):
    from medglip.dataset import build_complete

    ct = layouts.make_nnunetv2(tmp_path / "data", n_cases=2, with_test=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"recipe: 1\nname: samples\nsources:\n  - {{id: ct, path: {ct}}}\n")
    assert build_complete(recipe, tmp_path / "good") == tmp_path / "good"
    assert (tmp_path / "good" / "annotations" / "train.json").is_file()
    (ct / "imagesTr" / "case_001_0000.nii.gz").write_bytes(b"\x1f\x8b not a nifti")
    with pytest.raises(MedglipError, match=f"{re.escape(str(recipe))}: failed to build: .*ct/case_001"):
        build_complete(recipe, tmp_path / "bad")


@pytest.mark.parametrize("spec, match", [
    ({"sources": []}, "at least one source"),
    ({"sources": [{"id": "a", "path": "x"}, {"id": "a", "path": "y"}]}, "used twice"),
    ({"sources": [{"id": "a", "path": "x", "weight": 0}]}, "source 'a': weight must be > 0"),
    ({"sources": [{"id": "a", "path": "x", "split": "sometimes"}]}, "source 'a': split must be one of"),
    ({"sources": [{"id": "a", "path": "x", "colour": "red"}]}, r"source 'a': unknown field\(s\) \['colour'\]"),
    ({"sources": [{"id": "a b", "path": "x"}]}, "letters, digits"),
    ({"sources": [{"id": "a"}]}, "'path'"),
    ({"sources": [{"id": "a", "path": "x", "catalog": "nope"}]}, "no data set 'nope'"),
    ({"settings": {"plane": "oblique"}, "sources": [{"id": "a", "path": "x"}]}, "settings: plane"),
    ({"recipe": 9, "sources": [{"id": "a", "path": "x"}]}, "not supported"),
])
def test_recipe_errors_name_the_field(spec, match):
    with pytest.raises(RecipeError, match=match):
        parse_recipe(spec, where="r.yaml")


def test_recipe_file_paths_are_relative_to_it(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "r.yaml"
    path.write_text("sources:\n  - {id: busi, path: ../Dataset_BUSI_with_GT, split: [0.5, 0.25, 0.25]}\n")
    recipe = load_recipe(path)
    src = recipe.sources[0]
    assert Path(src.path) == (tmp_path / "Dataset_BUSI_with_GT").resolve()
    assert src.layout == "busi" and src.catalog == "busi" and src.split.ratios == (0.5, 0.25, 0.25)
    assert recipe.source_config(src).split_ratios == (0.5, 0.25, 0.25)


def test_temp_files_of_a_killed_run_are_cleared_on_resume(tmp_path):
    """What a SIGKILL during an atomic write leaves (``.<name>.<random>.tmp``) is gone after the rerun."""
    recipe = parse_recipe({"name": "kill", "sources": [{"id": "kvasir_seg", "path": str(layouts.make_kvasir(tmp_path))}]})
    out = tmp_path / "out"
    res = build_recipe(recipe, out)
    key = res.done[0]
    record = out / "records" / f"{key}.json"
    record.unlink()  # that case was being written when the run was killed
    stale = [record.parent / f".{record.name}.k1ll3d.tmp", out / "annotations" / ".train.json.x1.tmp",
             out / "card_plots" / ".annotations_by_source.png.x2.tmp", out / ".card.json.x3.tmp"]
    for p in stale:
        p.write_text("partial")
    again = build_recipe(recipe, out)
    assert again.done == [key] and again.merged is not None
    assert not list(out.rglob("*.tmp"))
