"""Medical Segmentation Decathlon: ``TaskXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}``.

``dataset.json`` (MSD): ``modality`` ``{"0": "CT"}`` or ``{"0": "FLAIR", "1": "T1w", ...}``,
``labels`` int → name (``{"0": "background", "1": "liver", "2": "cancer"}``, the reverse of
nnU-Net v2), ``training`` ``[{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}]``
and ``test`` ``["./imagesTs/liver_132.nii.gz"]``. Multi-modal images are 4D NIfTI ``(i, j, k, C)``;
their channels are named by ``modality``.

- The case list comes from ``training``/``test``; without them the folders are scanned. The real
  tarballs hold macOS junk (``._liver_0.nii.gz``): names starting with ``.`` are skipped.
- nnU-Net v1 raw folders (same JSON, ``<case>_0000.nii.gz`` channel files) are read too.
- A label value absent from ``labels`` raises :class:`CaseError` from :func:`load_case`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "msd"
TIER = Tier.DATASET_JSON
LOOKS_FOR = "dataset.json with modality/training (Medical Segmentation Decathlon)"  # what `detect` looks for


def detect(root: Path) -> bool:
    """A ``dataset.json`` with MSD keys (``training`` or ``modality``) and no nnU-Net v2 keys."""
    meta = C.peek_dataset_json(root)
    return (
        meta is not None
        and ("training" in meta or "modality" in meta)
        and "channel_names" not in meta
        and "file_ending" not in meta
    )


def _read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    meta = C.load_json(path, what="MSD dataset.json")
    if not isinstance(meta, dict):
        raise LayoutError(f"{path}: expected a JSON object")
    missing = [k for k in ("modality", "labels") if k not in meta]
    if missing:
        raise LayoutError(f"{path}: missing required key(s) {', '.join(missing)} (MSD dataset.json)")
    try:
        meta["_labels"] = tuple(sorted((int(k), str(v)) for k, v in meta["labels"].items() if int(k) != 0))
    except (AttributeError, ValueError):
        raise LayoutError(f"{path}: 'labels' must map integer strings to names, got {meta['labels']!r}") from None
    return meta


def _image_files(path: Path) -> tuple[Path, ...]:
    """The image itself, or its nnU-Net v1 channel files ``<stem>_0000<ext>``, ... when it is absent."""
    if path.exists():
        return (path,)
    stem, ext = C.split_ext(path.name)
    chans = sorted(
        p
        for p in C.files_in(path.parent)
        if p.name.startswith(stem + "_") and p.name.endswith(ext) and p.name[len(stem) + 1 : -len(ext)].isdigit()
    )
    return tuple(chans) or (path,)


def _case_id(path: Path) -> str:
    return C.split_ext(path.name)[0]


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """List ``training`` (split ``train``) and ``test`` (split ``test``, unlabeled) cases."""
    root = Path(root)
    meta = _read_dataset_json(root)
    mods = meta["modality"] if isinstance(meta["modality"], dict) else {"0": meta["modality"]}
    channels = tuple(str(mods[k]) for k in sorted(mods, key=lambda k: int(k)))
    code = C.resolve_modality(
        modality, channels[0] if channels else None, where=str(root / "dataset.json"), hint=f"modality {list(channels)}"
    )
    options = (("channel_names", channels), ("labels", meta["_labels"]))
    source = root.name
    pairs: list[tuple[Path, Path | None, str]] = []
    if isinstance(meta.get("training"), list) or isinstance(meta.get("test"), list):
        for entry in meta.get("training") or []:
            if not isinstance(entry, dict) or "image" not in entry:
                raise LayoutError(f"{root / 'dataset.json'}: training entry {entry!r} lacks 'image'")
            if Path(entry["image"]).name.startswith("._"):
                continue
            lab = root / entry["label"] if entry.get("label") else None
            pairs.append((root / entry["image"], lab, "train"))
        for entry in meta.get("test") or []:
            img = entry["image"] if isinstance(entry, dict) else entry
            if not Path(img).name.startswith("._"):
                pairs.append((root / img, None, "test"))
    else:
        labels = {_case_id(p): p for p in C.files_in(root / "labelsTr", C.VOLUME_EXTS)}
        images = {_case_id(p): p for p in C.files_in(root / "imagesTr", C.VOLUME_EXTS)}
        for cid in sorted(set(images) | set(labels)):
            img = images.get(cid) or root / "imagesTr" / labels[cid].name
            pairs.append((img, labels.get(cid) or root / "labelsTr" / img.name, "train"))
        pairs += [(p, None, "test") for p in C.files_in(root / "imagesTs", C.VOLUME_EXTS)]
    if not pairs:
        raise LayoutError(f"{root}: no cases in dataset.json 'training'/'test' nor in imagesTr/labelsTr")
    refs = [
        CaseRef(
            case_id=_case_id(img),
            source=source,
            layout=NAME,
            image_paths=_image_files(img),
            label_paths=(lab,) if lab else (),
            modality=code,
            split=split,
            options=options,
        )
        for img, lab, split in pairs
    ]
    return sorted(refs, key=lambda r: (r.case_id, r.split or ""))


def load_case(ref: CaseRef) -> Case:
    """Read the (possibly 4D multi-modal) image and its label map."""
    from ..io import read_image, read_label

    paths = [C.require_file(Path(p), "image file") for p in ref.image_paths]
    images = [read_image(p) for p in paths]
    array = C.stack_channels(images, paths)
    ndim = images[0].geometry.ndim
    n_ch = 1 if array.ndim == ndim else array.shape[-1]
    channels = tuple(ref.option("channel_names", ()))
    if channels and n_ch != len(channels):
        raise CaseError(
            str(paths[0]),
            f"image has {n_ch} channel(s) but dataset.json modality lists {len(channels)}: {list(channels)}",
        )
    labels: list[LabelMap] = []
    if ref.label_paths:
        lpath = C.require_file(Path(ref.label_paths[0]), "label file")
        lab = read_label(lpath, reference=images[0]).array
        names = dict(ref.option("labels", ()))
        C.check_label_values(
            lab, names, path=lpath, listed="dataset.json lists " + ",".join(str(v) for v in [0, *sorted(names)])
        )
        labels.append(LabelMap(lab, names))
    return C.volume_case(
        ref,
        layout=NAME,
        images=images,
        paths=paths,
        array=array,
        labels=labels,
        channel_names=channels if n_ch > 1 else (),
    )
