"""The CT slice adapters whose values are no Hounsfield units (MedSeg COVID in the Inf-Net layout, MSD
Task06 JPEG slices, LIDC-IDRI pylidc .npy slices), on fixtures in their own layouts (tests/layouts_ct.py):
detection, listing (patients, splits), loading (mask values → labels), each case's CT form and what the
builder makes of it, and the .npy reader's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from layouts import make_kvasir
from layouts_ct import COVID_SLICES, LIDC_NODULES, MSD_SLICES, chest, make_covid_infnet, make_lidc, make_msd_lung_slices
from PIL import Image

from medglip import sources as S
from medglip.dataset.config import BuildConfig
from medglip.dataset.process import CaseBuilder
from medglip.core.intensity import CTForm
from medglip.core.pipeline import model_pixels
from medglip.errors import CaseError, ReadError
from medglip.io import read_npy
from medglip.io.policy import ReadPolicy, read_policy
from medglip.ontology import load_ontology
from medglip.sources import covid_infnet, lidc_pylidc, msd_lung_slices


def by_id(refs):
    return {r.case_id: r for r in refs}


@pytest.mark.parametrize("maker, layout", [(make_covid_infnet, "covid_infnet"), (make_msd_lung_slices, "msd_lung_slices"),
                                           (make_lidc, "lidc_pylidc")])
def test_detect_layout(tmp_path, maker, layout):
    assert S.detect_layout(maker(tmp_path)) == layout


def test_kvasir_images_and_masks_are_not_msd_lung_slices(tmp_path):
    assert not msd_lung_slices.detect(make_kvasir(tmp_path))


# ------------------------------------------------------------------------------------------- COVID
def test_covid_lists_each_split_in_numeric_order_without_patients(tmp_path):
    refs = S.list_cases(make_covid_infnet(tmp_path))
    assert [(r.split, r.case_id) for r in refs] == [(s, str(n)) for s, d in COVID_SLICES.items() for n in sorted(d)]
    assert {(r.layout, r.modality) for r in refs} == {("covid_infnet", "CT")}
    assert "5000" not in by_id(refs)  # Pseudo-label images are no labelled slices
    refs = by_id(refs)
    assert len(refs["0"].label_paths) == 2 and len(refs["10"].label_paths) == 1  # slice 10: no multi-class GT
    assert refs["0"].label_paths[1].parent.name == "GT"  # not Prior
    assert "patient" not in json.loads(refs["0"].option("meta"))


def test_covid_loads_infection_and_its_classes_as_a_windowed_picture(tmp_path):
    refs = by_id(S.list_cases(make_covid_infnet(tmp_path)))
    case = S.load_case(refs["0"])
    assert case.image.dtype == np.uint8 and case.image.ndim == 2 and not case.spacing_known
    assert case.ct_form == CTForm.windowed(covid_infnet.WINDOW) and case.split == "train"
    infection, classes = case.labels
    assert infection.names == {1: "lung infection"} and set(np.unique(infection.array)) == {0, 1}
    assert classes.names == {1: "ground glass opacity", 2: "consolidation"}
    assert set(np.unique(classes.array)) == {0, 1, 2}  # palette indices, not palette colours
    assert np.array_equal(infection.array == 1, classes.array > 0)  # the binary GT is the classes' union
    assert "absent" not in case.meta
    assert S.load_case(refs["2"]).meta["absent"] == ["consolidation"]  # labelled, and none of it there
    only = S.load_case(refs["10"])
    assert len(only.labels) == 1 and "absent" not in only.meta


def test_covid_refuses_an_unknown_class_value(tmp_path):
    ds = make_covid_infnet(tmp_path)
    gt = ds / "TestingSet/MultiClassInfection-Test/GT/3.png"
    arr = np.asarray(Image.open(gt)).copy()
    arr[0, 0] = 3
    im = Image.fromarray(arr, mode="P")
    im.putpalette(Image.open(gt).getpalette())
    im.save(gt)
    with pytest.raises(CaseError, match="3"):
        S.load_case(by_id(S.list_cases(ds))["3"])


# ------------------------------------------------------------------------------------------- MSD lung slices
def test_msd_lung_slices_list_patients_and_skip_augmented_copies(tmp_path, caplog):
    refs = S.list_cases(make_msd_lung_slices(tmp_path))
    assert [r.case_id for r in refs] == [f"{c}_{z}" for c, zs in MSD_SLICES.items() for z in zs]
    assert [json.loads(r.option("meta"))["patient"] for r in refs] == ["10001", "10001", "10005"]
    assert {(r.split, r.modality) for r in refs} == {(None, "CT")}
    assert "hflipped" in caplog.text


def test_msd_lung_slices_load_a_thresholded_tumour_and_pixel_equals_hu(tmp_path):
    refs = S.list_cases(make_msd_lung_slices(tmp_path))
    case = S.load_case(refs[0])
    want = chest(64, seed=231, nodule=(20 + 231 % 7, 18, 5))
    assert case.meta["patient"] == "10001" and case.meta["slice"] == 231
    assert case.labels[0].names == {1: "lung tumour"}
    got = case.labels[0].array == 1
    assert (got & want["nodule"]).sum() / (got | want["nodule"]).sum() > 0.8  # lossy JPEG mask, > 127
    assert case.ct_form == CTForm.windowed((0.0, 255.0), below_hu=-1000.0)
    hu = case.ct_form.to_hu(case.image)
    soft = (want["hu"] > 10) & (want["hu"] < 245)
    assert np.abs(hu - want["hu"])[soft].mean() < 10  # pixel ≈ HU (JPEG-lossy) where 0 < HU < 255
    # air and lung, saturated to 0, are taken as air, but where JPEG ringing lifted a 0 to a few levels
    # (a quarter of them in this tiny 64-pixel fixture; 6 % of all pixels in the real 512-pixel slices)
    assert (hu[want["hu"] < -500] == -1000.0).mean() > 0.7


# ------------------------------------------------------------------------------------------- LIDC
def test_lidc_lists_slices_by_patient_with_the_clean_patients_negatives(tmp_path):
    refs = S.list_cases(make_lidc(tmp_path))
    ids = [r.case_id for r in refs]
    expected = [f"{p}_NI{n:03d}_slice{s:03d}" for p, nod in LIDC_NODULES.items() for n, ss in nod.items() for s in ss]
    assert ids == expected + ["0009_CN001_slice000"]
    assert [r.option("patient") for r in refs] == ["LIDC-IDRI-0004"] * 2 + ["LIDC-IDRI-0008"] * 2 + ["LIDC-IDRI-0009"]
    assert refs[-1].label_paths[0].name == "0009_CM001_slice000.npy"
    assert refs[0].label_paths[0].name == "0004_MA000_slice000.npy"


def test_lidc_loads_the_nodule_and_recovers_hounsfield_units(tmp_path):
    refs = by_id(S.list_cases(make_lidc(tmp_path)))
    case = S.load_case(refs["0008_NI001_slice001"])
    want = chest(64, seed=8 + 1, nodule=(26, 42, 3))
    assert case.meta == {"patient": "LIDC-IDRI-0008", "nodule": 1, "slice": 1}
    assert case.image.dtype == np.float64 and case.labels[0].names == {1: "lung nodule"}
    assert np.array_equal(case.labels[0].array == 1, want["nodule"])
    assert case.ct_form.kind == "standardised"
    hu = case.ct_form.to_hu(case.image)
    inside = case.image != 0
    # the per-slice affine comes from the two tissue modes, each found to within a histogram bin (about
    # 4 HU here): the recovered HU are within 10 HU of the truth (taken as HU, the z-scores are ~900 off)
    assert np.abs(hu - want["hu"])[inside].max() < 10
    assert np.abs(case.image - want["hu"])[want["lungs"] & ~want["nodule"]].min() > 800
    assert np.all(hu[~inside] == -1000.0)
    clean = S.load_case(refs["0009_CN001_slice000"])
    assert clean.meta["no_finding"] and not clean.labels[0].array.any()


def test_lidc_without_a_second_tissue_mode_uses_the_fallback_scale():
    z = np.zeros((64, 64))
    z[10:50, 10:50] = np.random.default_rng(0).normal(-0.2, 0.05, (40, 40))  # lung only, no chest wall
    form = lidc_pylidc.standardised_form(z)
    assert form.scale == lidc_pylidc.FALLBACK_SCALE
    assert abs(form.to_hu(np.array([-0.2]))[0] - lidc_pylidc.LUNG_HU) < 20
    assert lidc_pylidc.standardised_form(np.zeros((8, 8))).scale == lidc_pylidc.FALLBACK_SCALE


def test_lidc_refuses_a_mask_that_is_no_mask(tmp_path):
    ds = make_lidc(tmp_path)
    np.save(ds / "Mask/LIDC-IDRI-0004/0004_MA000_slice000.npy", np.full((64, 64), 0.5 + 2))
    with pytest.raises(CaseError, match="unknown label"):
        S.load_case(by_id(S.list_cases(ds))["0004_NI000_slice000"])


# ------------------------------------------------------------------------------------------- build
@pytest.mark.parametrize("maker, case_id, kind", [(make_covid_infnet, "2", "windowed"),
                                                  (make_msd_lung_slices, "10001_231", "windowed"),
                                                  (make_lidc, "0004_NI000_slice000", "standardised")])
def test_the_builder_writes_the_pipelines_pixels_and_records_the_form(tmp_path, maker, case_id, kind):
    ref = by_id(S.list_cases(maker(tmp_path)))[case_id]
    case = S.load_case(ref)
    rec = CaseBuilder(config=BuildConfig(source=ref.source), out_dir=tmp_path / "out", ontology=load_ontology())(case, ref.key)
    assert rec["ct_form"] == case.ct_form.to_json() and rec["ct_form"]["kind"] == kind
    (img,) = rec["images"]
    assert img["intensity"]["form"] == rec["ct_form"] and img["intensity"]["mode"] == "ct_windows"
    written = np.asarray(Image.open(tmp_path / "out" / "images" / img["file_name"]))
    assert np.array_equal(written, model_pixels(case.image, "CT", form=case.ct_form)[0])
    assert img["annotations"] and all(a["level"] == "lesion" for a in img["annotations"])
    if maker is make_covid_infnet:
        assert img["absent"] == ["consolidation"]
        assert {a["phrase"] for a in img["annotations"]} == {"covid-19 infection", "ground glass opacity"}


def test_a_built_lidc_slice_looks_like_the_hu_slice_inside_the_lungs(tmp_path):
    """The end of the chain: the model pixels of the standardised slice, through its estimated form, are
    those of the HU slice inside the lung mask (within the estimate's 10 HU: 1.7 lung-window and 6.4
    soft-tissue levels, plus one for rounding) and air outside it."""
    ref = by_id(S.list_cases(make_lidc(tmp_path)))["0004_NI000_slice000"]
    case = S.load_case(ref)
    want = chest(64, seed=4, nodule=(22, 18, 3))
    got, _ = model_pixels(case.image, "CT", form=case.ct_form)
    hu_pix, _ = model_pixels(want["hu"], "CT")
    inside = case.image != 0
    diff = np.abs(got.astype(int) - hu_pix.astype(int))[inside]
    assert diff[:, 0].max() <= 3 and diff[:, 1].max() <= 8 and diff[:, 2].max() <= 3
    air, _ = model_pixels(np.full((1, 1), -1000.0), "CT")
    assert np.all(got[~inside] == air[0, 0])


# ------------------------------------------------------------------------------------------- .npy reader
class _Trap:
    """Unpickling this object would create the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _npy_header(shape, descr="<f8", fortran=False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_npy_reader_reads_numbers_and_obeys_the_read_policy(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    got = read_npy(tmp_path / "a.npy")
    assert np.array_equal(got.array, a) and got.array.dtype == np.float64 and not got.spacing_known
    np.save(tmp_path / "f.npy", np.asfortranarray(a))
    assert np.array_equal(read_npy(tmp_path / "f.npy").array, a)
    np.save(tmp_path / "b.npy", a.astype(">i2"))  # big-endian
    assert np.array_equal(read_npy(tmp_path / "b.npy").array, a)
    charged = []
    with read_policy(ReadPolicy(float32=True, charge=lambda n, p: charged.append(n))):
        assert read_npy(tmp_path / "a.npy").array.dtype == np.float32
    assert charged == [12 * 4]
    with read_policy(ReadPolicy(max_bytes=64)), pytest.raises(ReadError, match="too large"):
        read_npy(tmp_path / "a.npy")


def test_npy_reader_refuses_what_is_no_plain_numeric_2d_array(tmp_path):
    trap = tmp_path / "unpickled"
    np.save(tmp_path / "obj.npy", np.array([[_Trap(str(trap))]], dtype=object), allow_pickle=True)
    with pytest.raises(ReadError, match=r"obj\.npy.*objects"):
        read_npy(tmp_path / "obj.npy")
    assert not trap.exists()  # never unpickled
    np.save(tmp_path / "c.npy", np.zeros((4, 4), np.complex64))
    with pytest.raises(ReadError, match=r"c\.npy.*complex64"):
        read_npy(tmp_path / "c.npy")
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(ReadError, match="dtype"):
        read_npy(tmp_path / "s.npy")
    np.save(tmp_path / "st.npy", np.zeros((2, 2), dtype=[("x", "<f4"), ("y", "<f4")]))
    with pytest.raises(ReadError, match="structured"):
        read_npy(tmp_path / "st.npy")
    np.save(tmp_path / "float_mask.npy", np.zeros((4, 4)))
    with pytest.raises(ReadError, match="expected bool"):
        read_npy(tmp_path / "float_mask.npy", kinds="b")  # a nodule mask must be bool
    np.save(tmp_path / "3d.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ReadError, match="2D"):
        read_npy(tmp_path / "3d.npy")
    (tmp_path / "huge.npy").write_bytes(_npy_header((100_000, 100_000)) + b"\0" * 64)  # declares 80 GB
    with pytest.raises(ReadError, match=r"huge\.npy.*too large"):
        read_npy(tmp_path / "huge.npy")
    np.save(tmp_path / "t.npy", np.ones((8, 8)))
    full = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(full[:-10])
    with pytest.raises(ReadError, match=r"t\.npy.*truncated"):
        read_npy(tmp_path / "t.npy")
    (tmp_path / "t.npy").write_bytes(full + b"junk")
    with pytest.raises(ReadError, match="after"):
        read_npy(tmp_path / "t.npy")
    (tmp_path / "x.npy").write_bytes(b"PK\x03\x04 not numpy at all")
    with pytest.raises(ReadError, match=r"x\.npy.*NumPy"):
        read_npy(tmp_path / "x.npy")
    (tmp_path / "badheader.npy").write_bytes(b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little") + b"__import__('os')   \n")
    with pytest.raises(ReadError, match="NumPy"):
        read_npy(tmp_path / "badheader.npy")
