"""Loading of an image volume (one file per channel) + one label volume with a fixed label table.

Shared by the adapters of datasets that ship no label metadata of their own (BTCV, WORD, FLARE,
KiTS, LiTS, SegTHOR, BraTS, ACDC, PROMISE12, HECKTOR, ...): the adapter puts the dataset's real
label table into ``ref.options["labels"]`` (``((value, name), ...)``), optional ``channel_names``,
a ``listed`` phrase for error messages and ``meta`` (a JSON object: patient, phase, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..case import Case, CaseRef, LabelMap
from . import _common as C


def options(
    labels: dict[int, str],
    *,
    listed: str,
    meta: dict | None = None,
    channel_names: tuple[str, ...] = (),
    as_2d: bool | None = None,
) -> tuple[tuple[str, object], ...]:
    """The ``CaseRef.options`` understood by :func:`load_volume_pair` (sorted, hashable).

    ``as_2d=True`` reads one-slice volumes (CAMUS ultrasound frames) as 2D images.
    """
    opts: dict[str, object] = {
        "labels": tuple(sorted(labels.items())),
        "listed": listed,
        "as_2d": as_2d,
        "meta": json.dumps(meta or {}, sort_keys=True),
        "channel_names": channel_names,
    }
    return tuple(sorted(opts.items()))


def load_volume_pair(ref: CaseRef) -> Case:
    """Read the image channel files and the label file of ``ref``; check the label values.

    Raises:
        ReadError: a missing or unreadable file (named).
        CaseError: channels or label off the image grid, or a label value the table lacks (the
            message names the file and what the dataset lists).
    """
    from ..io import read_image, read_label

    paths = [C.require_file(Path(p), "image file") for p in ref.image_paths]
    images = [read_image(p, as_2d=ref.option("as_2d")) for p in paths]
    array = C.stack_channels(images, paths)
    channels = tuple(ref.option("channel_names", ()))
    labels: list[LabelMap] = []
    if ref.label_paths:
        lpath = C.require_file(Path(ref.label_paths[0]), "label file")
        lab = read_label(lpath, reference=images[0]).array
        names = dict(ref.option("labels", ()))
        listed = ref.option("listed", "the dataset")
        C.check_label_values(
            lab, names, path=lpath, listed=f"{listed} lists " + ", ".join(f"{v} {n}" for v, n in sorted(names.items()))
        )
        labels.append(LabelMap(lab, names))
    return C.volume_case(
        ref,
        layout=ref.layout,
        images=images,
        paths=paths,
        array=array,
        labels=labels,
        channel_names=channels if array.ndim > images[0].geometry.ndim else (),
        meta=json.loads(ref.option("meta", "{}")),
    )
