"""parse_question: clinical questions → kind, ontology targets, container, side; errors name the question."""

from __future__ import annotations

import pytest

from medglip.errors import MedglipError
from medglip.ontology import load_ontology
from medglip.vqa import QUESTION_KINDS, Question, parse_question
from medglip.vqa.candidates import MAX_CANDIDATES

# (question, kind, targets, side, container)
TABLE = [
    ("Is there a tumor in the left lung?", "presence", ("lung tumor",), "left", "left lung"),
    ("How many kidney stones are visible?", "count", ("kidney stone",), None, None),
    ("Which side is the pneumothorax on?", "laterality", ("pneumothorax",), None, None),
    ("Is the liver lesion larger than the left kidney?", "comparison", ("liver tumor", "left kidney"), None, None),
    ("Is there a neoplasm in the pancreas?", "presence", ("pancreatic tumor",), None, "pancreas"),
    ("Where is the mass?", "location", ("tumor",), None, None),
    ("Is there a lesion in the liver?", "presence", ("liver tumor",), None, "liver"),
    ("Which is larger, the left kidney or the right kidney?", "comparison", ("left kidney", "right kidney"),
     None, None),
    ("Is the brain tumor on the left?", "laterality", ("brain tumor",), "left", None),
    ("left kidney vs right kidney", "comparison", ("left kidney", "right kidney"), None, None),
    ("How big is the enhancing tumour?", "size", ("enhancing tumor",), None, None),
    ("Any lung nodules?", "presence", ("lung nodule",), None, None),
    ("Is there a pleural effusion on the right?", "presence", ("pleural effusion",), "right", None),
    ("Is there a hemorrhage in the brain?", "presence", ("hemorrhage",), None, "brain"),
    ("Which kidney is larger?", "comparison", ("left kidney", "right kidney"), None, None),
    ("Is the left kidney larger than the right?", "comparison", ("left kidney", "right kidney"), None, None),
    ("Does the liver show a lesion?", "presence", ("liver tumor",), None, "liver"),
    ("How many nodules are there in the right lung?", "count", ("lung nodule",), "right", "right lung"),
    ("What is the size of the liver tumour?", "size", ("liver tumor",), None, None),
    ("Is the spleen enlarged?", "open", ("spleen",), None, None),
    ("In which organ is the cyst located?", "containment", ("cyst",), None, None),
    ("Is there bilateral pleural effusion?", "presence", ("pleural effusion",), "bilateral", None),
    ("Is there a left kidney tumor?", "presence", ("kidney tumor",), "left", None),
    ("Where is the polyp?", "location", ("polyp",), None, None),
    ("What is the diameter of the largest lung nodule?", "size", ("lung nodule",), None, None),
    ("Is the gallbladder visible?", "presence", ("gallbladder",), None, None),
    ("Is the pneumothorax left or right?", "laterality", ("pneumothorax",), None, None),
    ("Which structure contains the kidney stone?", "containment", ("kidney stone",), None, None),
    ("Which hemisphere contains the brain tumor?", "laterality", ("brain tumor",), None, None),
    ("Is the tumour in the right kidney?", "presence", ("kidney tumor",), "right", "right kidney"),
    ("Are both kidneys visible?", "presence", ("kidney",), "bilateral", None),
    ("Is the left kidney present?", "presence", ("left kidney",), None, None),
    ("Compare both kidneys.", "comparison", ("left kidney", "right kidney"), None, None),
    ("Can you see any metastases in the liver?", "presence", ("liver metastasis",), None, "liver"),
    ("What organ contains the tumor?", "containment", ("tumor",), None, None),
    ("Which lung contains the nodule?", "laterality", ("lung nodule",), None, None),
    ("Which ventricle contains the hemorrhage?", "containment", ("hemorrhage",), None, None),
]


@pytest.mark.parametrize("text, kind, targets, side, container", TABLE, ids=[t[0] for t in TABLE])
def test_question_table(text, kind, targets, side, container):
    q = parse_question(text)
    assert isinstance(q, Question) and q.text == text and q.kind in QUESTION_KINDS
    assert (q.kind, q.targets, q.side, q.container) == (kind, targets, side, container)
    # what is grounded: the targets first, then the container, never twice
    assert q.phrases[: len(targets)] == targets and len(set(q.phrases)) == len(q.phrases)
    if container:
        assert container in q.phrases
    onto = load_ontology()
    for p in q.phrases:  # every grounded phrase is an ontology phrase
        assert onto.resolve(p).mapped, p


def test_phrases_are_target_then_container():
    assert parse_question("Is there a tumor in the left lung?").phrases == ("lung tumor", "left lung")


def test_containment_grounds_a_bounded_set_of_candidate_containers():
    onto = load_ontology()
    stone = parse_question("Which structure contains the kidney stone?")
    assert set(stone.phrases) == {"kidney stone", "left kidney", "right kidney"}
    q = parse_question("What organ contains the tumor?")
    assert 2 < len(q.phrases) <= MAX_CANDIDATES + 1 and q.phrases[0] == "tumor"
    # the generic tumour's candidates are organs from several body regions
    regions = {onto.resolve(p).region for p in q.phrases[1:]}
    assert {"head and neck", "thorax", "abdomen"} <= regions
    assert all(onto.resolve(p).level in ("organ", "substructure") for p in q.phrases[1:])
    # a named finding's own ancestors come first, nearest first
    # "which ventricle ...": the structure asked for is a candidate, not a container
    assert parse_question("Which ventricle contains the hemorrhage?").phrases == ("hemorrhage", "ventricular system")
    enh = parse_question("In which structure is the enhancing tumor?")
    assert enh.kind == "containment" and enh.phrases[1:4] == ("tumor core", "brain tumor", "brain")


def test_modality_makes_a_generic_lesion_specific():
    assert parse_question("Is there a lesion?", modality="DERM").targets == ("skin lesion",)
    assert parse_question("Is there a lesion?").targets == ("lesion",)


def test_open_question_without_terms_is_allowed():
    q = parse_question("Describe the findings.")
    assert q.kind == "open" and q.phrases == () and q.targets == ()


@pytest.mark.parametrize("text", ["Is there a flibbertigibbet here?", "How many widgets are visible?"])
def test_unknown_term_error_names_the_question(text):
    with pytest.raises(MedglipError, match="no anatomical structure or finding recognised") as exc:
        parse_question(text)
    assert repr(text) in str(exc.value)


def test_comparison_needs_two_things():
    with pytest.raises(MedglipError, match="two structures") as exc:
        parse_question("Is the liver larger than usual?")
    assert "Is the liver larger than usual?" in str(exc.value)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_text_question(bad):
    with pytest.raises(MedglipError):
        parse_question(bad)


def test_json_round_trip():
    from medglip.vqa.parse import question_from_json

    q = parse_question("Is there a tumor in the left lung?")
    assert question_from_json(q.to_json()) == q
