"""The dataset catalogue: its data, and one build per entry on a fixture in the entry's real layout.

Every entry's fixture (tests/catalog_layouts*.py) is written with the data set's real folder and
file naming and its real label names and values; it is read by the entry's adapter, its labels
are resolved through the ontology with the entry id as the source (as a recipe does), and each
annotation's phrase, hierarchy level and laterality must be the ones written by hand in
catalog_expected.py. In 3D, sided structures are placed on their side and the side the builder
measures must agree; on chest radiographs a "left" structure must lie on the image's right.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from catalog_expected import EXPECTED, TOTALSEG_NAMES
from catalog_layouts import write

from medglip.dataset.process import CaseBuilder
from medglip.dataset.recipe import parse_recipe
from medglip.dataset.plan import source_refs
from medglip.catalog import get_entry, load_catalog
from medglip.catalog.scan import identify, scan
from medglip.modality import MODALITIES
from medglip.ontology import load_ontology
from medglip.sources import detect_layout, load_case


def test_catalogue_is_large_and_covers_every_modality():
    cat = load_catalog()
    assert len(cat) >= 40
    assert {m for e in cat for m in e.modalities} == set(MODALITIES)
    assert set(EXPECTED) == {e.id for e in cat}
    regions = {r.name for r in load_ontology().regions}
    for e in cat:
        assert set(e.regions) <= regions, e.id
        assert e.url.startswith("http") and e.licence and e.citation, e.id


def test_every_catalogue_label_resolves_in_the_ontology():
    onto = load_ontology()
    for e in load_catalog():
        for name in e.label_names:
            r = onto.resolve(name, source=e.id, context=e.label_names)
            assert r.mapped, (e.id, name)


def _sides(entry_id: str) -> dict:
    return {name: lat for name, (_, _, lat) in EXPECTED[entry_id].items()}


XR_2D = {"jsrt", "montgomery", "shenzhen", "siim_acr"}


@pytest.mark.parametrize("entry_id", [e.id for e in load_catalog()])
def test_catalogue_entry_builds_with_its_real_names(tmp_path, entry_id):
    entry = get_entry(entry_id)
    expected = EXPECTED[entry_id]
    names = TOTALSEG_NAMES if entry_id == "totalsegmentator" else ()
    if not names:
        assert set(expected) == set(entry.label_names)
    root = write(entry, tmp_path / "data", _sides(entry_id), names=names)
    assert detect_layout(root) == entry.layout
    assert identify(root, entry.layout, load_catalog()) == entry
    recipe = parse_recipe({"name": "t", "sources": [{"id": entry_id, "path": str(root)}]})
    refs, _ = source_refs(recipe, entry_id)
    builder = CaseBuilder(config=recipe.source_config(recipe.sources[0]), out_dir=tmp_path / "out",
                          ontology=load_ontology())
    seen: dict[str, list[dict]] = {}
    for ref in refs:
        case = load_case(ref)
        assert case.modality in entry.modalities and case.source == entry_id
        rec = builder(case, ref.key)
        for img in rec["images"]:
            for a in img["annotations"]:
                seen.setdefault(a["source_label"], []).append({**a, "_width": img["width"], "_2d": img["slice_axis"] is None})
    assert set(seen) == set(expected if not names else names)
    for name, anns in seen.items():
        phrase, level, side = expected[name]
        got = {(a["phrase"], a["level"], a["laterality"]) for a in anns}
        assert got == {(phrase, level, side)}, (name, got)
        for a in anns:
            if side and not a["_2d"]:
                assert a["side"] == side, (name, a["side"])
            if side and entry_id in XR_2D:
                cx = a["bbox"][0] + a["bbox"][2] / 2
                assert (cx > a["_width"] / 2) == (side == "left"), (name, a["bbox"])


def test_scan_finds_datasets_and_the_starter_recipe_builds(tmp_path):
    from medglip.dataset import build_recipe
    from medglip.dataset.recipe import load_recipe, starter_recipe

    data = tmp_path / "data"
    for eid in ("msd_task09_spleen", "kits23", "montgomery"):
        write(get_entry(eid), data, _sides(eid))
    (data / "notes").mkdir()
    hits = scan(data)
    assert sorted((h.path.name, h.entry.id if h.entry else None) for h in hits) == [
        ("MontgomerySet", "montgomery"), ("Task09_Spleen", "msd_task09_spleen"), ("kits23", "kits23")]
    path = tmp_path / "recipe.yaml"
    path.write_text(starter_recipe(hits, name="mine").to_yaml())
    recipe = load_recipe(path)
    assert [s.id for s in recipe.sources] == [h.entry.id for h in hits]
    assert recipe.source("kits23").licence == get_entry("kits23").licence
    res = build_recipe(recipe, tmp_path / "out")
    assert not res.failed and res.merged is not None
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert set(card["annotations_by_source"]) == {"msd_task09_spleen", "kits23", "montgomery"}
    assert card["sources"]["kits23"]["licence"] == get_entry("kits23").licence


def test_chaos_pairs_pngs_by_name_and_stacks_slices_by_position(tmp_path):
    """File k holds slice z = 3 - k; the PNG named like file k must land on that slice."""
    from PIL import Image

    root = write(get_entry("chaos"), tmp_path, _sides("chaos"))
    refs = {r.case_id: r for r in detect_and_list(root)}
    case = load_case(refs["MR_2_T2SPIR"])
    pngs = sorted((root / "Train_Sets" / "MR" / "2" / "T2SPIR" / "Ground").glob("*.png"))
    for k, png in enumerate(pngs):
        z = len(pngs) - 1 - k
        assert np.array_equal(case.labels[0].array[:, :, z].T, np.asarray(Image.open(png))), png.name
    assert case.geometry.index_to_world(np.array([0, 0, 1]))[2] > case.geometry.index_to_world(np.array([0, 0, 0]))[2]


def detect_and_list(root):
    from medglip.sources import list_cases

    return list_cases(root)


def _corrupt_btcv(root):
    import nibabel as nib

    p = root / "Abdomen" / "RawData" / "Training" / "label" / "label0001.nii.gz"
    im = nib.load(p)
    arr = np.asarray(im.dataobj).copy()
    arr[0, 0, 0] = 14
    nib.save(nib.Nifti1Image(arr, im.affine), p)
    return "label0001.nii.gz", "unknown label value 14"


def _corrupt_siim(root):
    csv = root / "train-rle.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ", 12 abc"
    csv.write_text("\n".join(lines) + "\n")
    return "train-rle.csv", "not a list of integers"


def _corrupt_monuseg(root):
    xml = next((root / "Annotations").glob("*.xml"))
    text = xml.read_text()
    start = text.index('<Region Id="2"')
    xml.write_text(text[:start] + '<Region Id="2"><Vertices><Vertex X="1" Y="1"/><Vertex X="2" Y="2"/></Vertices></Region>'
                   + text[text.index("</Region>", start) + len("</Region>"):])
    return xml.name, "region 2: 2 vertices"


def _corrupt_jsrt(root):
    img = root / "All247images" / "JPCLN001.IMG"
    img.write_bytes(img.read_bytes()[:-10])
    return "JPCLN001.IMG", "not a square 16-bit JSRT image"


def _corrupt_chaos(root):
    next((root / "Train_Sets" / "CT" / "1" / "Ground").glob("*.png")).unlink()
    return "DICOM_anon", "4 DICOM slices but 3 ground-truth PNGs"


def _corrupt_mnms(root):
    for p in (root / "OpenDataset").glob("*.csv"):
        p.unlink()
    import nibabel as nib

    gt = next((root / "OpenDataset").rglob("*_sa_gt.nii.gz"))
    im = nib.load(gt)
    arr = np.asarray(im.dataobj).copy()
    arr[..., 2] = 0  # only one annotated frame left, and no CSV to say which is ES
    nib.save(nib.Nifti1Image(arr, im.affine), gt)
    return gt.name, "annotated frame"


@pytest.mark.parametrize("entry_id, corrupt", [
    ("btcv", _corrupt_btcv), ("siim_acr", _corrupt_siim), ("monuseg", _corrupt_monuseg), ("jsrt", _corrupt_jsrt),
    ("chaos", _corrupt_chaos), ("mnms", _corrupt_mnms)])
def test_bad_inputs_fail_their_case_naming_the_file(tmp_path, entry_id, corrupt):
    from medglip.errors import MedglipError

    root = write(get_entry(entry_id), tmp_path, _sides(entry_id))
    fname, reason = corrupt(root)
    errors = []
    for ref in detect_and_list(root):
        try:
            load_case(ref)
        except MedglipError as exc:
            errors.append(str(exc))
    assert len(errors) == 1, errors
    assert fname in errors[0] and reason in errors[0], errors[0]


def test_cli_catalog_lists_filters_scans_and_writes_a_recipe(tmp_path):
    from typer.testing import CliRunner

    from medglip.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["catalog", "--json", "--modality", "pathology"])
    assert r.exit_code == 0, r.output
    assert [e["id"] for e in json.loads(r.stdout)] == ["monuseg", "glas"]
    r = runner.invoke(app, ["catalog"])
    assert r.exit_code == 0 and "totalsegmentator" in r.stdout and f"{len(load_catalog())} data set(s)" in r.output
    assert runner.invoke(app, ["catalog", "--recipe-out", str(tmp_path / "r.yaml")]).exit_code == 2
    assert runner.invoke(app, ["catalog", "--modality", "sonar"]).exit_code == 2
    data = tmp_path / "data"
    write(get_entry("busi"), data, {})
    write(get_entry("kits19"), data, _sides("kits19"))
    recipe = tmp_path / "r.yaml"
    r = runner.invoke(app, ["catalog", "--scan", str(data), "--recipe-out", str(recipe), "--json"])
    assert r.exit_code == 0, r.output
    assert sorted(h["dataset"] for h in json.loads(r.stdout)) == ["busi", "kits19"]
    r = runner.invoke(app, ["build", str(recipe), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "dataset ready" in r.output and (tmp_path / "out" / "card_plots" / "annotations_by_source.png").exists()


def test_amos_names_label_15_by_sex_from_the_meta_csv_and_reads_mr_cases(tmp_path):
    from medglip.sources import list_cases

    root = write(get_entry("amos22"), tmp_path, _sides("amos22"))
    refs = {r.case_id: r for r in list_cases(root)}
    assert {k: (r.modality, r.split, dict(r.option("labels"))[15]) for k, r in refs.items()} == {
        "amos_0001": ("CT", "train", "prostate/uterus"), "amos_0507": ("MR", "val", "prostate/uterus")}
    # zenodo's meta CSV, downloaded beside amos22/
    (tmp_path / "labeled_data_meta_0000_0599.csv").write_text(
        "amos_id,Patient's Birth Date,Patient's Sex,Patient's Age,Manufacturer's Model Name,Manufacturer,Site\n"
        "1,19600101,M,062Y,X,Y,Z\n507,19700101,F,052Y,X,Y,Z\n")
    refs = {r.case_id: r for r in list_cases(root)}
    assert dict(refs["amos_0001"].option("labels"))[15] == "prostate"
    assert dict(refs["amos_0507"].option("labels"))[15] == "uterus"
