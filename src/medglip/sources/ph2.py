"""PH2 dermoscopy (Mendonça et al., IEEE EMBC 2013).

Layout::

    PH2Dataset/PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp
    PH2Dataset/PH2 Dataset images/IMD002/IMD002_lesion/IMD002_lesion.bmp    (1-bit, or 24-bit 0/255)
    PH2Dataset/PH2 Dataset images/IMD002/IMD002_roi/...          (colour regions; not used)
    PH2Dataset/PH2_dataset.txt, PH2_dataset.xlsx                  (diagnoses and dermoscopic criteria)

Each case's lesion is named by its clinical diagnosis: ``PH2_dataset.txt`` (the original
``||``-separated table, or a tab-separated reduction of it; code 0 common nevus, 1 atypical nevus,
2 melanoma) or, without it, ``PH2_dataset.xlsx`` (an ``X`` in the Common Nevus / Atypical Nevus /
Melanoma column). Both list all 200 cases; only the case folders present are listed. A case they do
not name (or a copy without them) keeps the folder's word, ``"lesion"`` (a skin lesion). Modality
DERM; no split. PH2 names no patients: each image is its own group when splitting.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "ph2"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "IMDnnn/IMDnnn_Dermoscopic_Image + IMDnnn_lesion (+ PH2_dataset.txt diagnoses) (PH2)"
LABEL = "lesion"
#: PH2's clinical diagnosis codes (Readme / PH2_dataset.txt legend).
DIAGNOSES: dict[int, str] = {0: "common nevus", 1: "atypical nevus", 2: "melanoma"}
_CASE = re.compile(r"^IMD\d+$")
_XLSX_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _images_dir(root: Path) -> Path | None:
    for cand in (root / "PH2 Dataset images", root / "PH2Dataset" / "PH2 Dataset images", root):
        if cand.is_dir() and any(
            (d / f"{d.name}_Dermoscopic_Image").is_dir() for d in sorted(cand.iterdir())[:5] if d.is_dir()
        ):
            return cand
    return None


def detect(root: Path) -> bool:
    """``IMDnnn/IMDnnn_Dermoscopic_Image/`` case folders (PH2)."""
    root = Path(root)
    return root.is_dir() and _images_dir(root) is not None


def _from_txt(path: Path) -> dict[str, str]:
    """Case → diagnosis from ``PH2_dataset.txt``: the original ``|| IMD003 || <histology> || 0 || ...``
    rows or the tab-separated ``IMD003<TAB>0<TAB>0`` reduction; the column is found by its header
    ("Clinical Diagnosis"). Legend lines at the end (truncated in some copies) are skipped."""
    out: dict[str, str] = {}
    column = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        piped = "||" in line
        cells = [c.strip() for c in (line.split("||")[1:] if piped else line.split("\t"))]
        if cells and cells[0].lower() in ("name", "image name"):
            column = next((i for i, c in enumerate(cells) if c.lower() == "clinical diagnosis"), None)
            continue
        if not cells or not _CASE.match(cells[0]):
            continue
        col = column if column is not None else (2 if piped else 1)  # the two known layouts, headerless
        code = cells[col] if col < len(cells) else ""
        if code.isdigit() and int(code) in DIAGNOSES:
            out[cells[0]] = DIAGNOSES[int(code)]
        else:
            log.warning("%s: %s has no clinical diagnosis code 0/1/2 (%r); it stays a 'lesion'", path, cells[0], code)
    return out


def _xlsx_rows(path: Path) -> list[dict[str, str]]:
    """The first worksheet of an ``.xlsx`` as ``{column letters: text}`` rows (standard library only)."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        shared = []
        if "xl/sharedStrings.xml" in names:
            shared = [
                "".join(t.text or "" for t in si.iter(f"{_XLSX_NS}t"))
                for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{_XLSX_NS}si")
            ]
        sheets = sorted(n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        if not sheets:
            raise KeyError("no worksheet")
        sheet = ElementTree.fromstring(z.read(sheets[0]))
    rows = []
    for row in sheet.iter(f"{_XLSX_NS}row"):
        cells = {}
        for c in row.iter(f"{_XLSX_NS}c"):
            v = c.find(f"{_XLSX_NS}v")
            text = "".join(t.text or "" for t in c.iter(f"{_XLSX_NS}t")) if v is None else (v.text or "")
            if c.get("t") == "s" and v is not None:
                text = shared[int(text)]
            cells[re.sub(r"\d", "", c.get("r", ""))] = text.strip()
        rows.append(cells)
    return rows


def _from_xlsx(path: Path) -> dict[str, str]:
    """Case → diagnosis from ``PH2_dataset.xlsx``: the header row names the Common Nevus / Atypical
    Nevus / Melanoma columns; a case's diagnosis is the one column holding an ``X``."""
    try:
        rows = _xlsx_rows(path)
    except (OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile, ElementTree.ParseError) as exc:
        log.warning("%s: cannot read the diagnoses (%s); cases stay 'lesion'", path, exc)
        return {}
    columns: dict[str, str] = {}
    out: dict[str, str] = {}
    for cells in rows:
        if not columns:
            columns = {col: text.lower() for col, text in cells.items() if text.lower() in DIAGNOSES.values()}
            continue
        case = next((t for t in cells.values() if _CASE.match(t)), None)
        marked = [name for col, name in columns.items() if cells.get(col, "").upper() == "X"]
        if case and len(marked) == 1:
            out[case] = marked[0]
        elif case:
            log.warning("%s: %s has %d diagnosis marks; it stays a 'lesion'", path, case, len(marked))
    return out


def diagnoses(folders: list[Path]) -> dict[str, str]:
    """Case id (``IMD002``) → clinical diagnosis, from the first of ``folders`` holding
    ``PH2_dataset.txt`` (else ``PH2_dataset.xlsx``); empty when none does."""
    for folder in folders:
        for name, reader in (("PH2_dataset.txt", _from_txt), ("PH2_dataset.xlsx", _from_xlsx)):
            if (folder / name).is_file():
                found = reader(folder / name)
                if found:
                    return found
    return {}


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``IMDnnn`` folder; ``IMDnnn_lesion/IMDnnn_lesion.bmp`` is its mask, named by its diagnosis."""
    root = Path(root)
    base = _images_dir(root)
    if base is None:
        raise LayoutError(f"{root}: no 'PH2 Dataset images/IMDnnn/IMDnnn_Dermoscopic_Image' folders (PH2)")
    code = C.resolve_modality(modality, "DERM", where=str(root))
    table = diagnoses(list(dict.fromkeys((root, base.parent, root / "PH2Dataset"))))
    refs = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and (p / f"{p.name}_Dermoscopic_Image").is_dir()):
        img = next(
            iter(C.files_in(d / f"{d.name}_Dermoscopic_Image", C.IMAGE_2D_EXTS)),
            d / f"{d.name}_Dermoscopic_Image" / f"{d.name}.bmp",
        )
        mask = d / f"{d.name}_lesion" / f"{d.name}_lesion.bmp"
        diagnosis = table.get(d.name)
        meta = {"diagnosis": diagnosis} if diagnosis else {}
        opts = (("mask_names", (diagnosis or LABEL,)), ("meta", json.dumps(meta)), ("threshold", 127))
        refs.append(
            CaseRef(
                case_id=d.name,
                source=root.name,
                layout=NAME,
                image_paths=(img,),
                label_paths=(mask,),
                modality=code,
                options=opts,
            )
        )
    if table and any(r.option("mask_names") == (LABEL,) for r in refs):
        log.warning(
            "%s: %d case(s) without a diagnosis in PH2_dataset.txt/.xlsx stay 'lesion'",
            root,
            sum(r.option("mask_names") == (LABEL,) for r in refs),
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the dermoscopic image and its lesion mask (a 1-bit BMP reads as 0 / 1)."""
    return load_pair(ref)
