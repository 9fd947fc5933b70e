"""One CT input for the three forms CT arrives in (medglip.core.pipeline, medglip.core.intensity.CTForm).

The same synthetic HU slice is given as HU, as an already-windowed 8-bit picture of a known window,
and as a per-slice standardised (z-scored, lung-masked) array, as the public sources ship them. All
three must reach the model as the same pixels within a tolerance that follows from what each form
lost, and HU input must give exactly the pixels of pipeline version 2.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from medglip.core.geometry import Geometry
from medglip.core.intensity import CT_WINDOWS, DEFAULT_PICTURE_WINDOW, CTForm, window_to_uint8
from medglip.core.orient import plan_slices
from medglip.core.pipeline import InputConfig, ct_form_of, model_pixels, picture, slice_pixels
from medglip.errors import MedglipError
from medglip.infer.inputs import InputImage, read_image_input, read_input, read_volume_input

WINDOWS = InputConfig().ct_windows  # lung, soft tissue, bone


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _ramp(h: int = 48, w: int = 40) -> np.ndarray:
    """Deterministic HU values over -1400..1600 (no RNG: the digests below must not depend on numpy's)."""
    rr, cc = np.mgrid[:h, :w]
    return (-1400 + (rr * w + cc) * 3000 / (h * w) + 37 * np.sin(rr * 0.7) * np.cos(cc * 1.3)).astype(np.float32)


#: sha256[:16] of the model pixels of _ramp() made by medglip at commit f0f72da (pipeline version 2),
#: before CT forms existed.
VERSION_2_DIGESTS = {"float32": "af6dc95bd81ea685", "int16": "8797815d66a7fe80", "volume": "64ce6abd4d2503ec",
                     "volume_2.5d": "17bfb4f397c294a3"}


def test_hu_input_gives_bit_identical_model_pixels_to_pipeline_version_2():
    f = _ramp()
    i = np.rint(f).astype(np.int16)
    vol = np.stack([i + 5 * k for k in range(5)], axis=-1)
    plan = plan_slices(Geometry.identity(3), vol.shape, "axial")
    got = {"float32": model_pixels(f, "CT")[0], "int16": model_pixels(i, "CT")[0],
           "volume": slice_pixels(vol, plan, 2, "CT", InputConfig())[0],
           "volume_2.5d": slice_pixels(vol, plan, 2, "CT", InputConfig(context_slices=1))[0]}
    assert {k: _digest(v) for k, v in got.items()} == VERSION_2_DIGESTS
    assert _digest(model_pixels(i, None)[0]) == VERSION_2_DIGESTS["int16"]  # HU-like, modality unknown
    assert _digest(model_pixels(i, "CT", form=CTForm())[0]) == VERSION_2_DIGESTS["int16"]
    pix, rec = model_pixels(i, "CT")
    assert rec["form"] == {"kind": "hu"} and rec["mode"] == "ct_windows"


def chest_hu(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic axial chest slice in HU and its lung mask: air outside an elliptic body (soft tissue
    with a smooth gradient, so many values occur), two lungs (about -850, varying), a nodule, a rib
    and the spine (bone), all float32."""
    rr, cc = np.mgrid[:size, :size].astype(np.float32) / size
    hu = np.full((size, size), -1000.0, np.float32)
    body = ((rr - 0.5) / 0.42) ** 2 + ((cc - 0.5) / 0.47) ** 2 <= 1
    hu[body] = (-60 + 160 * cc + 40 * np.sin(9 * rr))[body]  # fat .. muscle
    lungs = np.zeros_like(body)
    for c0 in (0.31, 0.69):
        lungs |= ((rr - 0.47) / 0.3) ** 2 + ((cc - c0) / 0.15) ** 2 <= 1
    hu[lungs] = (-900 + 120 * rr + 30 * np.cos(20 * cc))[lungs]
    hu[((rr - 0.4) / 0.05) ** 2 + ((cc - 0.3) / 0.05) ** 2 <= 1] = 35.0  # a solid nodule in the right lung
    hu[((rr - 0.82) / 0.07) ** 2 + ((cc - 0.5) / 0.07) ** 2 <= 1] = 700.0  # spine
    hu[((rr - 0.2) / 0.02) ** 2 + ((cc - 0.12) / 0.04) ** 2 <= 1] = 1400.0  # a dense rib (above most windows)
    return hu, lungs


def _tolerance(picture_window: tuple[float, float], channel: tuple[float, float]) -> float:
    """How far a windowed picture's model pixel may be from the HU slice's, in channel levels: the picture
    rounded HU to one of 256 levels (error up to half a level = 0.5 (hi - lo) / 255 HU, which is
    0.5 (hi - lo) / (c_hi - c_lo) channel levels), and both paths round to integers once (at most 1 more)."""
    (lo, hi), (clo, chi) = picture_window, channel
    return 0.5 * (hi - lo) / (chi - clo) + 1.0


@pytest.mark.parametrize("window", [CT_WINDOWS["lung"], (-1070.0, 250.0), (0.0, 255.0), CT_WINDOWS["soft_tissue"]],
                         ids=["lung", "covid-infnet", "msd-lung-jpg", "soft-tissue"])
def test_a_windowed_picture_gives_the_hu_slices_pixels_inside_its_window(window):
    hu, _ = chest_hu()
    lo, hi = window
    pic = window_to_uint8(hu, lo, hi)  # exactly how a picture of that window is made
    want, _ = model_pixels(hu, "CT")
    got, rec = model_pixels(pic, "CT", form=CTForm.windowed(window))
    assert got.shape == want.shape == hu.shape + (3,)
    assert rec["form"] == {"kind": "windowed", "window": [lo, hi], "white": 255.0}
    inside = (hu > lo) & (hu < hi)
    assert inside.mean() > 0.2
    for c, channel in enumerate(WINDOWS):
        diff = np.abs(got[..., c].astype(int) - want[..., c].astype(int))
        assert diff[inside].max() <= _tolerance(window, channel), (c, diff[inside].max())
    # outside the window the picture saturated: its pixels are those of the window's edge (unknowable beyond)
    for edge, where in ((lo, hu <= lo), (hi, hu >= hi)):
        if where.any():
            edge_pix = model_pixels(np.full((1, 1), edge, np.float32), "CT")[0][0, 0]
            assert np.all(np.abs(got[where].astype(int) - edge_pix.astype(int)) <= 1)
    # the old input ("8-bit pictures as they are") would have been one grey channel: not what HU gives
    old, old_rec = model_pixels(pic, "CT", InputConfig(version=2))
    assert old.ndim == 2 and old_rec["mode"] == "identity" and np.array_equal(old, pic)


def test_a_source_may_say_what_its_saturated_dark_pixels_stand_for():
    """MSD's JPEG slices saturate everything below 0 HU: declared as air, the air outside the body gets
    exactly the HU slice's pixels (left at the window's end, 0 HU, it would be soft-tissue grey)."""
    hu, lungs = chest_hu()
    pic = window_to_uint8(hu, 0.0, 255.0)
    want, _ = model_pixels(hu, "CT")
    got, rec = model_pixels(pic, "CT", form=CTForm.windowed((0, 255), below_hu=-1000.0))
    assert rec["form"]["below_hu"] == -1000.0
    air = hu == -1000.0
    assert np.array_equal(got[air], want[air])
    inside = (hu > 0.5) & (hu < 255)  # below 0.5 HU the picture rounds to 0: taken as air
    assert np.abs(got.astype(int) - want.astype(int))[inside].max() <= 2
    edge, _ = model_pixels(pic, "CT", form=CTForm.windowed((0, 255)))
    assert np.all(edge[air][:, 1] == 102)  # 0 HU in the soft-tissue window: grey, not air
    with pytest.raises(MedglipError, match="below_hu"):
        CTForm.windowed((0, 255), below_hu=50.0)
    assert CTForm.from_json(CTForm.windowed((0, 255), below_hu=-1000.0).to_json()).below_hu == -1000.0


def test_a_picture_of_one_of_the_input_windows_is_that_channel_exactly():
    hu, _ = chest_hu()
    pic = window_to_uint8(hu, *CT_WINDOWS["lung"])
    got, _ = model_pixels(pic, "CT", form=CTForm.windowed("lung"))
    assert np.array_equal(got[..., 0], pic)  # the lung channel IS the lung-window picture
    rgb = np.repeat(pic[..., None], 3, axis=-1)  # the same picture saved as RGB
    assert np.array_equal(model_pixels(rgb, "CT", form=CTForm.windowed("lung"))[0], got)


def test_a_standardised_lung_masked_array_gives_the_hu_slices_pixels_inside_the_lungs():
    hu, lungs = chest_hu()
    m, s = float(hu.mean()), float(hu.std())
    z = np.where(lungs, (hu.astype(np.float64) - m) / s, 0.0)  # z-scored per slice, then lung-masked (LIDC)
    want, _ = model_pixels(hu, "CT")
    form = CTForm.standardised(offset=m, scale=s, background=0.0)
    got, rec = model_pixels(z, "CT", form=form)
    assert rec["form"]["kind"] == "standardised" and rec["form"]["scale"] == pytest.approx(s)
    # the affine is exact: only float32 rounding (far below a channel level) separates the two
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff[lungs].max() <= 1
    air = model_pixels(np.full((1, 1), -1000.0, np.float32), "CT")[0][0, 0]
    assert np.array_equal(got[~lungs], np.broadcast_to(air, got[~lungs].shape))  # outside the lungs: air
    # taken as HU (no form), the z-scores are a blank image: every value sits within a few HU of 0
    blank, _ = model_pixels(z, "CT")
    assert blank[lungs][:, 0].std() < 1.0 and want[lungs][:, 0].std() > 5.0


def test_the_2_5d_input_maps_each_neighbour_through_the_form():
    hu, _ = chest_hu()
    vol_hu = np.stack([hu - 20, hu, hu + 20], axis=-1)
    window = (-1070.0, 250.0)
    vol_pic = window_to_uint8(vol_hu, *window)
    plan = plan_slices(Geometry.identity(3), vol_hu.shape, "axial")
    cfg = InputConfig(context_slices=1)
    want, _ = slice_pixels(vol_hu, plan, 1, "CT", cfg)
    got, rec = slice_pixels(vol_pic, plan, 1, "CT", cfg, form=CTForm.windowed(window))
    assert rec["context"] == [-1, 0, 1] and rec["form"]["kind"] == "windowed"
    inside = (plan.view(vol_hu, 1) > window[0] + 20) & (plan.view(vol_hu, 1) < window[1] - 20)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff[inside].max() <= _tolerance(window, WINDOWS[1])


def test_pictures_for_people_of_a_windowed_picture_use_its_hu():
    hu, _ = chest_hu()
    window = (-1070.0, 250.0)
    pic = window_to_uint8(hu, *window)
    pix, rec = model_pixels(pic, "CT", form=CTForm.windowed(window))
    mediastinum = picture(pix, rec, window="mediastinum", raw=pic)  # no input channel: made from the raw values
    want = window_to_uint8(hu, *CT_WINDOWS["mediastinum"])
    inside = (hu > window[0]) & (hu < window[1])
    assert np.abs(mediastinum.astype(int) - want.astype(int))[inside].max() <= _tolerance(window, CT_WINDOWS["mediastinum"])


def test_which_inputs_are_ct_and_in_which_form():
    grey8 = np.zeros((4, 4), np.uint8)
    assert ct_form_of(grey8, "CT") == CTForm.windowed(DEFAULT_PICTURE_WINDOW)
    assert ct_form_of(grey8, None) is None and ct_form_of(grey8, "MR") is None
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 9
    assert ct_form_of(colour, "CT") is None  # a colour picture is no CT slice
    assert ct_form_of(np.zeros((4, 4), bool), "CT") is None
    assert ct_form_of(np.zeros((4, 4), np.float32), "CT") == CTForm()
    legacy = InputConfig(version=2)
    assert ct_form_of(grey8, "CT", legacy) is None
    assert ct_form_of(np.zeros((4, 4), np.float32), "CT", legacy, CTForm.windowed("lung")) == CTForm()
    for bad in (dict(kind="fuzzy"), dict(kind="windowed"), dict(kind="windowed", window=(5, 1)),
                dict(kind="standardised", scale=0.0)):
        with pytest.raises(MedglipError):
            CTForm(**bad)
    for form in (CTForm(), CTForm.windowed((-1070, 250)), CTForm.standardised(-900, 800, background=0.0)):
        assert CTForm.from_json(form.to_json()) == form


def test_the_grounder_input_takes_an_8_bit_ct_picture_as_windowed(tmp_path):
    hu, _ = chest_hu()
    pic = window_to_uint8(hu, *CT_WINDOWS["lung"])
    Image.fromarray(pic).save(tmp_path / "slice.png")
    item = read_image_input(tmp_path / "slice.png")
    assert item.ct_form is None  # undeclared: the pipeline's default window
    pix, rec = model_pixels(item.raw, "CT", form=item.ct_form)
    assert rec["form"]["window"] == list(CT_WINDOWS[DEFAULT_PICTURE_WINDOW])
    assert np.array_equal(pix[..., 0], pic)
    # the caller says which window the picture shows
    soft = window_to_uint8(hu, *CT_WINDOWS["soft_tissue"])
    item = read_image_input(soft, ct_window="soft_tissue")
    assert item.ct_form == CTForm.windowed("soft_tissue")
    pix, _ = model_pixels(item.raw, "CT", form=item.ct_form)
    assert np.array_equal(pix[..., 1], soft)
    assert read_input(InputImage(soft), ct_window="-160,240").ct_form == CTForm.windowed("soft_tissue")
    # a float array is HU: a window makes no sense for it
    with pytest.raises(MedglipError, match="8-bit"):
        read_image_input(hu, ct_window="lung")
    vol = read_volume_input(np.zeros((6, 6, 3), np.uint8), ct_window="lung")
    assert vol.ct_form == CTForm.windowed("lung")


def test_the_grounder_feeds_the_model_what_the_builder_writes_for_each_form(tmp_path):
    """A checkpoint of this pipeline sees an 8-bit CT picture through its window (the caller's, else the
    default), HU as HU; a version-2 checkpoint still sees the picture as it is (its training input)."""
    import torch

    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset, save_checkpoint

    torch.manual_seed(0)
    hu, _ = chest_hu(64)
    soft = window_to_uint8(hu, *CT_WINDOWS["soft_tissue"])
    runs = {}
    for version in (3, 2):
        cfg = get_preset("tiny", score_threshold=0.0, finding_thresholds=(("*", 0.0),), input_version=version)
        runs[version] = save_checkpoint(GroundingModel(cfg).eval(), tmp_path / f"v{version}")
    g = Grounder.from_pretrained(runs[3])
    res = g.ground_one(soft, ["lung nodule"], modality="CT", ct_window="soft_tissue")
    assert np.array_equal(res.pixels, model_pixels(soft, "CT", form=CTForm.windowed("soft_tissue"))[0])
    assert np.array_equal(res.pixels[..., 1], soft)
    res = g.ground_one(soft, ["lung nodule"], modality="CT")  # undeclared: the default picture window
    assert np.array_equal(res.pixels[..., 0], soft)
    assert np.array_equal(g.ground_one(hu, ["lung nodule"], modality="CT").pixels, model_pixels(hu, "CT")[0])
    old = Grounder.from_pretrained(runs[2])
    assert old.input_config.version == 2
    assert np.array_equal(old.ground_one(soft, ["lung nodule"], modality="CT").pixels, soft)
