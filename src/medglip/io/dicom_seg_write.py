"""Write DICOM Segmentation objects (highdicom) that reference their source images.

The source images are given as their headers (no pixel data: :attr:`ImageData.dicom_headers`); the
SEG copies their Patient, Study and Frame of Reference, references every source instance it
segments, and places each frame at its source image's position (highdicom). Frames are the source's
frames: one per source image of a series (in the order given), or the frames of one multi-frame or
single-frame source.

Headers are copied, never changed: type 2 attributes a source lacks (PatientBirthDate, StudyDate,
...) are added empty to the copies, as DICOM allows, since highdicom copies them; decimal strings
longer than DICOM's 16 characters (``0.7812499999999999``, written by some tools) are shortened in
the copies, so the outputs stay valid when the source is not.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sr.coding import Code
from pydicom.valuerep import DSfloat

from ..errors import MedglipError
from ._base import condense_error

#: Type 2 attributes of the Patient and General Study modules that writers copy from the source.
TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


@dataclass(frozen=True)
class SegmentSpec:
    """One segment of a DICOM-SEG.

    Attributes:
        number: segment number (1-based, consecutive).
        label: segment label (LO, at most 64 characters are kept).
        category, type: segmented property category and type codes.
        type_modifier: e.g. the side of a lateral organ (Left), or None.
        anatomy: anatomic region (a lesion's organ), or None; ``anatomy_modifier`` its side.
        color: display colour ``(r, g, b)`` 0..255.
        tracking_id, tracking_uid: a readable identifier and a UID of the finding (shared with the SR).
        description: free text (e.g. why a local code was used), or None.
    """

    number: int
    label: str
    category: Code
    type: Code
    type_modifier: Code | None = None
    anatomy: Code | None = None
    anatomy_modifier: Code | None = None
    color: tuple[int, int, int] = (255, 0, 0)
    tracking_id: str | None = None
    tracking_uid: str | None = None
    description: str | None = None


def _short_ds(ds: Dataset, elem: Any) -> None:
    """``Dataset.walk`` callback: a DS value longer than 16 characters rewritten in at most 16."""
    if elem.VR != "DS" or elem.value is None or elem.value == "":
        return
    values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
    if any(len(str(getattr(v, "original_string", None) or v)) > 16 for v in values):
        fixed = [DSfloat(float(v), auto_format=True) for v in values]
        elem.value = fixed if len(fixed) > 1 else fixed[0]


def complete_headers(headers: Sequence[Dataset]) -> list[Dataset]:
    """Copies of the source headers with every missing :data:`TYPE2_COPIED` attribute added empty and
    over-long decimal strings shortened."""
    out = []
    for h in headers:
        c = copy.deepcopy(h)
        for name in TYPE2_COPIED:
            if name not in c:
                setattr(c, name, "")
        c.walk(_short_ds)
        out.append(c)
    return out


def coding_scheme_item(designator: str, name: str) -> Dataset:
    """A CodingSchemeIdentificationSequence item describing a local (``99...``) coding scheme."""
    item = Dataset()
    item.CodingSchemeDesignator = designator
    item.CodingSchemeName = name[:64]
    item.CodingSchemeResponsibleOrganization = "medglip"
    return item


def concept(code: Code) -> Any:
    """A pydicom :class:`Code` as highdicom's ``CodedConcept``."""
    import highdicom as hd

    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)


def _description(spec: SegmentSpec, algorithm: Any) -> Any:
    import highdicom as hd

    desc = hd.seg.SegmentDescription(
        segment_number=spec.number,
        segment_label=spec.label[:64],
        segmented_property_category=concept(spec.category),
        segmented_property_type=concept(spec.type),
        algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm,
        tracking_uid=spec.tracking_uid,
        tracking_id=spec.tracking_id,
        anatomic_regions=None if spec.anatomy is None else [concept(spec.anatomy)],
        display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in spec.color)),
    )
    if spec.type_modifier is not None:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            concept(spec.type_modifier)
        ]
    if spec.anatomy is not None and spec.anatomy_modifier is not None:
        desc.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [concept(spec.anatomy_modifier)]
    if spec.description:
        desc.SegmentDescription = spec.description[:1024]
    return desc


def dicom_seg(
    sources: Sequence[Dataset],
    frames: np.ndarray,
    segments: Sequence[SegmentSpec],
    *,
    series_uid: str,
    sop_uid: str,
    series_number: int = 9901,
    software_version: str = "0",
    model_name: str = "medglip grounding",
    algorithm: str = "medglip",
    algorithm_parameters: dict[str, str] | None = None,
    content_label: str = "MEDGLIP",
    description: str = "medglip grounding masks",
    local_schemes: dict[str, str] | None = None,
    what: str = "source",
) -> Dataset:
    """A binary DICOM-SEG of ``frames`` on ``sources``.

    Args:
        sources: source headers (completed with :func:`complete_headers` here), one per frame for a
            series, or a single (multi-)frame source.
        frames: ``(F, rows, cols)`` integer segment numbers (0 = none), or ``(F, rows, cols, S)`` bool
            (one channel per segment, overlaps allowed); frame ``f`` lies on source frame ``f``.
        segments: the segment descriptions, numbers 1..S.
        series_uid, sop_uid: UIDs of the new series / instance.
        local_schemes: ``{designator: description}`` of local coding schemes the codes use.
        what: the source as users name it (a folder, a file), for error messages.

    Raises:
        MedglipError: sources without the attributes a SEG must copy (Frame of Reference, ...), or
            frames that do not match them, naming ``what``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not sources:
        raise MedglipError(f"{what}: no DICOM source headers to reference")
    params = {k: str(v)[:64] for k, v in (algorithm_parameters or {}).items()}
    alg = hd.AlgorithmIdentificationSequence(
        name=algorithm, family=codes.DCM.ArtificialIntelligence, version=software_version, parameters=params or None
    )
    descs = [_description(s, alg) for s in segments]
    try:  # what fails here is the sources' headers (missing or malformed attributes) or their grid
        srcs = complete_headers(sources)
        seg = hd.seg.Segmentation(
            source_images=srcs,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descs,
            series_instance_uid=series_uid,
            series_number=int(series_number),
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer="medglip",
            manufacturer_model_name=model_name,
            software_versions=software_version,
            device_serial_number="0",
            content_label=content_label,
            content_description=description[:64],
        )
    except MemoryError:
        raise
    except Exception as exc:
        raise MedglipError(f"{what}: cannot write a DICOM-SEG on these source images ({condense_error(exc)})") from None
    seg.SeriesDescription = description[:64]
    for designator, name in (local_schemes or {}).items():
        seg.CodingSchemeIdentificationSequence = list(seg.get("CodingSchemeIdentificationSequence", [])) + [
            coding_scheme_item(designator, name)
        ]
    return seg


def dataset_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 file (preamble, file meta)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
