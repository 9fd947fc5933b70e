"""Canonical imaging modalities and the many names sources use for them."""

from __future__ import annotations

from .errors import MedglipError

#: Canonical codes, in the order the Med-GLIP paper lists the seven modalities.
MODALITIES: tuple[str, ...] = ("CT", "MR", "XR", "US", "ENDO", "DERM", "PATH")

MODALITY_NAMES: dict[str, str] = {
    "CT": "computed tomography",
    "MR": "magnetic resonance imaging",
    "XR": "X-ray radiography",
    "US": "ultrasound",
    "ENDO": "endoscopy",
    "DERM": "dermoscopy",
    "PATH": "pathology",
}

# Lower-cased aliases → code. DICOM Modality (0008,0060) values are included.
_ALIASES: dict[str, str] = {
    "ct": "CT",
    "computed tomography": "CT",
    "cta": "CT",
    "pet-ct": "CT",
    "nct": "CT",
    "cect": "CT",
    "mr": "MR",
    "mri": "MR",
    "magnetic resonance": "MR",
    "t1": "MR",
    "t1w": "MR",
    "t1gd": "MR",
    "t1c": "MR",
    "t1ce": "MR",
    "t2": "MR",
    "t2w": "MR",
    "flair": "MR",
    "adc": "MR",
    "dwi": "MR",
    "pd": "MR",
    "hbv": "MR",
    "cine": "MR",
    "mra": "MR",
    "lge": "MR",
    "bold": "MR",
    "xr": "XR",
    "x-ray": "XR",
    "xray": "XR",
    "cr": "XR",
    "dx": "XR",
    "rg": "XR",
    "mg": "XR",
    "radiograph": "XR",
    "radiography": "XR",
    "cxr": "XR",
    "mammography": "XR",
    "px": "XR",
    "io": "XR",
    "us": "US",
    "ultrasound": "US",
    "ultrasonography": "US",
    "sonography": "US",
    "echo": "US",
    "endo": "ENDO",
    "endoscopy": "ENDO",
    "es": "ENDO",
    "colonoscopy": "ENDO",
    "gastroscopy": "ENDO",
    "laparoscopy": "ENDO",
    "derm": "DERM",
    "dermoscopy": "DERM",
    "dermatoscopy": "DERM",
    "dermoscopic": "DERM",
    "xc-derm": "DERM",
    "path": "PATH",
    "pathology": "PATH",
    "histopathology": "PATH",
    "histology": "PATH",
    "sm": "PATH",
    "microscopy": "PATH",
    "wsi": "PATH",
    "he": "PATH",
    "h&e": "PATH",
}


class UnknownModalityError(MedglipError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown modality {name!r}; expected one of {', '.join(MODALITIES)} "
            "(or a common alias such as MRI, X-ray, ultrasound, dermoscopy)"
        )


def normalise_modality(name: str) -> str:
    """Map a modality name, alias or DICOM Modality value to its canonical code.

    >>> normalise_modality("MRI"), normalise_modality("DX"), normalise_modality("Dermoscopy")
    ('MR', 'XR', 'DERM')
    """
    key = str(name).strip().lower()
    if key.upper() in MODALITIES:
        return key.upper()
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownModalityError(str(name))


def guess_modality(name: str) -> str | None:
    """Like :func:`normalise_modality` but returns None instead of raising."""
    try:
        return normalise_modality(name)
    except UnknownModalityError:
        return None
