"""Phrase text rules: how a phrase is cleaned before use and compared."""

from __future__ import annotations


def clean_phrase(phrase: str) -> str:
    """Whitespace collapsed, a trailing full stop dropped: ``"  left  kidney. "`` → ``"left kidney"``."""
    return " ".join(str(phrase).split()).strip().rstrip(".").strip()


def phrase_key(phrase: str) -> str:
    """The form phrases are compared in: :func:`clean_phrase`, lower case."""
    return clean_phrase(phrase).lower()
