"""Standard codes in the ontology (SNOMED CT as DICOM's context groups publish them) and how phrases are
coded for DICOM-SEG segments and SR findings."""

from __future__ import annotations

import pytest

from medglip.export import dicom as export_dicom
from medglip.ontology import LOCAL_SCHEME, OntologyError, coding_for, load_ontology
from medglip.ontology.coding import ABNORMAL_STRUCTURE, ANATOMICAL_STRUCTURE, LATERALITY


def _dictionary() -> set[tuple[str, str, str]]:
    """(scheme, value, meaning) of every concept pydicom's code dictionary (DICOM PS3.16) holds."""
    from pydicom.sr._concepts_dict import concepts

    return {(scheme, value, meaning) for scheme, table in concepts.items() for entries in table.values()
            for value, (meaning, _cids) in entries.items()}


def test_every_code_in_the_ontology_is_in_dicoms_code_dictionary_with_that_meaning():
    onto = load_ontology()
    known = _dictionary()
    coded = [t for t in onto.terms if t.code is not None]
    assert len(coded) >= 200  # the common anatomy and findings
    bad = [(t.id, t.code) for t in coded if (t.code.scheme, t.code.value, t.code.meaning) not in known]
    assert not bad, bad
    for name in ("liver", "kidney", "lung", "brain", "heart", "spleen", "pancreas", "prostate", "tumor", "cyst",
                 "nodule", "lesion", "metastasis", "thorax", "abdomen", "head and neck"):
        assert onto.term(name).code is not None, name
    constants = [ANATOMICAL_STRUCTURE, ABNORMAL_STRUCTURE, *LATERALITY.values()]
    assert all((c.scheme, c.value, c.meaning) in known for c in constants)
    for c in (export_dicom.VOLUME, export_dicom.WIDTH, export_dicom.DEPTH, export_dicom.HEIGHT, export_dicom.CUBIC_MM,
              export_dicom.MM, export_dicom.NO_UNITS):
        assert (c.scheme_designator, c.value, c.meaning) in known, c


@pytest.mark.parametrize("phrase, how, category, type_, anatomy, side", [
    ("liver", "term", "Anatomical Structure", "Liver", None, None),
    ("left kidney", "term", "Anatomical Structure", "Kidney", None, "Left"),
    ("liver segment 4", "term", "Anatomical Structure", "Couinaud hepatic segment IV", None, None),
    ("liver tumor", "kind", "Morphologically Abnormal Structure", "Tumor", "Liver", None),
    ("enhancing tumor", "kind", "Morphologically Abnormal Structure", "Tumor", "Brain", None),
    ("lung nodule", "kind", "Morphologically Abnormal Structure", "Nodule", "Lung", None),
    ("right gluteus maximus", "local", "Anatomical Structure", "gluteus maximus", None, "Right"),
    ("glowing blob", "local", "Grounded finding", "glowing blob", None, None),
])
def test_phrases_are_coded_by_their_term_their_kind_or_locally(phrase, how, category, type_, anatomy, side):
    c = coding_for(load_ontology(), phrase)
    assert (c.how, c.category.meaning, c.type.meaning) == (how, category, type_)
    assert (c.anatomy.meaning if c.anatomy else None, c.laterality.meaning if c.laterality else None) == (anatomy, side)
    assert (c.note is None) == (how == "term")
    if how == "local":
        assert c.type.scheme == LOCAL_SCHEME and LOCAL_SCHEME in c.note
    assert c.to_json()["type"]["meaning"] == type_


def test_a_malformed_code_is_refused_naming_the_term(tmp_path):
    bad = tmp_path / "extra.yaml"
    bad.write_text("groups:\n  - class: spleen\n    terms:\n      - {name: accessory spleen, code: {scheme: SCT, value: '1'}}\n")
    with pytest.raises(OntologyError, match="accessory spleen.*code must be"):
        load_ontology(extra=[bad])
