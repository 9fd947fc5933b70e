"""Checks of the form fields the service takes (phrases, modality, question, ...): 422 naming the field."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal, overload

from fastapi import HTTPException

from ..core.text import clean_phrase
from ..infer.masks import Masks
from ..modality import UnknownModalityError, normalise_modality
from .config import ServiceConfig

PLANES = ("axial", "coronal", "sagittal")
#: bidirectional-text controls: they make echoed text display differently from what it is ("Trojan Source")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _bidi(text: str) -> str | None:
    """The first bidirectional control character of ``text`` as ``U+XXXX``, or None."""
    hit = next((c for c in text if c in BIDI_CONTROLS), None)
    return None if hit is None else f"U+{ord(hit):04X}"


def bad(field: str, message: str, status: int = 422) -> HTTPException:
    """An HTTP error whose message starts with the field name."""
    return HTTPException(status, f"{field}: {message}")


def _split(values: Sequence[str], field: str) -> list[Any]:
    """One value: a JSON list, else comma / newline separated; several values: one phrase each."""
    if len(values) != 1:
        return list(values)
    text = values[0]
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except RecursionError:  # "[[[[…": nesting deeper than the JSON parser's recursion limit
            raise bad(field, "JSON nested too deeply; send a flat list of strings") from None
        except ValueError as exc:
            raise bad(
                field,
                f"not a valid JSON list ({exc}); send e.g. '[\"liver\", \"left kidney\"]' or 'liver, left kidney'",
            ) from None
        if not isinstance(items, list):
            raise bad(field, "expected a JSON list of strings")
        return items
    return [p for line in text.splitlines() for p in line.split(",")] if text.strip() else [text]


@overload
def parse_phrases(
    values: Sequence[str] | None, config: ServiceConfig, *, field: str = ..., required: Literal[True] = ...
) -> tuple[str, ...]: ...


@overload
def parse_phrases(
    values: Sequence[str] | None, config: ServiceConfig, *, field: str = ..., required: bool
) -> tuple[str, ...] | None: ...


def parse_phrases(
    values: Sequence[str] | None, config: ServiceConfig, *, field: str = "phrases", required: bool = True
) -> tuple[str, ...] | None:
    """The phrases of a request, whitespace-normalised and de-duplicated (order kept).

    Accepts a JSON list string (``'["liver", "left kidney"]'``), a comma-separated string, or the
    field repeated. Returns None when ``required`` is False and nothing (or only blanks) was sent.

    Raises:
        HTTPException: 422 no phrases, a blank or non-string phrase, too many, too long.
    """
    values = [v for v in (values or []) if v is not None]
    if not values or all(isinstance(v, str) and not v.strip() for v in values):
        if required:
            raise bad(field, "no phrases given: send at least one, e.g. 'liver, left kidney'")
        return None
    items = _split(values, field)
    if not items:
        raise bad(field, "the list is empty: send at least one phrase, e.g. '[\"liver\"]'")
    out: list[str] = []
    for i, p in enumerate(items, start=1):
        if not isinstance(p, str):
            raise bad(field, f"item {i} is {json.dumps(p)[:40]}, not a string")
        clean = clean_phrase(p)
        if not clean:
            raise bad(field, f"item {i} is blank" + (" (empty entry between commas?)" if len(items) > 1 else ""))
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in clean):
            raise bad(field, f"item {i} contains control characters")
        if _bidi(clean):
            raise bad(field, f"item {i} contains a bidirectional control character ({_bidi(clean)})")
        if not any(unicodedata.category(c)[0] in "LNPS" for c in unicodedata.normalize("NFD", clean)):
            raise bad(field, f"item {i} ({clean!r}) has no letters, digits or symbols")
        if len(clean) > config.max_phrase_chars:
            raise bad(field, f"item {i} has {len(clean)} characters, above the limit of {config.max_phrase_chars}")
        if clean not in out:
            out.append(clean)
    if len(out) > config.max_phrases:
        raise bad(field, f"{len(out)} phrases, above the limit of {config.max_phrases} per request")
    return tuple(out)


def parse_modality(value: str | None, known: Sequence[str]) -> str | None:
    """The canonical modality code (None: blank / automatic); 422 when unknown to medglip or the model."""
    if value is None or not str(value).strip() or str(value).strip().lower() == "auto":
        return None
    try:
        code = normalise_modality(value)
    except UnknownModalityError as exc:
        raise bad("modality", str(exc)) from None
    if code not in known:
        raise bad("modality", f"{code} is not one this model knows ({', '.join(known)})")
    return code


def check_score_threshold(value: float | None) -> float | None:
    """A finite number in [0, 1] or None."""
    if value is None:
        return None
    if not (0.0 <= float(value) <= 1.0):  # also refuses NaN
        raise bad("score_threshold", f"{value!r} is outside [0, 1]")
    return float(value)


#: What the ``masks`` field accepts (case-insensitive): booleans and the mask sources of the Grounder.
_MASK_WORDS: dict[str, Masks] = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
    "none": False,
    "": False,
    "auto": True,
    "head": "head",
    "medsam": "medsam",
}


def parse_masks(value: str | bool | None) -> Masks:
    """The ``masks`` field: False, True (the service's default source: the checkpoint's mask head when it
    has one, else LiteMedSAM), ``"head"`` or ``"medsam"``; 422 otherwise."""
    if value is None or isinstance(value, bool):
        return bool(value)
    key = str(value).strip().lower()
    if key not in _MASK_WORDS:
        raise bad(
            "masks", f"{str(value)[:40]!r} is not one of true, false, head (the model's mask head), medsam (LiteMedSAM)"
        )
    return _MASK_WORDS[key]


def check_top_k(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise bad("top_k", f"must be at least 1, got {value}")
    return value


def check_plane(value: str | None) -> str:
    plane = (value or "axial").strip().lower()
    if plane not in PLANES:
        raise bad("plane", f"unknown plane {value!r}; expected one of {', '.join(PLANES)}")
    return plane


def check_question(value: str | None, config: ServiceConfig) -> str:
    """The question, stripped; 422 when empty or longer than ``max_question_chars``."""
    text = " ".join(str(value or "").split())
    if not text:
        raise bad("question", "empty question: ask e.g. 'Is there a tumor in the left kidney?'")
    if len(text) > config.max_question_chars:
        raise bad("question", f"{len(text)} characters, above the limit of {config.max_question_chars}")
    if _bidi(text):
        raise bad("question", f"contains a bidirectional control character ({_bidi(text)})")
    return text


def flatten_validation_errors(errors: Sequence[dict]) -> str:
    """FastAPI / pydantic validation errors as one line naming each field."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "form")]
        field = ".".join(loc) or "request"
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "missing":
            msg = "field required"
        elif "Expected UploadFile" in msg:
            msg = "expected an uploaded file (a multipart file part), got a text field"
        elif "input" in err and err["input"] is not None and not isinstance(err["input"], (dict, list)):
            shown = repr(err["input"])
            msg += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
        parts.append(f"{field}: {msg}")
    return "; ".join(parts) or "invalid request"
