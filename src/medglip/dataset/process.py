"""Turn one :class:`~medglip.case.Case` into display images, instance boxes, masks and phrases."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..case import Case, label_counts
from ..core.intensity import CT_WINDOWS, DEFAULT_DISPLAY_WINDOW
from ..core.orient import SlicePlan, plan_slices
from ..core.pipeline import model_pixels, slice_pixels
from ..core.rules import body_columns, has_patient_sides, patient_side
from ..errors import CaseError
from ..io import write_png
from ..ontology import Ontology
from .config import BuildConfig, display_window_spec
from .instances import Instance, instances_from_slice
from .labels import LabelInfo, resolve_case_labels

#: zlib level of the dataset's PNGs: 1 writes a 512² CT slice about 3× faster than Pillow's default 6
#: for ~20 % more bytes, and decodes as fast (a dataset is written once, read every epoch).
PNG_LEVEL = 1


def case_seed(seed: int, key: str) -> int:
    """A per-case seed that does not depend on the order in which cases are processed."""
    return (seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(key))) % (2**32)


def check_label_values(case: Case) -> list[np.ndarray]:
    """Voxel counts per value of every label map; raises CaseError for values that have no name."""
    counts = []
    ignore = case.meta.get("ignore_value")  # nnU-Net "ignore" label: not annotated, not an error
    for lm in case.labels:
        try:
            c = label_counts(lm.array)
        except ValueError as e:  # negative or non-integer values
            raise CaseError(", ".join(case.label_path) or case.case_id, str(e)) from None
        present = [int(v) for v in np.nonzero(c)[0] if v != 0]
        unknown = [v for v in present if v not in lm.names and v != ignore]
        if unknown:
            raise CaseError(
                ", ".join(case.label_path) or case.case_id,
                f"unknown label value(s) {unknown}: the dataset only names {sorted(lm.names)}",
            )
        counts.append(c)
    named = [sum(int(c[v]) for v in lm.names if v < len(c)) for lm, c in zip(case.labels, counts, strict=True)]
    if not any(named) and not case.meta.get("no_finding"):
        raise CaseError(", ".join(case.label_path) or case.case_id, "empty mask: no labelled voxel in any label map")
    return counts


def choose_display_window(cfg: BuildConfig, infos: list[dict[int, LabelInfo]], counts: list[np.ndarray]) -> str:
    """The CT window ``medglip show`` draws a case in: the configured one, or the one most labelled
    voxels ask for (pictures only; the model sees every CT image through the same input windows).

    A window wins only when it covers most (60 %) of the labelled voxels; mixed cases (a whole
    abdomen, a full body) get the general soft-tissue window.
    """
    if display_window_spec(cfg.display_window) is not None:
        return cfg.display_window
    votes: dict[str, int] = {}
    for layer, c in zip(infos, counts, strict=True):
        for value, info in layer.items():
            if info.ct_window and value < len(c):
                votes[info.ct_window] = votes.get(info.ct_window, 0) + int(c[value])
    total = sum(votes.values())
    name = max(sorted(votes), key=lambda n: votes[n]) if total else DEFAULT_DISPLAY_WINDOW
    if total and votes[name] < 0.6 * total or name not in CT_WINDOWS:
        name = DEFAULT_DISPLAY_WINDOW
    return name


def slice_side(pixels: np.ndarray, x: float, plane: str, modality: str) -> str | None:
    """Patient side of column ``x`` of a built image (:func:`medglip.core.rules.patient_side`)."""
    if not has_patient_sides(modality, plane):
        return None
    return patient_side(x, pixels.shape[1], body=body_columns(pixels))


def _annotation(
    inst: Instance, info: LabelInfo, modality: str, side: str | None, crowd: bool = False
) -> dict[str, Any]:
    laterality = info.laterality
    if laterality is None and info.level in ("lesion", "unknown") and side in ("left", "right"):
        laterality = side  # a lesion's side is where it lies
    return {
        "bbox": list(inst.bbox),
        "area": inst.area,
        "segmentation": inst.rle,
        "iscrowd": int(crowd),
        "phrase": info.phrase,
        "label": info.label,
        "class": info.class_name,
        "region": info.region,
        "level": info.level,
        "laterality": laterality,
        "side": side,
        "hierarchy": list(info.hierarchy),
        "modality": modality,
        "source_label": info.source_label,
        "label_value": inst.value,
        "mapped": info.mapped,
    }


def absent_phrases(case: Case, infos: list[dict[int, LabelInfo]]) -> list[str]:
    """Phrases known to be absent from every image of ``case``: the findings its source declares
    absent (``meta["absent"]``, a healthy template) and, for a case with no finding
    (``meta["no_finding"]``: a tumour-free LGG slice), every label its source names for it. Training
    asks them as negative phrases, evaluation counts a box for them as an absent-phrase false positive.
    """
    out = [str(p) for p in case.meta.get("absent") or ()]
    if case.meta.get("no_finding"):
        out += [info.phrase for layer in infos for info in layer.values()]
    return list(dict.fromkeys(out))


def _image_fields(case: Case, file_name: str, pix: np.ndarray, absent: list[str]) -> dict[str, Any]:
    """The image-record fields every image shares, 2D or sliced."""
    out = {
        "file_name": file_name,
        "width": int(pix.shape[1]),
        "height": int(pix.shape[0]),
        "modality": case.modality,
        "source": case.source,
        "case_id": case.case_id,
    }
    if absent:
        out["absent"] = list(absent)
    return out


class CaseBuilder:
    """Writes one case's images under ``out/images/<key>/`` and returns its record (no ids yet)."""

    def __init__(self, *, config: BuildConfig, out_dir: Path, ontology: Ontology) -> None:
        self.cfg = config
        self.out = Path(out_dir)
        self.onto = ontology

    def __call__(self, case: Case, key: str) -> dict[str, Any]:
        case.validate()
        img_dir = self.out / "images" / key
        if img_dir.exists():  # left over by an interrupted run: start this case afresh
            shutil.rmtree(img_dir)
        img_dir.mkdir(parents=True)
        counts = check_label_values(case)
        infos = resolve_case_labels(case, self.onto, self.cfg.mapping)
        absent = absent_phrases(case, infos)
        record: dict[str, Any] = {
            "key": key,
            "case_id": case.case_id,
            "source": case.source,
            "layout": case.layout,
            "modality": case.modality,
            "split": case.split,
            "patient": case.meta.get("patient"),
            "image_path": list(case.image_path),
            "label_path": list(case.label_path),
            "fingerprint": self.cfg.fingerprint(),
            "labels": [
                {
                    "layer": i,
                    "value": v,
                    **info.category_fields(),
                    "source_label": info.source_label,
                    "voxels": int(counts[i][v]) if v < len(counts[i]) else 0,
                }
                for i, layer in enumerate(infos)
                for v, info in sorted(layer.items())
            ],
            "warnings": [],
        }
        if case.spatial_ndim == 3:
            record["images"] = self._volume(case, key, infos, counts, record["warnings"], absent=absent)
        else:
            record["images"] = self._image2d(case, key, infos, absent=absent)
        # the form the CT values came in (HU, a windowed picture, a standardised array): what the pipeline mapped
        record["ct_form"] = next(
            (im["intensity"]["form"] for im in record["images"] if im["intensity"].get("form")), None
        )
        return record

    # -- 3D -----------------------------------------------------------------------------------
    def _volume(self, case: Case, key: str, infos, counts, warnings: list[str], *, absent: list[str]) -> list[dict]:
        cfg = self.cfg
        plan = plan_slices(case.geometry, case.spatial_shape, cfg.plane)
        channels = (
            [None] if case.image.ndim == 3 else (list(range(case.image.shape[3])) if cfg.channels == "all" else [0])
        )
        sy, sx = plan.pixel_spacing(case.geometry)
        per_slice: list[list[tuple[Instance, LabelInfo]]] = []
        for idx in range(plan.n_slices):
            found: list[tuple[Instance, LabelInfo]] = []
            for lm, layer in zip(case.labels, infos, strict=True):
                insts, _ = instances_from_slice(
                    plan.take(lm.array, idx),
                    names=lm.names,
                    per_value=lm.instances,
                    min_pixels=cfg.min_pixels,
                    min_area_mm2=cfg.min_area_mm2,
                    pixel_area_mm2=sy * sx if case.spacing_known else None,
                )
                found += [(i, layer[i.value]) for i in insts]
            per_slice.append(found)
        positives = [i for i, f in enumerate(per_slice) if f]
        negatives = self._sample_negatives(case, plan, positives, key)
        images: list[dict] = []
        display = choose_display_window(cfg, infos, counts) if case.modality == "CT" else None
        for ch in channels:
            vol = case.image if ch is None else case.image[..., ch]
            for idx in sorted(positives + negatives):
                pix, intensity = slice_pixels(
                    vol,
                    plan,
                    idx,
                    case.modality,
                    cfg.input_config,
                    what=f"{case.case_id} slice {idx}",
                    form=case.ct_form,
                )
                stem = f"{key.split('/')[-1]}_{plan.plane[:3]}{idx:04d}" + ("" if ch is None else f"_c{ch}")
                write_png(self.out / "images" / key / f"{stem}.png", pix, compress_level=PNG_LEVEL)
                anns = []
                for inst, info in per_slice[idx]:
                    side = slice_side(pix, inst.centroid[0], plan.plane, case.modality)
                    if info.laterality and side in ("left", "right") and side != info.laterality:
                        warnings.append(f"slice {idx}: '{info.phrase}' lies on the patient's {side}")
                    anns.append(_annotation(inst, info, case.modality, side))
                images.append(
                    {
                        **_image_fields(case, f"{key}/{stem}.png", pix, absent),
                        "slice_axis": plan.slice_axis,
                        "slice_index": idx,
                        "slice_plane": plan.plane,
                        "channel": None
                        if ch is None
                        else (case.channel_names[ch] if ch < len(case.channel_names) else ch),
                        "pixel_spacing": [sy, sx] if case.spacing_known else None,
                        "negative": not anns,
                        "intensity": intensity,
                        "display_window": display,
                        "pixel_to_voxel": plan.pixel_to_voxel(idx).round(6).tolist(),
                        "pixel_to_world": plan.pixel_to_world(idx, case.geometry).round(6).tolist(),
                        "annotations": anns,
                    }
                )
        return images

    def _sample_negatives(self, case: Case, plan: SlicePlan, positives: list[int], key: str) -> list[int]:
        n = math.ceil(self.cfg.negative_ratio * len(positives))
        if n == 0:
            return []
        pos = set(positives)
        vol = case.image if case.image.ndim == 3 else case.image[..., 0]
        # blank slices (padding) teach nothing: only slices with some contrast are candidates
        varying = plan.varying(vol)
        cands = [i for i in range(plan.n_slices) if i not in pos and varying[i]]
        rng = random.Random(case_seed(self.cfg.seed, key))
        return sorted(rng.sample(cands, min(n, len(cands))))

    # -- 2D -----------------------------------------------------------------------------------
    def _image2d(self, case: Case, key: str, infos, *, absent: list[str]) -> list[dict]:
        cfg = self.cfg
        img = case.image
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]  # drop alpha
        if img.ndim == 3 and img.shape[2] not in (1, 3):
            img = img[..., 0]  # multi-channel non-colour 2D (e.g. nnU-Net 2D): first channel
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        pix, intensity = model_pixels(img, case.modality, cfg.input_config, what=case.case_id, form=case.ct_form)
        spacing = case.geometry.spacing if case.spacing_known else None
        anns = []
        for lm, layer in zip(case.labels, infos, strict=True):
            insts, _ = instances_from_slice(
                lm.array,
                names=lm.names,
                per_value=lm.instances,
                min_pixels=cfg.min_pixels,
                min_area_mm2=cfg.min_area_mm2,
                pixel_area_mm2=spacing[0] * spacing[1] if spacing else None,
            )
            crowd = set(case.meta.get("crowd_values", ()))  # COCO iscrowd=1 regions stay crowd regions
            anns += [_annotation(i, layer[i.value], case.modality, None, i.value in crowd) for i in insts]
        stem = key.split("/")[-1]
        write_png(self.out / "images" / key / f"{stem}.png", pix, compress_level=PNG_LEVEL)
        return [
            {
                **_image_fields(case, f"{key}/{stem}.png", pix, absent),
                "slice_axis": None,
                "slice_index": None,
                "slice_plane": "2d",
                "channel": None,
                "pixel_spacing": [float(s) for s in spacing] if spacing else None,
                "negative": not anns,
                "intensity": intensity,
                "display_window": None,
                "pixel_to_voxel": None,
                "pixel_to_world": None,
                "annotations": anns,
            }
        ]
