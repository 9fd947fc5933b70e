"""DICOM-SEG and SR of exported labels: segment and finding descriptions from their codes, and the
checks that a DICOM source can carry them (errors name the series or file at fault)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from .. import __version__
from ..errors import MedglipError
from ..io.dicom_seg_write import SegmentSpec, dataset_bytes, dicom_seg
from ..io.dicom_sr_write import FindingSpec, MeasurementSpec, dicom_sr
from ..ontology import Code as OntologyCode
from ..ontology.coding import ANATOMICAL_STRUCTURE, LOCAL_SCHEME, LOCAL_SCHEME_NAME
from .describe import Labelled, local_schemes
from .options import ExportOptions

#: measurement names and units of the SR (SNOMED CT / DCM / UCUM, as pydicom's tables spell them)
VOLUME = Code("118565006", "SCT", "Volume")
WIDTH = Code("103355008", "SCT", "Width")  # LPS x (patient right-left) extent
DEPTH = Code("131197000", "SCT", "Depth")  # LPS y (anterior-posterior) extent
HEIGHT = Code("121207", "DCM", "Height")  # LPS z (inferior-superior) extent
SCORE = Code("score", LOCAL_SCHEME, "Grounding score")
CUBIC_MM = Code("mm3", "UCUM", "cubic millimeter")
MM = Code("mm", "UCUM", "mm")
NO_UNITS = Code("1", "UCUM", "no units")


@overload
def code(c: OntologyCode) -> Code: ...
@overload
def code(c: None) -> None: ...
@overload
def code(c: OntologyCode | None) -> Code | None: ...
def code(c: OntologyCode | None) -> Code | None:
    """An ontology code as pydicom's :class:`~pydicom.sr.coding.Code`."""
    return None if c is None else Code(c.value, c.scheme, c.meaning)


def check_sources(headers: Sequence[Dataset], what: str) -> None:
    """Refuse DICOM sources a SEG / SR cannot reference: without the UIDs (Study, Series, SOP
    Instance) or, for cross-sectional images, the Frame of Reference."""
    if not headers:
        raise MedglipError(f"{what}: not a DICOM input, so there is nothing for a DICOM-SEG / SR to reference")
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if any(not str(h.get(name, "") or "") for h in headers):
            raise MedglipError(f"{what}: a source image has no {name}; a DICOM-SEG / SR cannot reference it")
    if "ImagePositionPatient" in headers[0] or "PerFrameFunctionalGroupsSequence" in headers[0]:
        if any(not str(h.get("FrameOfReferenceUID", "") or "") for h in headers):
            raise MedglipError(
                f"{what}: the source images have no FrameOfReferenceUID, so a DICOM-SEG cannot be placed on them"
            )
    series = {str(h.SeriesInstanceUID) for h in headers}
    if len(series) > 1:
        raise MedglipError(f"{what}: the source images belong to {len(series)} series; a SEG references one")


def segment_specs(items: Sequence[Labelled]) -> tuple[list[SegmentSpec], dict[int, int]]:
    """One segment per non-empty label (numbers 1..S in label order) and ``label → segment``."""
    specs: list[SegmentSpec] = []
    numbers: dict[int, int] = {}
    for it in items:
        if it.empty:
            continue
        n = len(specs) + 1
        numbers[it.label] = n
        c = it.coding
        lesion_side = c.anatomy is not None and c.category != ANATOMICAL_STRUCTURE
        specs.append(
            SegmentSpec(
                number=n,
                label=f"{it.label}: {it.phrase}",
                category=code(c.category),
                type=code(c.type),
                type_modifier=None if lesion_side else code(c.laterality),
                anatomy=code(c.anatomy),
                anatomy_modifier=code(c.laterality) if lesion_side else None,
                color=it.color,
                tracking_id=it.tracking_id,
                tracking_uid=it.tracking_uid,
                description=f"score {it.score:.3f}" + (f"; {c.note}" if c.note else ""),
            )
        )
    return specs, numbers


def finding_specs(items: Sequence[Labelled], numbers: dict[int, int]) -> list[FindingSpec]:
    """One SR finding per segment: what (type, category), where (site + side), its segment and its
    measurements (volume, LPS width / depth / height, score)."""
    out = []
    for it in items:
        if it.label not in numbers:
            continue
        c, e = it.coding, it.entry
        site = (
            c.anatomy
            if c.anatomy is not None
            else (c.type if c.category == ANATOMICAL_STRUCTURE and c.type.scheme != LOCAL_SCHEME else None)
        )
        ms = [MeasurementSpec(VOLUME, float(e["volume_mm3"]), CUBIC_MM)]
        if e.get("extent_mm"):
            extents = zip((WIDTH, DEPTH, HEIGHT), e["extent_mm"], strict=True)
            ms += [MeasurementSpec(n, float(v), MM) for n, v in extents]
        ms.append(MeasurementSpec(SCORE, round(it.score, 5), NO_UNITS))
        out.append(
            FindingSpec(
                tracking_id=it.tracking_id,
                tracking_uid=it.tracking_uid,
                finding_type=code(c.type),
                finding_category=code(c.category),
                segment_number=numbers[it.label],
                site=code(site),
                site_laterality=code(c.laterality) if site is not None else None,
                measurements=tuple(ms),
            )
        )
    return out


def seg_and_sr(
    headers: Sequence[Dataset],
    frames: Callable[[dict[int, int]], tuple[list[Dataset], Any]],
    items: Sequence[Labelled],
    *,
    modality: str | None,
    options: ExportOptions,
    want_sr: bool,
    what: str,
) -> tuple[dict[str, bytes], dict[int, int]]:
    """``({"seg.dcm": ..., "sr.dcm": ...}, label → segment)``: one segment per non-empty label, the SR
    (when ``want_sr``) one finding per segment; ``frames(label → segment)`` gives the SEG's source
    headers and pixel array. No non-empty label: nothing."""
    specs, numbers = segment_specs(items)
    if not specs:
        return {}, {}
    params = {k: v for k, v in options.algorithm_parameters}
    sources, pixels = frames(numbers)
    seg = dicom_seg(
        sources,
        pixels,
        specs,
        series_uid=generate_uid(),
        sop_uid=generate_uid(),
        series_number=options.seg_series_number,
        software_version=__version__,
        algorithm_parameters=params,
        local_schemes=local_schemes(list(items)),
        what=what,
    )
    del pixels
    out = {"seg.dcm": dataset_bytes(seg)}
    if want_sr:
        sr = dicom_sr(
            headers,
            seg,
            finding_specs(items, numbers),
            series_uid=generate_uid(),
            sop_uid=generate_uid(),
            modality=modality,
            series_number=options.sr_series_number,
            software_version=__version__,
            algorithm_parameters=[f"{k}={v}" for k, v in params.items()],
            device_uid=generate_uid(),
            local_schemes={LOCAL_SCHEME: LOCAL_SCHEME_NAME},
            what=what,
        )
        out["sr.dcm"] = dataset_bytes(sr)
    return out, numbers
