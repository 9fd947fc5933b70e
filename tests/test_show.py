"""Tests of medglip.show (and its drawer, medglip.core.draw) on a tiny hand-made grounding dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from medglip import show as S
from medglip.core import draw as D
from medglip.errors import MedglipError

GRAY = 100
# image 1: 60x40 axial MR, scaled x10 by default; mask/box = rows 10..24, cols 20..39
MASK_ROWS, MASK_COLS = (10, 25), (20, 40)
BBOX = [20, 10, 20, 15]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _write_png(root: Path, rel: str, width: int, height: int, value: int) -> None:
    path = root / "images" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), value, np.uint8)).save(path)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "OUT"
    _write_png(root, "brainMR/case 01/a_7.png", 60, 40, GRAY)
    _write_png(root, "kvasir/cju1/cju1.png", 64, 48, 80)
    _write_png(root, "brainMR/case 02/a_3.png", 60, 40, GRAY)
    m1 = np.zeros((40, 60), bool)
    m1[MASK_ROWS[0]:MASK_ROWS[1], MASK_COLS[0]:MASK_COLS[1]] = True
    m2 = np.zeros((48, 64), bool)
    m2[0:6, 30:40] = True  # touches the top edge: the label cannot go above the box
    base = {"modality": "MR", "split": "train", "slice_axis": 2, "pixel_spacing": [1.0, 1.0]}
    images = [
        {**base, "id": 1, "file_name": "brainMR/case 01/a_7.png", "width": 60, "height": 40,
         "source": "brainMR", "case_id": "case 01/a", "slice_index": 7, "slice_plane": "axial",
         "negative": False},
        {**base, "id": 2, "file_name": "kvasir/cju1/cju1.png", "width": 64, "height": 48,
         "modality": "ENDO", "source": "kvasir", "case_id": "cju1", "slice_axis": None,
         "slice_index": None, "slice_plane": "2d", "negative": False},
        {**base, "id": 3, "file_name": "brainMR/case 02/a_3.png", "width": 60, "height": 40,
         "source": "brainMR", "case_id": "case 02", "slice_index": 3, "slice_plane": "axial",
         "negative": True},
    ]
    categories = [
        {"id": 3, "name": "left kidney", "supercategory": "kidney", "level": "organ"},
        {"id": 5, "name": "polyp", "supercategory": "polyp", "level": "lesion"},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": BBOX, "area": int(m1.sum()),
         "segmentation": _rle(m1), "iscrowd": 0, "phrase": "left kidney", "level": "organ"},
        {"id": 2, "image_id": 2, "category_id": 5, "bbox": [30, 0, 10, 6], "area": int(m2.sum()),
         "segmentation": _rle(m2), "iscrowd": 0, "phrase": "polyp", "level": "lesion"},
    ]
    (root / "annotations").mkdir(parents=True)
    coco = {"images": images, "annotations": anns, "categories": categories}
    (root / "annotations" / "train.json").write_text(json.dumps(coco))
    (root / "annotations" / "test.json").write_text(json.dumps({**coco, "annotations": []}))
    return root


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations" / "train.json").read_text())


def _render(root: Path, image_id: int, **kw) -> np.ndarray:
    coco = _coco(root)
    image = next(im for im in coco["images"] if im["id"] == image_id)
    anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
    cats = {c["id"]: c for c in coco["categories"]}
    return np.asarray(S.render_image(root, image, anns, cats, **kw)).astype(int)


def test_auto_scale_and_box_rect():
    assert D.auto_scale(60, 40) == 10  # ceil(384 / 40)
    assert D.auto_scale(120, 45) == 9
    assert D.auto_scale(512, 512) == 1
    assert D.box_rect([20, 10, 20, 15], 10) == (200, 100, 399, 249)
    assert D.box_rect([3, 4, 1, 1], 1) == (3, 4, 3, 4)  # one pixel: columns x..x+w-1


def test_render_size_mask_tint_and_untouched_background(dataset: Path):
    img = _render(dataset, 1)
    assert img.shape == (400 + D.FOOTER_HEIGHT, 600, 3)
    colour = np.array(D.category_color(3))
    expected = np.rint(GRAY * (1 - D.MASK_ALPHA) + colour * D.MASK_ALPHA)
    centre = img[(MASK_ROWS[0] + MASK_ROWS[1]) * 5, (MASK_COLS[0] + MASK_COLS[1]) * 5]
    np.testing.assert_allclose(centre, expected, atol=1)
    assert (img[300:390, 450:560] == GRAY).all()  # far from mask, box, label and side markers
    no_masks = _render(dataset, 1, draw_masks=False, draw_boxes=False, draw_labels=False)
    assert (no_masks[40:360, 40:560] == GRAY).all()  # nothing but the side markers drawn


def test_box_outline_on_pixel_edges(dataset: Path):
    x0, y0, x1, y1 = D.box_rect(BBOX, 10)
    lw = max(2, round(10 / 3))
    colour = list(D.category_color(3))
    img = _render(dataset, 1, draw_masks=False, draw_labels=False)
    ym, xm = (y0 + y1) // 2, (x0 + x1) // 2
    assert img[ym, x0].tolist() == colour and img[ym, x1].tolist() == colour
    assert img[ym, x0 + lw - 1].tolist() == colour and img[ym, x1 - lw + 1].tolist() == colour
    assert img[ym, x0 - 1].tolist() == [GRAY] * 3 and img[ym, x1 + 1].tolist() == [GRAY] * 3
    assert img[ym, x0 + lw].tolist() == [GRAY] * 3 and img[ym, x1 - lw].tolist() == [GRAY] * 3
    assert img[y0, xm].tolist() == colour and img[y1, xm].tolist() == colour
    assert img[y0 - 1, xm].tolist() == [GRAY] * 3 and img[y1 + 1, xm].tolist() == [GRAY] * 3
    # with masks the outline is still on the same edges and the inside is tinted, not box-coloured
    full = _render(dataset, 1, draw_labels=False)
    assert full[ym, x0].tolist() == colour and full[ym, x0 - 1].tolist() == [GRAY] * 3
    assert full[ym, x0 + lw].tolist() not in (colour, [GRAY] * 3)


def test_label_above_box_with_text(dataset: Path):
    x0, y0, _, _ = D.box_rect(BBOX, 10)
    colour = list(D.category_color(3))
    img = _render(dataset, 1)
    band = img[y0 - D.LINE_HEIGHT:y0, x0:x0 + 60].reshape(-1, 3).tolist()
    n_fill = sum(p == colour for p in band)
    n_text = sum(p != colour and p != [GRAY] * 3 for p in band)
    assert n_fill > 0.4 * len(band) and n_text > 20
    plain = _render(dataset, 1, draw_labels=False)
    assert (plain[y0 - D.LINE_HEIGHT:y0, x0:x0 + 60] == GRAY).all()


def test_label_kept_inside_image_and_footer(dataset: Path):
    img = _render(dataset, 2)  # 64x48 2D image, box on the top edge, scale 8
    assert img.shape == (48 * 8 + D.FOOTER_HEIGHT, 64 * 8, 3)
    colour = list(D.category_color(5))
    x0, y0, x1, y1 = D.box_rect([30, 0, 10, 6], 8)
    below = img[y1 + 1:y1 + 1 + D.LINE_HEIGHT, x0:x0 + 30].reshape(-1, 3).tolist()
    assert sum(p == colour for p in below) > 0.4 * len(below)  # label moved below the box
    footer = img[48 * 8:]
    assert (footer > 200).any()  # footer text drawn on the dark band


def _marker_reference(text: str, xy: tuple[int, int], anchor: str) -> np.ndarray:
    ref = Image.new("RGB", (600, 400), (GRAY,) * 3)
    D.draw_marker(ImageDraw.Draw(ref), xy, text, anchor)
    return np.asarray(ref).astype(int)


def test_side_markers_only_on_radiological_slices(dataset: Path):
    assert D.SIDE_MARKERS["axial"] == ("A", "P", "R", "L")  # patient's left on the image's right
    axial = _render(dataset, 1, draw_masks=False, draw_boxes=False, draw_labels=False)[:400]
    right, left, top = (slice(170, 230), slice(560, 600)), (slice(170, 230), slice(0, 40)), \
        (slice(0, 30), slice(270, 330))
    assert (axial[right] == _marker_reference("L", (596, 200), "rm")[right]).all()
    assert (axial[left] == _marker_reference("R", (4, 200), "lm")[left]).all()
    assert (axial[top] == _marker_reference("A", (300, 3), "mt")[top]).all()
    assert not (axial[right] == _marker_reference("R", (596, 200), "rm")[right]).all()
    flat = _render(dataset, 2, draw_masks=False, draw_boxes=False, draw_labels=False)
    assert list(D.MARKER_COLOR) not in flat[:48 * 8].reshape(-1, 3).tolist()


def test_negative_image_renders(dataset: Path, tmp_path: Path):
    img = _render(dataset, 3)
    assert img.shape == (400 + D.FOOTER_HEIGHT, 600, 3)
    paths = S.show(dataset, tmp_path / "neg", image_ids=[3], grid=False)
    assert [p.name for p in paths] == ["brainMR_case_02_axial3.png"]


def test_show_writes_pngs_and_overview(dataset: Path, tmp_path: Path):
    out = tmp_path / "show"
    paths = S.show(dataset, out, positives_only=False)
    names = [p.name for p in paths]
    assert names == ["brainMR_case_01_a_axial7.png", "kvasir_cju1.png", "brainMR_case_02_axial3.png",
                     "overview.png"]
    assert all(p.is_file() for p in paths)
    assert Image.open(paths[0]).size == (600, 400 + D.FOOTER_HEIGHT)
    sheet = np.asarray(Image.open(out / "overview.png").convert("RGB")).astype(int)
    t = S.TILE_SIZE
    assert sheet.shape == (2 * t, 2 * t, 3)  # 3 images -> 2x2 grid
    filled = [not (sheet[r * t:(r + 1) * t, c * t:(c + 1) * t] == D.BACKGROUND).all()
              for r in range(2) for c in range(2)]
    assert filled == [True, True, True, False]
    # positives only (default) skips the negative image; n and seed give a deterministic sample
    assert [p.name for p in S.show(dataset, tmp_path / "pos", grid=False)] == names[:2]
    one = S.show(dataset, tmp_path / "one", n=1, seed=3, grid=False)
    assert len(one) == 1 and one == S.show(dataset, tmp_path / "one", n=1, seed=3, grid=False)


def test_show_filters(dataset: Path, tmp_path: Path):
    by_case = S.show(dataset, tmp_path / "a", case_ids=["cju1"], grid=False)
    assert [p.name for p in by_case] == ["kvasir_cju1.png"]
    by_phrase = S.show(dataset, tmp_path / "b", phrases=["left kidney"], grid=False)
    assert [p.name for p in by_phrase] == ["brainMR_case_01_a_axial7.png"]


def test_errors_name_the_culprit(dataset: Path, tmp_path: Path):
    with pytest.raises(MedglipError, match=r"'val'.*test, train"):
        S.show(dataset, tmp_path, split="val")
    with pytest.raises(MedglipError, match="999"):
        S.show(dataset, tmp_path, image_ids=[1, 999])
    with pytest.raises(MedglipError, match="nocase"):
        S.show(dataset, tmp_path, case_ids=["nocase"])
    with pytest.raises(MedglipError, match="right lung"):
        S.show(dataset, tmp_path, phrases=["right lung"])
    with pytest.raises(MedglipError, match="no image"):
        S.show(dataset, tmp_path, split="test")  # only negatives there, positives_only=True


def test_label_placement_inside_image_and_off_other_labels():
    canvas, size = (200, 100), (80, 18)
    assert D._place_label(size, (10, 40, 50, 60), canvas, []) == (10, 22, 89, 39)  # above
    assert D._place_label(size, (150, 40, 199, 60), canvas, [])[2] == 199  # shifted left to fit
    assert D._place_label(size, (10, 5, 50, 60), canvas, [])[1] == 61  # no room above: below
    first = D._place_label(size, (10, 40, 50, 60), canvas, [])
    second = D._place_label(size, (20, 40, 60, 60), canvas, [first])
    assert second[1] == 61 and not D._overlaps(first, second)
    whole = D._place_label(size, (0, 0, 199, 99), canvas, [])  # box fills the image: inside its top
    assert whole == (0, 0, 79, 17)
