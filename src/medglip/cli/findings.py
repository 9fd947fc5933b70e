"""The human table of a grounding result: one line per finding, numbers rounded for reading.

Read from the result's JSON: its ``findings`` list when it has one (``id``, ``phrase``, ``score``,
``size_mm``, ``side``, ``slices``, ``location``), else its detections (2D: ``phrases[].boxes/scores``;
volumes: ``objects``), numbered F1, F2, ... in the order the JSON lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEADER = ("finding", "phrase", "score", "where", "size")
NOT_FOUND = "not found"


def _num(v: Any, digits: int = 1) -> str:
    """``12.0`` → ``12``, ``12.345`` → ``12.3``: rounded, without trailing zeros."""
    return f"{float(v):.{digits}f}".rstrip("0").rstrip(".")


def _size_mm(v: Any) -> str:
    if v is None or v == []:
        return ""
    if isinstance(v, (list, tuple)):
        return " × ".join(_num(x) for x in v) + " mm"
    return f"{_num(v)} mm"


def _slices(v: Any) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"slice {v[0]}" if v[0] == v[1] else f"slices {v[0]}–{v[1]}"
    return "" if v is None else f"slices {v}"


def _from_finding(f: dict[str, Any], n: int) -> tuple[str, ...]:
    location, side = str(f.get("location") or ""), str(f.get("side") or "")
    where = [w for w in ((side if side not in location else ""), location) if w]  # "patient's left" says the side
    if f.get("slices") is not None and "slice" not in " ".join(where):  # the location words may name them
        where.append(_slices(f["slices"]))
    size = f.get("size_mm") if f.get("size_mm") is not None else f.get("extent_mm")  # a volume's: its extent
    return (
        str(f.get("id") or f"F{n}"),
        str(f.get("phrase", "")),
        _num(f.get("score", 0.0), 2),
        ", ".join(where),
        _size_mm(size),
    )


def _box_rows(payload: dict[str, Any]) -> list[tuple[str, ...]]:
    """2D detections: the box (pixels) and its size (mm where the image's pixel spacing is known)."""
    spacing = payload.get("pixel_spacing")  # (row_mm, col_mm)
    rows: list[tuple[str, ...]] = []
    for g in payload.get("phrases", []):
        for box, score in zip(g.get("boxes", []), g.get("scores", []), strict=False):
            x0, y0, x1, y1 = box
            where = f"x {round(x0)}–{round(x1)}, y {round(y0)}–{round(y1)} px"
            if spacing:
                size = _size_mm([(x1 - x0) * spacing[1], (y1 - y0) * spacing[0]])
            else:
                size = f"{_num(x1 - x0, 0)} × {_num(y1 - y0, 0)} px"
            rows.append((f"F{len(rows) + 1}", g["phrase"], _num(score, 2), where, size))
    return rows


def _object_rows(payload: dict[str, Any]) -> list[tuple[str, ...]]:
    """Volume objects: their slices and the extent of their world box (mm)."""
    rows: list[tuple[str, ...]] = []
    for n, obj in enumerate(payload.get("objects", []), start=1):
        lo, hi = obj.get("world_box_mm") or [[0, 0, 0], [0, 0, 0]]
        rows.append(
            (
                f"F{n}",
                obj["phrase"],
                _num(obj["score"], 2),
                _slices(obj.get("slices")),
                _size_mm([abs(b - a) for a, b in zip(lo, hi, strict=False)]),
            )
        )
    return rows


def asked_phrases(payload: dict[str, Any]) -> list[str]:
    return [p["phrase"] if isinstance(p, dict) else str(p) for p in payload.get("phrases", [])]


def finding_rows(payload: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per finding (:data:`HEADER`), then one ``not found`` row per phrase asked that found nothing."""
    if isinstance(payload.get("findings"), list):
        rows = [_from_finding(f, n) for n, f in enumerate(payload["findings"], start=1)]
    elif "objects" in payload:
        rows = _object_rows(payload)
    else:
        rows = _box_rows(payload)
    found = {r[1] for r in rows}
    return rows + [("–", p, NOT_FOUND, "", "") for p in asked_phrases(payload) if p not in found]


def finding_summary(rows: Sequence[Sequence[str]]) -> str:
    n = sum(r[2] != NOT_FOUND for r in rows)
    return f"{n} finding(s)" if n else "no finding above the score threshold"
