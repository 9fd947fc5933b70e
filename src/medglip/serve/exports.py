"""The ``outputs`` form field: grounding results as files (NIfTI label map, DICOM-SEG, SR, PNG label image,
the volume as NIfTI for the page's viewer), returned base64 in the JSON answer.

Answer (added to the grounding JSON when ``outputs`` is sent)::

    "files":  {"labels.nii.gz": {"media_type": "application/gzip", "bytes": 4012, "base64": "H4sI..."}, ...},
    "labels": {...labels.json: one entry per label: phrase, score, colour, codes, voxels, centre...},
    "notes":  ["label 1 (brain tumor): no standard code for 'brain tumor': coded as its kind ..."]
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Form

from ..errors import MedglipError
from ..export import FILES, OUTPUTS, ExportOptions, export_result, parse_outputs
from ..export.volume import volume_nifti
from ..infer.volume import VolumeGroundingResult
from .forms import bad

MEDIA_TYPES = {
    ".nii.gz": "application/gzip",
    ".dcm": "application/dicom",
    ".json": "application/json",
    ".png": "image/png",
}

OutputsField = Annotated[
    str | None,
    Form(
        description=(
            "Also return the masks as files, base64 in `files` (implies masks): a comma-separated list of "
            f"{', '.join(OUTPUTS)}. `nifti`: labels.nii.gz, a uint16 label map on exactly the input's grid (label n = "
            "object n; overlaps: the higher score wins); `seg`: seg.dcm, a DICOM-SEG referencing the source series "
            "(DICOM input only; one segment per object); `sr`: sr.dcm, a TID 1500 DICOM SR of the findings "
            "(DICOM input only); `png`: masks.png, the label image of a 2D input; `volume`: volume.nii.gz, the "
            "input volume as NIfTI (for viewers); `auto`: every output the input allows but `volume`. labels.json "
            "(each label's phrase, score, colour, ontology hierarchy, codes, size, volume and centre) always comes "
            "with them, and as `labels`."
        )
    ),
]


def check_outputs(value: str | None) -> tuple[str, ...] | None:
    """The outputs asked for (None: no files); 422 naming the field for an unknown one."""
    if value is None or not str(value).strip():
        return None
    try:
        return parse_outputs(value) or ("auto",)
    except MedglipError as exc:
        raise bad("outputs", str(exc)) from None


def media_type(name: str) -> str:
    return next((t for ext, t in MEDIA_TYPES.items() if name.endswith(ext)), "application/octet-stream")


async def exported(
    result: Any, outputs: tuple[str, ...], *, run: Callable[..., Awaitable[Any]], max_voxels: int | None = None
) -> dict[str, Any]:
    """``{"files": ..., "labels": ..., "notes": ...}`` of a result; ``volume`` alone needs no masks (the
    page's viewer shows the volume and the objects' centres).

    ``run`` is the service's bounded pool (``Service.run``): writing a DICOM-SEG or a gzipped label map of a
    large volume takes seconds, so it counts against the pool's threads and the request's deadline like
    every other blocking step, instead of escaping to an unbounded default thread pool."""

    def work() -> dict[str, Any]:
        rest = tuple(o for o in outputs if o != "volume")
        files: dict[str, bytes] = {}
        out: dict[str, Any] = {"labels": None, "notes": []}
        if rest:
            bundle = export_result(result, options=ExportOptions(outputs=rest, max_voxels=max_voxels))
            files.update(bundle.files)
            out.update(labels=bundle.labels, notes=list(bundle.notes))
        if "volume" in outputs:
            if not isinstance(result, VolumeGroundingResult):
                raise MedglipError(f"{result.source}: 'volume' is an output of volumes, not of 2D images")
            files[FILES["volume"]] = volume_nifti(result)
        out["files"] = {
            name: {"media_type": media_type(name), "bytes": len(data), "base64": base64.b64encode(data).decode("ascii")}
            for name, data in files.items()
        }
        return out

    return await run(work)
