"""The label ontology: body regions, coarse classes and fine labels as data, plus a small typed API.

>>> from medglip.ontology import load_ontology
>>> onto = load_ontology()
>>> r = onto.resolve("gluteus_maximus_left", source="TotalSegmentator")
>>> r.phrase, r.label, r.laterality, r.region
('left gluteus maximus', 'gluteus maximus', 'left', 'musculoskeletal system')
>>> onto.resolve("cancer", source="Task07_Pancreas").phrase
'pancreatic tumor'
>>> onto.flip_laterality("left kidney")
'right kidney'

The data lives in ``ontology/data/*.yaml`` (see :mod:`medglip.ontology.loader` for the format).
"""

from .coding import LOCAL_SCHEME, Coding, coding_for
from .loader import default_data_files, load_ontology
from .mapping import ANY_SOURCE, SourceMapping
from .model import (
    LEVELS,
    UNKNOWN_LEVEL,
    UNMAPPED_CLASS,
    Code,
    OntologyClass,
    OntologyError,
    Region,
    Resolution,
    Term,
    UnknownTermError,
)
from .normalise import flip_text, name_key
from .ontology import Ontology
from .relations import PhraseRelations, Relation

__all__ = [
    "ANY_SOURCE",
    "Code",
    "Coding",
    "LEVELS",
    "LOCAL_SCHEME",
    "UNKNOWN_LEVEL",
    "UNMAPPED_CLASS",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "PhraseRelations",
    "Region",
    "Relation",
    "Resolution",
    "SourceMapping",
    "Term",
    "UnknownTermError",
    "coding_for",
    "default_data_files",
    "flip_text",
    "load_ontology",
    "name_key",
]
