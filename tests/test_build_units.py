"""Unit tests of the build steps: orientation, instances, intensity, config, splits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medglip.dataset.config import BuildConfig
from medglip.dataset.instances import instances_from_slice
from medglip.core.masks import decode_segmentation, encode_rle
from medglip.core.intensity import parse_window, percentile_range, window_to_uint8
from medglip.dataset.merging import assign_splits, odvg_line
from medglip.core.orient import axis_codes, plan_slices
from medglip.core.geometry import Geometry


def _decode_rle(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    return decode_segmentation(rle, h, w)


def _geometries():
    """Every axis permutation with every sign combination (48 grids), plus one oblique grid."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            d = np.zeros((3, 3))
            for a, (w, s) in enumerate(zip(perm, signs)):
                d[w, a] = s
            yield Geometry(spacing=(1.0, 2.0, 3.0), origin=(10.0, -20.0, 5.0), direction=tuple(d.ravel()))
    c, s = np.cos(0.3), np.sin(0.3)
    yield Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=(c, -s, 0, s, c, 0, 0, 0, 1))


def _world_marker_volume(geom: Geometry, shape=(9, 10, 11)):
    """A volume with the voxel nearest to each world direction's extreme tagged."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = geom.index_to_world(idx)
    return idx, world


@pytest.mark.parametrize("geom", list(_geometries()))
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_display_orientation_follows_radiological_convention(geom, plane):
    shape = (9, 10, 11)
    idx, world = _world_marker_volume(geom, shape)
    plan = plan_slices(geom, shape, plane)
    # world coordinate of every voxel along each LPS axis, as volumes
    wx, wy, wz = (world[:, a].reshape(shape) for a in range(3))
    k = plan.n_slices // 2
    sx, sy, sz = plan.take(wx, k), plan.take(wy, k), plan.take(wz, k)
    row_step = {"axial": sy, "coronal": -sz, "sagittal": -sz}[plane]
    col_step = {"axial": sx, "coronal": sx, "sagittal": sy}[plane]
    # rows run anterior→posterior (axial) / superior→inferior; columns run right→left (left on the right)
    assert np.all(np.diff(row_step, axis=0).mean() > 0)
    assert np.all(np.diff(col_step, axis=1).mean() > 0)
    # pixel_to_voxel and pixel_to_world agree with the sliced arrays
    h, w = plan.display_shape
    for (y, x) in [(0, 0), (h - 1, w - 1), (h // 2, 1)]:
        vox = plan.pixel_to_voxel(k) @ np.array([x, y, 0, 1.0])
        assert np.allclose(geom.index_to_world(vox), [sx[y, x], sy[y, x], sz[y, x]])
        assert np.allclose(plan.pixel_to_world(k, geom) @ np.array([x, y, 0, 1.0]), [sx[y, x], sy[y, x], sz[y, x]])


def test_axis_codes_rejects_degenerate_direction():
    with pytest.raises(ValueError, match="degenerate"):
        axis_codes(Geometry(spacing=(1, 1, 1), origin=(0, 0, 0), direction=(1, 0, 0, 1, 0, 0, 0, 0, 1)))


def test_take_keeps_channels():
    geom = Geometry.identity(3)
    vol = np.random.default_rng(0).normal(size=(4, 5, 6, 2))
    plan = plan_slices(geom, vol.shape[:3], "axial")
    assert plan.take(vol, 3).shape == (5, 4, 2)
    assert np.array_equal(plan.take(vol, 3)[..., 1], plan.take(vol[..., 1], 3))


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_varying_marks_the_slices_that_hold_more_than_one_value(plane, order):
    geom = Geometry.identity(3)
    vol = np.full((6, 7, 8), -1024, np.int16, order=order)
    plan = plan_slices(geom, vol.shape, plane)
    idx = [slice(None)] * 3
    idx[plan.slice_axis] = 2
    vol[tuple(idx)][1, 1] = 40  # one voxel of contrast in slice 2
    idx[plan.slice_axis] = 4
    vol[tuple(idx)] = 32767  # a constant slice at the far end of int16 (max - min would wrap)
    expect = [np.ptp(plan.view(vol.astype(np.int64), k)) > 0 for k in range(plan.n_slices)]
    got = plan.varying(vol)
    assert got.tolist() == expect and got.tolist().count(True) == 1


def test_instances_one_box_per_component_with_exact_edges():
    lab = np.zeros((20, 30), np.int16)
    lab[2:5, 3:8] = 1          # component A of label 1: rows 2-4, cols 3-7
    lab[10:12, 20:29] = 1      # component B of label 1
    lab[15, 15] = 2            # a one-pixel speck of label 2: filtered by min_pixels
    lab[0, 0] = 9              # not named
    insts, unknown = instances_from_slice(lab, names={1: "a", 2: "b"}, min_pixels=2)
    assert unknown == [9]
    boxes = sorted(i.bbox for i in insts)
    assert boxes == [(3, 2, 5, 3), (20, 10, 9, 2)]
    assert sorted(i.area for i in insts) == [15, 18]
    for inst in insts:
        m = _decode_rle(inst.rle)
        x, y, w, h = inst.bbox
        assert m.sum() == inst.area and m[y:y + h, x:x + w].sum() == inst.area


def test_instances_diagonal_pixels_are_one_component_and_area_filter_in_mm2():
    lab = np.zeros((10, 10), np.uint8)
    lab[1, 1] = lab[2, 2] = lab[3, 3] = 1
    insts, _ = instances_from_slice(lab, names={1: "x"}, min_pixels=1)
    assert len(insts) == 1 and insts[0].bbox == (1, 1, 3, 3)
    # 3 pixels of 1 mm² each: dropped at 4 mm², kept at 2 mm²
    assert instances_from_slice(lab, names={1: "x"}, min_area_mm2=4, pixel_area_mm2=1.0)[0] == []
    assert len(instances_from_slice(lab, names={1: "x"}, min_area_mm2=2, pixel_area_mm2=1.0)[0]) == 1


def test_instances_per_value_merges_components():
    lab = np.zeros((10, 10), np.uint8)
    lab[0, 0:2] = 3
    lab[8, 8:10] = 3
    insts, _ = instances_from_slice(lab, names={3: "obj"}, per_value=True)
    assert len(insts) == 1 and insts[0].bbox == (0, 0, 10, 9) and insts[0].area == 4


def test_rle_roundtrip():
    m = np.random.default_rng(1).random((33, 17)) > 0.5
    rle = encode_rle(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [33, 17]
    assert np.array_equal(_decode_rle(rle), m)


def test_window_and_percentiles():
    x = np.array([-2000, -160, 40, 240, 3000], np.int16)
    assert window_to_uint8(x, -160, 240).tolist() == [0, 0, 128, 255, 255]
    vol = np.zeros((10, 10, 10), np.float32)
    vol[2:8, 2:8, 2:8] = np.linspace(100, 200, 216).reshape(6, 6, 6)
    lo, hi = percentile_range(vol, 0, 100)
    assert (lo, hi) == (100.0, 200.0)  # zero background ignored


def test_config_validation_and_fingerprint():
    with pytest.raises(ValueError, match="display_window"):
        BuildConfig(source="x", display_window="lungs")
    with pytest.raises(ValueError, match="three"):
        BuildConfig(source="x", ct_windows=((-1350, 150),))
    assert BuildConfig(source="a").fingerprint() != BuildConfig(
        source="a", ct_windows=((-160, 240),) * 3).fingerprint()  # the input windows change the pixels
    with pytest.raises(ValueError, match="plane"):
        BuildConfig(source="x", plane="oblique")
    assert parse_window("-100,300") == (-100.0, 300.0)
    a, b = BuildConfig(source="a"), BuildConfig(source="b")
    assert a.fingerprint() == b.fingerprint()  # the path does not change outputs
    assert a.fingerprint() != BuildConfig(source="a", negative_ratio=0.5).fingerprint()
    c = BuildConfig(source="a", test_cases=("lung2",), label_mapping=(("s", (("x", "liver"),)),))
    assert BuildConfig.from_json(c.to_json()) == c


def test_splits_by_case_deterministic_and_forced():
    recs = [{"key": f"s/c{i}", "case_id": f"c{i}", "source": "s", "split": None} for i in range(20)]
    recs.append({"key": "s/t", "case_id": "t", "source": "s", "split": "validation"})
    recs.append({"key": "s/u", "case_id": "u", "source": "s", "split": "train"})
    cfg = BuildConfig(source="x", test_cases=("c3",), seed=7)
    a = assign_splits(recs, cfg)
    assert a == assign_splits(list(reversed(recs)), cfg)
    assert a["s/c3"] == "test" and a["s/t"] == "val"
    assert sorted(set(a.values())) == ["test", "train", "val"]
    assert assign_splits(recs, BuildConfig(source="x", seed=8)) != assign_splits(recs, BuildConfig(source="x", seed=7))
    assert a["s/u"] == "train"
    one = assign_splits(recs[:1], BuildConfig(source="x"))
    assert one == {"s/c0": "train"}
    # a source that calls every case "train" (nnU-Net imagesTr) is still split by the ratios
    all_train = [{**r, "split": "train"} for r in recs[:20]]
    assert sorted(set(assign_splits(all_train, BuildConfig(source="x")).values())) == ["test", "train", "val"]
    # one held-out case declared by the source, the others free
    held = [{**r, "split": None} for r in recs[:4]] + [{"key": "s/h", "case_id": "h", "source": "s", "split": "test"}]
    got = assign_splits(held, BuildConfig(source="x", split_ratios=(1, 0, 0)))
    assert got["s/h"] == "test" and {got[r["key"]] for r in held[:4]} == {"train"}


def test_odvg_line_spans_point_at_phrases():
    img = {"file_name": "a/b.png", "height": 10, "width": 20, "modality": "CT"}
    anns = [{"phrase": "liver", "bbox": [1, 2, 3, 4]}, {"phrase": "left kidney", "bbox": [5, 5, 2, 2]},
            {"phrase": "liver", "bbox": [9, 1, 1, 1]}]
    line = odvg_line(img, anns, [])
    cap = line["grounding"]["caption"]
    assert cap == "liver. left kidney."
    for r in line["grounding"]["regions"]:
        s, e = r["tokens_positive"][0]
        assert cap[s:e] == r["phrase"]
    assert line["grounding"]["regions"][0]["bbox"] == [1, 2, 4, 6]
    neg = odvg_line(img, [], ["lung tumor"])
    assert neg["grounding"] == {"caption": "lung tumor.", "regions": []}


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, bool])
@pytest.mark.parametrize("order", ["C", "F"])
def test_label_counts_equal_a_bincount_of_every_voxel(dtype, order):
    from medglip.case import label_counts

    rng = np.random.default_rng(3)
    top = 2 if dtype is bool else 9
    lab = np.asarray(rng.integers(0, top, size=(13, 11, 7)) * (rng.random((13, 11, 7)) < 0.2), dtype=dtype, order=order)
    np.testing.assert_array_equal(label_counts(lab), np.bincount(lab.ravel().astype(np.int64)))
    assert label_counts(np.zeros((4, 4), dtype)).tolist() == [16]
    if dtype not in (bool, np.uint8, np.uint16):
        lab[3, 2, 1] = -2
        with pytest.raises(ValueError, match="negative label value -2"):
            label_counts(lab)
    with pytest.raises(ValueError, match="integers"):
        label_counts(lab.astype(np.float32))
