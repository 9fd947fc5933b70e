"""medglip: medical image grounding (Med-GLIP) — dataset builder, grounding model, evaluation."""

from .case import Case, CaseRef, LabelMap
from .core.geometry import Geometry
from .errors import CaseError, LayoutError, MedglipError, ReadError
from .modality import MODALITIES, normalise_modality

__version__ = "0.2.0"

__all__ = [
    "Case",
    "CaseRef",
    "Geometry",
    "LabelMap",
    "CaseError",
    "LayoutError",
    "MedglipError",
    "ReadError",
    "MODALITIES",
    "normalise_modality",
    "__version__",
]
