"""Write a DICOM Structured Report (TID 1500 Measurement Report, Comprehensive 3D SR, highdicom).

One volumetric ROI measurement group (TID 1411) per finding: its tracking identifier and UID (the
same as its DICOM-SEG segment's), what it is (finding type and category codes), where (finding site:
an anatomic location with its side), the SEG segment it is (referenced segment), and its
measurements (name code, value, UCUM unit). The evidence lists the source images and the SEG, so a
PACS links the report to both; the observer is the device (medglip) and the algorithm is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from ..errors import MedglipError
from ._base import condense_error
from .dicom_seg_write import coding_scheme_item, complete_headers, concept


@dataclass(frozen=True)
class MeasurementSpec:
    """A numeric measurement: ``name`` (code), ``value``, ``unit`` (UCUM code)."""

    name: Code
    value: float
    unit: Code


@dataclass(frozen=True)
class FindingSpec:
    """One finding of the report.

    Attributes:
        tracking_id, tracking_uid: readable identifier and UID (those of its SEG segment).
        finding_type, finding_category: what it is.
        site, site_laterality: where it is (anatomic location and side), or None.
        segment_number: its segment in the SEG.
        measurements: size, volume, score, ...
    """

    tracking_id: str
    tracking_uid: str
    finding_type: Code
    finding_category: Code
    segment_number: int
    site: Code | None = None
    site_laterality: Code | None = None
    measurements: tuple[MeasurementSpec, ...] = field(default_factory=tuple)


def procedure_code(modality: str | None) -> Code:
    """The LOINC "unspecified body region" procedure of a modality, else SCT Imaging procedure."""
    from pydicom.sr.codedict import codes

    return {
        "CT": codes.LN.CTUnspecifiedBodyRegion,
        "MR": codes.LN.MRIUnspecifiedBodyRegion,
        "PT": codes.LN.PETUnspecifiedBodyRegion,
        "NM": codes.LN.NMUnspecifiedBodyRegion,
        "XR": codes.LN.XRUnspecifiedBodyRegion,
    }.get(str(modality or "").upper(), codes.SCT.ImagingProcedure)


def dicom_sr(
    sources: Sequence[Dataset],
    seg: Dataset,
    findings: Sequence[FindingSpec],
    *,
    series_uid: str,
    sop_uid: str,
    modality: str | None,
    series_number: int = 9902,
    software_version: str = "0",
    algorithm: str = "medglip",
    algorithm_parameters: Sequence[str] = (),
    device_uid: str,
    device_name: str = "medglip",
    local_schemes: dict[str, str] | None = None,
    what: str = "source",
) -> Dataset:
    """A Comprehensive 3D SR holding a TID 1500 measurement report of ``findings`` in ``seg``.

    Raises:
        MedglipError: sources or SEG lacking what the report must reference, naming ``what``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not sources:
        raise MedglipError(f"{what}: no DICOM source headers to reference")
    try:
        srcs = complete_headers(sources)
    except MemoryError:
        raise
    except Exception as exc:  # malformed values in the sources' headers
        raise MedglipError(
            f"{what}: cannot write a DICOM SR about these source images ({condense_error(exc)})"
        ) from None
    alg = hd.sr.AlgorithmIdentification(
        name=algorithm, version=software_version, parameters=[str(p)[:64] for p in algorithm_parameters] or None
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name=device_name, manufacturer_name="medglip", model_name=algorithm
        ),
    )
    series = str(srcs[0].SeriesInstanceUID)
    groups = []
    for f in findings:
        sites = None
        if f.site is not None:
            sites = [
                hd.sr.FindingSite(
                    anatomic_location=concept(f.site),
                    laterality=None if f.site_laterality is None else concept(f.site_laterality),
                )
            ]
        ms = [
            hd.sr.Measurement(name=concept(m.name), value=float(m.value), unit=concept(m.unit), algorithm_id=alg)
            for m in f.measurements
        ]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=f.tracking_uid, identifier=f.tracking_id[:64]),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID,
                    sop_instance_uid=seg.SOPInstanceUID,
                    segment_number=f.segment_number,
                    source_series=hd.sr.SourceSeriesForSegmentation(series),
                ),
                finding_type=concept(f.finding_type),
                finding_category=concept(f.finding_category),
                finding_sites=sites,
                algorithm_id=alg,
                measurements=ms or None,
            )
        )
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=device),
            procedure_reported=procedure_code(modality),
            imaging_measurements=groups or None,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*srcs, seg],
            content=report,
            series_instance_uid=series_uid,
            series_number=int(series_number),
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer="medglip",
            is_complete=True,
            institution_name=None,
        )
    except MemoryError:
        raise
    except Exception as exc:
        raise MedglipError(
            f"{what}: cannot write a DICOM SR about these source images ({condense_error(exc)})"
        ) from None
    sr.SeriesDescription = "medglip grounding findings"
    for designator, name in (local_schemes or {}).items():
        sr.CodingSchemeIdentificationSequence = list(sr.get("CodingSchemeIdentificationSequence", [])) + [
            coding_scheme_item(designator, name)
        ]
    return sr
