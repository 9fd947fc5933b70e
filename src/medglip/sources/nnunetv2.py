"""nnU-Net v2 raw datasets: ``DatasetXXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}``.

Format (MIC-DKFZ/nnUNet ``documentation/dataset_format.md``):

- ``dataset.json``: ``channel_names`` ``{"0": "CT"}``, ``labels`` name → int (``{"background": 0,
  "liver": 1}``), ``file_ending`` (``".nii.gz"``, ``".png"``, ...). Region-based datasets map a name
  to a *list* of ints (BraTS ``"whole tumor": [1, 2, 3]``).
- ``imagesTr/<case>_0000<ending>`` (``_0001``, ... further channels), ``labelsTr/<case><ending>``,
  optional ``imagesTs/<case>_0000<ending>``. An optional ``"dataset"`` key lists files explicitly.

What medglip makes of it:

- Training cases get ``split="train"``; ``imagesTs`` cases are listed with ``split="test"`` and no
  label paths (the build skips unlabeled cases by default).
- Channels are stacked as the last image axis with ``channel_names``; a single RGB file for
  ``R, G, B`` channels (nnU-Net's natural-image exception) keeps its own channel axis.
- Plain labels (name → int) form the first :class:`LabelMap`. Each region-based label (name → list)
  becomes its own binary LabelMap ``{1: name}`` (mask = voxels whose value is in the list), and
  ``case.meta["regions"]`` records ``{name: [values]}`` (plus ``regions_class_order`` if given).
- nnU-Net's ``"ignore"`` label (unannotated voxels, partial annotation) is not a structure: it is
  left out of the names and recorded as ``case.meta["ignore_value"]``.
- A label value present in a file but absent from ``labels`` raises :class:`CaseError`.
- Modality from ``channel_names["0"]`` (CT, MRI, T2, ADC, ...); normalisation schemes (``noNorm``,
  ``zscore``, ``rescale_to_0_1``) and ``R/G/B`` are not modalities, so ``modality=`` is required.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "nnunetv2"
TIER = Tier.DATASET_JSON
LOOKS_FOR = "dataset.json with channel_names/file_ending + imagesTr/labelsTr (nnU-Net v2)"  # what `detect` looks for
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def detect(root: Path) -> bool:
    """A ``dataset.json`` with ``channel_names`` or ``file_ending`` (nnU-Net v2 keys)."""
    meta = C.peek_dataset_json(root)
    return meta is not None and ("channel_names" in meta or "file_ending" in meta)


def _read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    meta = C.load_json(path, what="nnU-Net dataset.json")
    if not isinstance(meta, dict):
        raise LayoutError(f"{path}: expected a JSON object")
    missing = [k for k in ("channel_names", "labels", "file_ending") if k not in meta]
    if missing:
        raise LayoutError(f"{path}: missing required key(s) {', '.join(missing)} (nnU-Net v2 dataset.json)")
    if not isinstance(meta["labels"], dict) or not isinstance(meta["channel_names"], dict):
        raise LayoutError(f"{path}: 'labels' and 'channel_names' must be objects")
    return meta


_Plain = tuple[tuple[int, str], ...]
_Regions = tuple[tuple[str, tuple[int, ...]], ...]


def _parse_labels(meta: dict, path: Path) -> tuple[_Plain, _Regions]:
    """Split ``labels`` into plain ``(value, name)`` pairs and region ``(name, values)`` pairs."""
    plain, regions = [], []
    for name, value in meta["labels"].items():
        if name == "ignore":
            continue
        if isinstance(value, list):
            regions.append((str(name), tuple(int(v) for v in value)))
        elif isinstance(value, (int, float, str)) and str(value).lstrip("-").isdigit():
            if int(value) != 0:
                plain.append((int(value), str(name)))
        else:
            raise LayoutError(f"{path}: label {name!r} has value {value!r}; expected an int or a list of ints")
    return tuple(sorted(plain)), tuple(regions)


def _group_channels(folder: Path, ending: str) -> dict[str, list[Path]]:
    """``{case: [channel files sorted by channel id]}`` for ``<case>_XXXX<ending>`` files."""
    cases: dict[str, list[Path]] = {}
    for p in C.files_in(folder):
        if not p.name.endswith(ending):
            continue
        m = _CHANNEL.match(p.name[: -len(ending)])
        if m is None:
            log.warning("%s: not named <case>_XXXX%s; skipped", p, ending)
            continue
        cases.setdefault(m["case"], []).append(p)
    return {k: sorted(v) for k, v in cases.items()}


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """List training (``imagesTr``/``labelsTr``) and test (``imagesTs``) cases without reading pixels."""
    root = Path(root)
    meta = _read_dataset_json(root)
    ending = str(meta["file_ending"])
    channels = tuple(str(meta["channel_names"][k]) for k in sorted(meta["channel_names"], key=int))
    code = C.resolve_modality(
        modality,
        channels[0] if channels else None,
        where=str(root / "dataset.json"),
        hint=f"channel_names {list(channels)} name no modality",
    )
    plain, regions = _parse_labels(meta, root / "dataset.json")
    ignore = meta["labels"].get("ignore")
    options = tuple(
        sorted(
            {
                "channel_names": channels,
                "labels": plain,
                "regions": regions,
                "ignore": ignore,
                "regions_class_order": tuple(meta.get("regions_class_order") or ()),
            }.items()
        )
    )
    source = root.name
    refs: list[CaseRef] = []
    if isinstance(meta.get("dataset"), dict):  # explicit file list (dataset_format_inference.md)
        for cid, entry in meta["dataset"].items():
            entry = entry if isinstance(entry, dict) else {}
            imgs = tuple(root / p for p in entry.get("images") or [])
            if not imgs:
                raise LayoutError(f"{root / 'dataset.json'}: 'dataset' entry {cid!r} lists no 'images'")
            lab = (root / entry["label"],) if entry.get("label") else ()
            refs.append(
                CaseRef(
                    case_id=cid,
                    source=source,
                    layout=NAME,
                    image_paths=imgs,
                    label_paths=lab,
                    modality=code,
                    split="train",
                    options=options,
                )
            )
        return sorted(refs, key=lambda r: r.case_id)
    train = _group_channels(root / "imagesTr", ending)
    labels = {p.name[: -len(ending)]: p for p in C.files_in(root / "labelsTr") if p.name.endswith(ending)}
    if not train and not labels:
        raise LayoutError(f"{root}: no imagesTr/<case>_0000{ending} or labelsTr/<case>{ending} files")
    for cid in sorted(set(train) | set(labels)):
        imgs = tuple(train.get(cid, [root / "imagesTr" / f"{cid}_0000{ending}"]))
        label = labels.get(cid, root / "labelsTr" / f"{cid}{ending}")
        refs.append(
            CaseRef(
                case_id=cid,
                source=source,
                layout=NAME,
                image_paths=imgs,
                label_paths=(label,),
                modality=code,
                split="train",
                options=options,
            )
        )
    for cid, channel_files in sorted(_group_channels(root / "imagesTs", ending).items()):
        refs.append(
            CaseRef(
                case_id=cid,
                source=source,
                layout=NAME,
                image_paths=tuple(channel_files),
                label_paths=(),
                modality=code,
                split="test",
                options=options,
            )
        )
    return sorted(refs, key=lambda r: (r.case_id, r.split or ""))


def load_case(ref: CaseRef) -> Case:
    """Read the channels and the label map of one case (see the module docstring)."""
    from ..io import read_image, read_label

    paths = [C.require_file(Path(p), "image file") for p in ref.image_paths]
    images = [read_image(p) for p in paths]
    channels = tuple(ref.option("channel_names", ()))
    array = C.stack_channels(images, paths)
    n_ch = 1 if array.ndim == images[0].geometry.ndim else array.shape[-1]
    if channels and n_ch != len(channels):
        raise CaseError(
            str(paths[0]),
            f"{n_ch} channel(s) read from {len(paths)} file(s) but dataset.json "
            f"channel_names lists {len(channels)}: {list(channels)}",
        )
    labels: list[LabelMap] = []
    meta: dict = {}
    if ref.label_paths:
        lpath = C.require_file(Path(ref.label_paths[0]), "label file")
        lab = read_label(lpath, reference=images[0]).array
        plain = dict(ref.option("labels", ()))
        regions = dict(ref.option("regions", ()))
        ignore = ref.option("ignore")
        allowed = set(plain) | {v for vals in regions.values() for v in vals} | ({int(ignore)} if ignore else set())
        listed = "dataset.json lists " + ",".join(str(v) for v in sorted(allowed | {0}))
        C.check_label_values(lab, allowed, path=lpath, listed=listed)
        if plain or not regions:
            labels.append(LabelMap(lab, plain))
        for name, vals in regions.items():
            labels.append(LabelMap(np.isin(lab, vals).astype(np.uint8), {1: name}))
        if ignore:
            meta["ignore_value"] = int(ignore)
        if regions:
            meta["regions"] = {k: list(v) for k, v in regions.items()}
            if ref.option("regions_class_order"):
                meta["regions_class_order"] = list(ref.option("regions_class_order"))
    return C.volume_case(
        ref,
        layout=NAME,
        images=images,
        paths=paths,
        array=array,
        labels=labels,
        channel_names=channels if n_ch > 1 else (),
        meta=meta,
    )
