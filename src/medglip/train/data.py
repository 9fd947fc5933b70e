"""The grounding dataset of a ``medglip build`` output, its training augmentation, and the collate function.

One item is one 2D image with a prompt made of the image's positive phrases and sampled *negative*
phrases, in a shuffled order, so that the model learns that an absent finding has no box. Images
without any annotation (``negative`` slices) get a prompt of absent phrases and an empty target.

Negatives are only phrases KNOWN to be absent (partial labels: a source that labels only kidneys
says nothing about the liver on its images):

- phrases the image's own case annotates (on other slices) but this image does not show, and the
  findings its source declares absent (``absent`` of an image record: a healthy template);
- phrases of a body region the case cannot show (a brain phrase on a chest CT): the case's regions
  are those of its annotations' phrases and of its images' ``absent`` phrases; the candidates are
  the dataset's phrases and, with ``negative_vocabulary="ontology"``, every fine term of the
  ontology (GLIP fills its prompts with many negatives; evaluation asks absent phrases too).
  Findings of the whole body ("tumor", "lymph node") are never known absent.

Phrases related to a present one are never negatives: its ancestors and descendants in the
hierarchy, and its laterality variants ("right kidney" and "kidney" next to "left kidney").

Randomness (negatives, shuffling, flip, scale jitter) is a pure function of ``(seed, epoch, index)``,
so an item is the same in every worker process and after resuming a run.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..core.masks import decode_segmentation
from ..core.pipeline import InputConfig, to_tensor
from ..errors import MedglipError
from ..ontology import Ontology, load_ontology
from .augment import AugmentConfig, LesionBank, elastic, jitter_intensity, paste_lesions, zoom

log = logging.getLogger(__name__)

#: Turns phrases into prompts (chunked when too long): ``build_prompts`` bound to a tokenizer and length.
PromptBuilder = Callable[[Sequence[str]], list]


class LateralityFlipper:
    """Left/right phrase swap for horizontal flips, from the ontology's laterality links.

    ``can_flip(phrase)`` is False for a known term whose mirror term does not exist ("right middle
    lobe"): images holding such a phrase are never flipped.
    """

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology

    def flip(self, phrase: str) -> str:
        """The phrase after a horizontal image flip ("left kidney" -> "right kidney")."""
        return self.ontology.flip_laterality(phrase)

    def can_flip(self, phrase: str) -> bool:
        """Whether an image holding ``phrase`` may be flipped."""
        return bool(self.ontology.can_flip(phrase))


def _related(phrase_info: dict[str, dict[str, Any]], present: set[str]) -> set[str]:
    """Phrases that must not be negatives: the present ones, their ancestors and descendants, and
    the phrases of the same structure on another side (or none)."""
    out = set(present)
    labels = {phrase_info.get(p, {}).get("label") for p in present} - {None}
    for p in present:
        out.update(phrase_info.get(p, {}).get("hierarchy", []) or [])
    for name, info in phrase_info.items():
        if present.intersection(info.get("hierarchy", []) or []) or info.get("label") in labels:
            out.add(name)
    return out


#: Regions whose findings may be anywhere: their phrases are never known to be absent.
ANYWHERE = "whole body"


class GroundingDataset(torch.utils.data.Dataset):
    """Images and grounding targets of one split of a ``medglip build`` output.

    Args:
        dataset_dir: the build output folder (holds ``annotations/<split>.json`` and ``images/``).
        split: ``train``, ``val`` or ``test``.
        image_size: the model's square input side ``S`` (letterbox, see ``to_tensor``).
        prompt_builder: phrases -> list of prompts (``build_prompts`` bound to the model's tokenizer
            and maximum text length); chunks beyond the first are avoided by dropping negatives.
        modalities: the model's modality names; an image's modality becomes an index into it.
        train: apply augmentation (elastic, copy-paste, intensity, zoom, flip, scale jitter).
        negatives_per_image: how many known-absent phrases to add to each prompt (fewer when there
            are fewer; dropped when the prompt would not fit). Negative images get at least one.
        negative_vocabulary: ``dataset`` (negatives among the dataset's phrases) or ``ontology``
            (also every fine term of the ontology, for the regions a case cannot show).
        augment: augmentation settings (used only when ``train``).
        seed: base seed of all sampling.
        input_config: the model's input pipeline; the dataset's images must have been built with
            it (its ``build_config.json`` is checked), since they are the model's pixels.
        ontology: the ontology of laterality flips (default: the shipped one).
        with_masks: targets also carry the annotations' masks (for the mask head's loss), decoded
            from their RLE ``segmentation`` and moved by every augmentation exactly like the boxes.

    Each item is a dict: ``image`` FloatTensor (3, S, S); ``modality`` int; ``prompt`` (a Prompt);
    ``target`` {"boxes": FloatTensor (N, 4) xyxy input pixels, "phrase_ids": LongTensor (N,)} (with
    ``with_masks`` also "masks": BoolTensor (N, S, S) and "mask_valid": BoolTensor (N,), False for an
    annotation without a segmentation);
    ``image_id`` int; ``meta`` {"scale", "orig_size", "offset" (x, y) input pixels, "flipped"}.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        split: str = "train",
        *,
        image_size: int,
        prompt_builder: PromptBuilder,
        modalities: Sequence[str],
        train: bool = False,
        negatives_per_image: int = 4,
        augment: AugmentConfig = AugmentConfig(),
        seed: int = 0,
        input_config: InputConfig | None = None,
        ontology: Ontology | None = None,
        negative_vocabulary: str = "dataset",
        with_masks: bool = False,
    ) -> None:
        self.root = Path(dataset_dir)
        if input_config is not None:
            check_input_config(self.root, input_config)
        self.split = split
        self.image_size = int(image_size)
        self.prompt_builder = prompt_builder
        self.modalities = tuple(modalities)
        self.train = train
        self.negatives_per_image = int(negatives_per_image)
        self.augment = augment
        self.seed = int(seed)
        self.with_masks = bool(with_masks)
        self.epoch = 0
        ann_path = self.root / "annotations" / f"{split}.json"
        if not ann_path.is_file():
            raise MedglipError(f"{ann_path}: no such annotation file (is {self.root} a `medglip build` output?)")
        coco = json.loads(ann_path.read_text())
        self.categories: list[dict[str, Any]] = list(coco.get("categories", []))
        self.images: list[dict[str, Any]] = sorted(coco.get("images", []), key=lambda im: im["id"])
        if not self.images:
            raise MedglipError(f"{ann_path}: the {split!r} split has no images")
        self._anns: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in coco.get("annotations", []):
            self._anns[ann["image_id"]].append(ann)
        unknown = sorted({im.get("modality") for im in self.images} - set(self.modalities), key=str)
        if unknown:
            raise MedglipError(f"{ann_path}: modalities {unknown} are not among the model's {list(self.modalities)}")
        if negative_vocabulary not in ("dataset", "ontology"):
            raise MedglipError(f"negative_vocabulary must be 'dataset' or 'ontology', not {negative_vocabulary!r}")
        onto = ontology or load_ontology()
        self.phrase_info: dict[str, dict[str, Any]] = {c["name"]: dict(c) for c in self.categories}
        by_mod: dict[str, set[str]] = defaultdict(set)
        self.case_phrases: dict[tuple, set[str]] = defaultdict(set)
        for im in self.images:
            for ann in self._anns.get(im["id"], []):
                self.phrase_info.setdefault(
                    ann["phrase"],
                    {
                        "name": ann["phrase"],
                        "hierarchy": ann.get("hierarchy"),
                        "region": ann.get("region"),
                        "label": ann.get("label"),
                    },
                )
                by_mod[im["modality"]].add(ann["phrase"])
                self.case_phrases[_case(im)].add(ann["phrase"])
        #: each lesion phrase's coarser lesion terms (hierarchical phrases), when they are trained
        self.coarser: dict[str, tuple[str, ...]] = {}
        if train and augment.coarse_phrase_prob > 0:
            self.coarser = coarser_lesion_terms(onto, self.phrase_info)
            for mod in list(by_mod):
                by_mod[mod] |= {c for p in by_mod[mod] for c in self.coarser.get(p, ())}
            for coarse in self.coarser.values():
                for c in coarse:
                    r = onto.resolve(c)
                    self.phrase_info.setdefault(
                        c, {"name": c, "hierarchy": list(r.hierarchy), "region": r.region, "label": r.label}
                    )
        self.phrases: tuple[str, ...] = tuple(sorted(self.phrase_info))
        if not self.phrases:
            raise MedglipError(f"{ann_path}: no phrases (no categories and no annotations) to build prompts from")
        self.phrases_by_modality: dict[str, tuple[str, ...]] = {m: tuple(sorted(p)) for m, p in by_mod.items()}
        self.vocabulary: dict[str, dict[str, Any]] = dict(self.phrase_info)
        if negative_vocabulary == "ontology":
            for t in onto.fine_terms:
                if t.name not in self.vocabulary and not t.generic:
                    r = onto.resolve(t.name)
                    self.vocabulary[t.name] = {
                        "name": t.name,
                        "hierarchy": list(r.hierarchy),
                        "region": r.region,
                        "label": r.label,
                    }
        # the body regions a case shows: those of its annotated phrases and of the phrases known to be
        # absent from its images (a tumour-free brain slice shows the head, though nothing is annotated)
        shown: dict[tuple, set[str]] = defaultdict(set, {case: set(ps) for case, ps in self.case_phrases.items()})
        for im in self.images:
            shown[_case(im)] |= {p for p in im.get("absent") or () if p in self.phrase_info}
        self.case_regions: dict[tuple, set[str]] = {
            case: {g for g in (self.phrase_info[p].get("region") for p in ps) if g not in (None, ANYWHERE)}
            for case, ps in shown.items()
        }
        self.flipper = LateralityFlipper(onto)
        self.ontology = onto
        self._bank: LesionBank | None = None
        #: the sampling weight of each source a recipe build recorded (``info.sources``)
        self.source_weights: dict[str, float] = {
            str(s): float(v.get("weight", 1.0))
            for s, v in ((coco.get("info") or {}).get("sources") or {}).items()
            if isinstance(v, dict)
        }

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's random draws (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    # --------------------------------------------------------------------------------------------
    def load_image(self, index: int) -> np.ndarray:
        """The image as uint8 (H, W) grey or (H, W, 3) colour."""
        path = self.root / "images" / self.images[index]["file_name"]
        with Image.open(path) as im:
            pic = (
                im
                if im.mode in ("L", "RGB")
                else im.convert("RGB" if im.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA") else "L")
            )
            return np.asarray(pic, dtype=np.uint8).copy()

    def known_absent(self, info: dict[str, Any], present: set[str]) -> tuple[list[str], list[str]]:
        """The phrases known to be absent from image ``info`` (see the module docstring): those of its
        own case (sorted) and those of regions the case cannot show (sorted)."""
        case = _case(info)
        related = _related(self.vocabulary, present)
        own = sorted((self.case_phrases.get(case, set()) | set(info.get("absent") or ())) - related)
        regions = self.case_regions.get(case, set())
        if not regions:  # nothing says which body region this case shows: no region negatives
            return own, []
        other = sorted(
            p
            for p, v in self.vocabulary.items()
            if v.get("region") not in regions
            and v.get("region") not in (None, ANYWHERE)
            and p not in related
            and p not in own
        )
        return own, other

    def _sample_negatives(self, rng: np.random.Generator, info: dict[str, Any], present: set[str], n: int) -> list[str]:
        """Up to ``n`` known-absent phrases: the case's own first (they are the hard ones), then
        phrases of other regions, preferring the dataset's phrases over the ontology's."""
        if n <= 0:
            return []
        own, other = self.known_absent(info, present)
        picked = [own[i] for i in rng.permutation(len(own))[:n]]
        in_data = [p for p in other if p in self.phrase_info]
        rest = [p for p in other if p not in self.phrase_info]
        for pool in (in_data, rest):
            if len(picked) < n and pool:
                picked += [pool[i] for i in rng.permutation(len(pool))[: n - len(picked)]]
        return picked

    # ------------------------------------------------------------------------------ copy-paste
    def _lesion_bank(self) -> LesionBank:
        if self._bank is None:
            region_of = {p: v.get("region") for p, v in self.phrase_info.items()}
            parent_of = {
                p: self.ontology.resolve(p).parent if self.ontology.resolve(p).mapped else None
                for p in self.phrase_info
            }
            self._bank = LesionBank.collect(
                self.images, self._anns, self.load_image, region_of=region_of, parent_of=parent_of
            )
            log.info("copy-paste bank: %d lesions", len(self._bank.lesions))
        return self._bank

    def _organ_masks(
        self, anns: list[dict[str, Any]], h: int, w: int, masks: list[np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Masks of the non-lesion structures annotated on an image, by phrase and by side-less label
        (``masks``: the annotations' masks already at hand, e.g. deformed; else decoded)."""
        out: dict[str, np.ndarray] = {}
        for i, a in enumerate(anns):
            if a.get("level") == "lesion" or not a.get("segmentation"):
                continue
            m = masks[i] if masks is not None else decode_segmentation(a["segmentation"], h, w)
            if m is None:
                continue
            for key in {a["phrase"], a.get("label") or a["phrase"]}:
                out[key] = out[key] | m if key in out else m
        return out

    def _prompt(self, phrases: list[str], positives: set[str]) -> tuple[Any, list[str]]:
        """One prompt for ``phrases`` and the phrases it holds, in order (negatives are dropped until
        the prompt fits in one chunk; if the positives alone do not fit, the first chunk is kept)."""
        phrases = list(phrases)
        while True:
            prompts = self.prompt_builder(phrases)
            if len(prompts) == 1:
                return prompts[0], phrases
            negatives = [i for i, p in enumerate(phrases) if p not in positives]
            if not negatives:
                log.debug("prompt of %d positive phrases does not fit; keeping its first chunk", len(phrases))
                return prompts[0], phrases[: len(prompts[0].phrases)]
            del phrases[negatives[-1]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        info = self.images[index]
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, index])
        img = self.load_image(index)
        h, w = img.shape[:2]
        anns = [a for a in self._anns.get(info["id"], []) if not a.get("iscrowd", 0)]
        boxes = np.array(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
            dtype=np.float64,
        ).reshape(-1, 4)
        phrases_of_boxes = [a["phrase"] for a in anns]
        aug = self.augment
        deform = self.train and aug.elastic_prob > 0 and rng.random() < aug.elastic_prob
        decoded: list[np.ndarray | None] | None = None  # the annotations' masks (None: a box without one)
        if self.with_masks or deform:
            decoded = [decode_segmentation(a.get("segmentation"), h, w) for a in anns]
        if deform:
            assert decoded is not None  # decoded above for the deformation
            img, boxes, decoded, kept = elastic(
                img, boxes, decoded, rng, displacement=aug.elastic_displacement, sigma=aug.elastic_sigma
            )
            anns = [anns[i] for i in kept]
            phrases_of_boxes = [phrases_of_boxes[i] for i in kept]
        masks: np.ndarray | None = None
        mask_valid: list[bool] = []
        if self.with_masks:
            assert decoded is not None  # decoded above for the masks
            mask_valid = [m is not None for m in decoded]
            masks = (
                np.stack([m if m is not None else np.zeros((h, w), bool) for m in decoded])
                if decoded
                else np.zeros((0, h, w), bool)
            )
        if self.train and aug.copy_paste_prob > 0 and rng.random() < aug.copy_paste_prob:
            lesions = [
                les
                for les in self._lesion_bank().candidates(info["modality"], self.case_regions.get(_case(info), set()))
                if les.case != _case(info) or rng.random() < 0.5
            ]
            pasted = paste_lesions(
                img,
                boxes,
                phrases_of_boxes,
                lesions,
                rng,
                aug,
                organ_masks=self._organ_masks(anns, h, w, decoded),
                masks=masks,
            )
            img, boxes, phrases_of_boxes = pasted[:3]
            if masks is not None:
                masks = pasted[3]
                mask_valid = mask_valid + [True] * (len(masks) - len(mask_valid))
        if self.train and aug.intensity_prob > 0 and rng.random() < aug.intensity_prob:
            img = jitter_intensity(img, rng)
        if self.train and aug.zoom_prob > 0 and rng.random() < aug.zoom_prob:
            if masks is not None:
                img, boxes, masks = zoom(img, boxes, rng, aug.max_zoom, masks=masks)
            else:
                img, boxes = zoom(img, boxes, rng, aug.max_zoom)
            h, w = img.shape[:2]

        flipped = False
        if (
            self.train
            and rng.random() < self.augment.flip_prob
            and info.get("slice_plane") != "sagittal"
            and all(self.flipper.can_flip(p) for p in phrases_of_boxes)
        ):
            flipped = True
            img = np.ascontiguousarray(img[:, ::-1])
            boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
            phrases_of_boxes = [self.flipper.flip(p) for p in phrases_of_boxes]
            if masks is not None:
                masks = np.ascontiguousarray(masks[:, :, ::-1])

        offset = (0, 0)
        if self.train and self.augment.min_scale < 1.0:
            fill = rng.uniform(self.augment.min_scale, 1.0)
            ch, cw = math.ceil(h / fill), math.ceil(w / fill)
            oy, ox = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))
            canvas = np.zeros((ch, cw) + img.shape[2:], dtype=np.uint8)
            canvas[oy : oy + h, ox : ox + w] = img
            img, boxes = canvas, boxes + np.array([ox, oy, ox, oy], dtype=np.float64)
            offset = (ox, oy)
            if masks is not None:
                big = np.zeros((len(masks), ch, cw), bool)
                big[:, oy : oy + h, ox : ox + w] = masks
                masks = big

        tensor, meta = to_tensor(img, self.image_size)
        scale = float(meta["scale"])

        if self.coarser and any(p in self.coarser for p in phrases_of_boxes):
            asked = {
                p: (
                    str(rng.choice(self.coarser[p]))
                    if p in self.coarser and rng.random() < self.augment.coarse_phrase_prob
                    else p
                )
                for p in dict.fromkeys(phrases_of_boxes)
            }
            phrases_of_boxes = [asked[p] for p in phrases_of_boxes]
        positives = list(dict.fromkeys(phrases_of_boxes))
        n_neg = max(self.negatives_per_image, 0 if positives else 1)
        negatives = self._sample_negatives(rng, info, set(positives), n_neg)
        phrases = positives + negatives
        phrases = [phrases[i] for i in rng.permutation(len(phrases))] if self.train else phrases
        prompt, used = self._prompt(phrases, set(positives))
        index_of = {p: i for i, p in enumerate(used)}
        keep = [i for i, p in enumerate(phrases_of_boxes) if p in index_of]
        target = {
            "boxes": torch.as_tensor(boxes[keep] * scale, dtype=torch.float32).reshape(-1, 4),
            "phrase_ids": torch.as_tensor([index_of[phrases_of_boxes[i]] for i in keep], dtype=torch.long),
        }
        if masks is not None:
            target["masks"] = letterbox_masks(masks[keep], self.image_size)
            target["mask_valid"] = torch.as_tensor([bool(mask_valid[i]) for i in keep], dtype=torch.bool)
        return {
            "image": tensor,
            "modality": self.modalities.index(info["modality"]),
            "prompt": prompt,
            "target": target,
            "image_id": int(info["id"]),
            "meta": {
                "scale": scale,
                "orig_size": (h, w),
                "offset": (offset[0] * scale, offset[1] * scale),
                "flipped": flipped,
            },
        }


def letterbox_masks(masks: np.ndarray, size: int) -> torch.Tensor:
    """``(N, H, W)`` bool masks → ``(N, S, S)`` bool in input pixels, exactly as
    :func:`medglip.core.pipeline.to_tensor` letterboxes the image (resize so the long side is ``S``,
    pad bottom / right); resized bilinearly (area-averaged when shrinking) and cut at 0.5."""
    n, h, w = masks.shape
    out = torch.zeros(n, size, size, dtype=torch.bool)
    if n == 0:
        return out
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
    if (nh, nw) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
    out[:, :nh, :nw] = x[:, 0] >= 0.5
    return out


def coarser_lesion_terms(onto: Ontology, phrase_info: dict[str, dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Each lesion phrase's coarser lesion terms, finest first ("lower-grade glioma" → ("glioma",
    "brain tumor")): the ancestors in its hierarchy that are lesions themselves."""
    out: dict[str, tuple[str, ...]] = {}
    for phrase in phrase_info:
        r = onto.resolve(phrase)
        if not r.mapped or r.level != "lesion":
            continue
        coarse = tuple(
            a
            for a in reversed(r.hierarchy[:-1])
            if onto.resolve(a).mapped and onto.resolve(a).level == "lesion" and a != phrase
        )
        if coarse:
            out[phrase] = coarse
    return out


def _case(info: dict[str, Any]) -> tuple:
    """The case an image record belongs to."""
    return (info.get("source"), info.get("case_id"))


def check_input_config(dataset_dir: Path, expected: InputConfig) -> None:
    """Refuse a dataset whose images were not made with the model's input pipeline ``expected``.

    Raises:
        MedglipError: the dataset predates the input pipeline, or used other CT windows / percentiles.
    """
    from ..dataset.config import BuildConfig

    path = Path(dataset_dir) / "build_config.json"
    if not path.is_file():
        log.warning(
            "%s has no build_config.json: assuming its images were made with the model's input pipeline", dataset_dir
        )
        return
    raw = json.loads(path.read_text())
    configs = list(raw["sources"].values()) if raw.get("kind") == "recipe" else [raw]  # a recipe: per source
    for cfg in configs:
        built = BuildConfig.from_json(cfg).input_config
        if built != expected:
            raise MedglipError(
                f"{dataset_dir} was built with input {built.to_json()} but the model expects "
                f"{expected.to_json()}: rebuild it with the model's CT windows / percentiles / "
                "2.5D context (medglip build --ct-windows ... --context-slices N) or train a "
                "model with the dataset's (medglip train --context-slices N)"
            )


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: ``images`` (B, 3, S, S), ``modality`` LongTensor (B,), ``prompts`` list,
    ``targets`` list of dicts, ``image_ids`` list of int, ``metas`` list of dicts."""
    return {
        "images": torch.stack([it["image"] for it in items]),
        "modality": torch.as_tensor([it["modality"] for it in items], dtype=torch.long),
        "prompts": [it["prompt"] for it in items],
        "targets": [it["target"] for it in items],
        "image_ids": [it["image_id"] for it in items],
        "metas": [it["meta"] for it in items],
    }
