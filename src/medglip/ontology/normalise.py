"""Name normalisation: the text keys under which terms, synonyms and source names are matched.

Every name (a term's name, a synonym, a source label, a source data set name) goes through the same
:func:`name_key`, so data and lookups agree on punctuation, case and spelling:

>>> name_key("Left-Hippocampus"), name_key("lung_upper_lobe_left"), name_key("Enhancing Tumour")
('left hippocampus', 'lung upper lobe left', 'enhancing tumor')
>>> split_laterality("rib left 3"), split_laterality("cerebelum 4 5 l"), split_laterality("lh hippocampus")
(('rib 3', 'left'), ('cerebelum 4 5', 'left'), ('hippocampus', 'left'))
"""

from __future__ import annotations

import re

from .model import Laterality

#: British (and a few other) spellings → the American spelling used in canonical names.
SPELLING: dict[str, str] = {
    "tumour": "tumor",
    "tumours": "tumors",
    "oesophagus": "esophagus",
    "oesophageal": "esophageal",
    "haemorrhage": "hemorrhage",
    "haemorrhagic": "hemorrhagic",
    "oedema": "edema",
    "grey": "gray",
    "caecum": "cecum",
    "haematoma": "hematoma",
    "ischaemic": "ischemic",
    "ischaemia": "ischemia",
    "paediatric": "pediatric",
    "naevus": "nevus",
    "naevi": "nevi",
    "seborrhoeic": "seborrheic",
    "centre": "center",
    "fibre": "fiber",
    "haemangioma": "hemangioma",
    "coeliac": "celiac",
    "oestrogen": "estrogen",
    "anaemia": "anemia",
    "leukaemia": "leukemia",
    "foetal": "fetal",
    "cerebelum": "cerebellum",  # the AAL atlas's spelling
}

#: Words that give the side anywhere in a name.
_SIDE_WORDS: dict[str, Laterality] = {"left": "left", "right": "right", "lh": "left", "rh": "right"}
#: Abbreviations that give the side only as the first or last word ("Hippocampus_L", "R kidney").
_SIDE_ENDS: dict[str, Laterality] = {"l": "left", "r": "right", "lt": "left", "rt": "right"}
_BILATERAL = {"bilateral", "both"}

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_TOKEN = re.compile(r"[a-z0-9]+")
_DATASET_ID = re.compile(r"^(?:task|dataset|d)\d+$")
_TRAILING_VERSION = re.compile(r"^([a-z]+?)(?:v?\d+)$")


def camel_split(text: str) -> str:
    """Put a space where a lower-case letter meets an upper-case one ("HepaticVessel")."""
    return _CAMEL.sub(" ", text)


def tokens(text: str) -> list[str]:
    """Lower-case words of ``text`` with punctuation dropped and British spellings Americanised."""
    words = _TOKEN.findall(str(text).lower().replace("&", " and "))
    return [SPELLING.get(w, w) for w in words]


def name_key(text: str) -> str:
    """The matching key of a name: its :func:`tokens` joined by single spaces."""
    return " ".join(tokens(text))


def key_candidates(raw: str) -> list[str]:
    """Keys to try for a raw name: as written, then with camel case split ("ParaHippocampal")."""
    out = [name_key(raw)]
    split = name_key(camel_split(str(raw)))
    if split not in out:
        out.append(split)
    return [k for k in out if k]


def _singular(word: str) -> list[str]:
    if len(word) <= 3 or not word.isalpha():
        return []
    out: list[str] = []
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    if word.endswith("ses"):
        out.append(word[:-3] + "sis")  # metastases
    if word.endswith("ae"):
        out.append(word[:-1])  # vertebrae
    if word.endswith("i"):
        out.append(word[:-1] + "us")  # nuclei
    if word.endswith("es"):
        out.append(word[:-2])  # masses
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        out.append(word[:-1])
    return out


def singular_variants(key: str) -> list[str]:
    """Plural-stripped variants of a key: the last word singular, then every word singular."""
    words = key.split()
    if not words:
        return []
    out: list[str] = []
    for s in _singular(words[-1]):
        out.append(" ".join(words[:-1] + [s]))
    all_words = [(_singular(w) or [w])[0] for w in words]
    joined = " ".join(all_words)
    if joined != key and joined not in out:
        out.append(joined)
    return out


def split_laterality(key: str) -> tuple[str, Laterality | None]:
    """Remove side words from a key and return ``(rest, side)``.

    ``left``/``right``/``lh``/``rh`` count anywhere, ``l``/``r``/``lt``/``rt`` only as the first or
    last word, ``bilateral``/``both`` as the first word. Names naming both sides, or nothing but a
    side, are returned unchanged with side None.
    """
    words = key.split()
    sides: list[Laterality] = []
    rest: list[str] = []
    for i, w in enumerate(words):
        if w in _SIDE_WORDS:
            sides.append(_SIDE_WORDS[w])
        elif w in _SIDE_ENDS and (i == 0 or i == len(words) - 1) and len(words) > 1:
            sides.append(_SIDE_ENDS[w])
        elif w in _BILATERAL and i == 0 and len(words) > 1:
            sides.append("bilateral")
        else:
            rest.append(w)
    if not sides or not rest or len(set(sides)) != 1:
        return key, None
    return " ".join(rest), sides[0]


def display_text(raw: str) -> str:
    """Readable text of an unknown name: camel case split, ``_``/``-``/``.`` to spaces, lower case.

    >>> display_text("weird_label_3"), display_text("WeirdLabel")
    ('weird label 3', 'weird label')
    """
    text = camel_split(str(raw)).replace("_", " ").replace("-", " ").replace(".", " ")
    return " ".join(text.lower().split())


def source_keys(source: str) -> list[str]:
    """Normalised forms of a data set name used to match per-source mappings.

    Dataset ids ("Task03", "Dataset003"), the words "msd"/"decathlon" and trailing version numbers
    ("BraTS2021" -> "brats") are removed, so ``Task03_Liver``, ``Dataset003_Liver`` and
    ``MSD Liver`` all give ``"liver"``.
    """
    out: list[str] = []
    for variant in (str(source), camel_split(str(source))):
        words: list[str] = []
        for w in tokens(variant):
            if _DATASET_ID.match(w) or w in ("msd", "decathlon", "nnunet", "raw") or w.isdigit():
                continue
            m = _TRAILING_VERSION.match(w)
            words.append(m.group(1) if m and len(m.group(1)) >= 3 else w)
        key = " ".join(words)
        if key and key not in out:
            out.append(key)
    return out


def contains_words(haystack: str, needle: str) -> bool:
    """True when the words of ``needle`` occur contiguously in ``haystack``."""
    return f" {needle} " in f" {haystack} "


_FLIP = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_FLIP_MAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


def flip_text(text: str) -> str:
    """Swap the words left and right (whole words, case kept): the phrase after a horizontal flip."""
    return _FLIP.sub(lambda m: _FLIP_MAP[m.group(1)], text)


def slug(name: str) -> str:
    """Identifier of a name: its key with spaces as underscores ("L5 vertebra" -> "l5_vertebra")."""
    return name_key(name).replace(" ", "_")
