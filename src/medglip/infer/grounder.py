"""``Grounder``: the Python entry point for phrase grounding with a trained checkpoint.

>>> g = Grounder.from_pretrained("RUN")                                    # doctest: +SKIP
>>> res = g.ground("scan.dcm", ["brain tumor", "left kidney"], masks=True)  # doctest: +SKIP
>>> res["brain tumor"].boxes, res["brain tumor"].scores, res["brain tumor"].masks  # doctest: +SKIP
>>> vol = g.ground_volume("ct.nii.gz", ["liver"])                           # doctest: +SKIP
>>> vol.objects[0].voxel_box, vol.objects[0].world_box                      # doctest: +SKIP

Pipeline per call: inputs → 8-bit display images (:mod:`.preprocess`) → letterboxed model inputs
(``medglip.model.prepare_image``) → modality (caller > DICOM metadata > the model's classifier) →
model with cached text features (one entry per phrase tuple, LRU) → boxes mapped back to original
pixels, filtered (``score_threshold``, ``top_k``) → optional LiteMedSAM masks (:mod:`.medsam`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import MedglipError
from ..model import GroundingModel, TextFeatures, boxes_to_original, load_checkpoint, prepare_image
from ..model.prompt import Prompt, chunk_phrases, make_prompt
from .medsam import MedSAMRefiner
from .preprocess import DisplayImage, check_modality, load_volume, resolve_modality, to_display
from .results import GroundingResult, PhraseGrounding
from .volume import VolumeGroundingResult
from .volume import ground_volume as _ground_volume

log = logging.getLogger(__name__)


@dataclass
class _Chunk:
    """One prompt of a phrase list, the phrase indices it holds, and its encoded text (batch 1)."""

    prompt: Prompt
    indices: tuple[int, ...]
    features: TextFeatures


def _clean_phrases(phrases: Any) -> tuple[str, ...]:
    if isinstance(phrases, str):
        phrases = [phrases]
    try:
        items = list(phrases)
    except TypeError:
        raise MedglipError(f"phrases must be a list of strings, got {type(phrases).__name__}") from None
    if not items:
        raise MedglipError("no phrases given: pass at least one phrase, e.g. ['brain tumor']")
    out = []
    for p in items:
        if not isinstance(p, str):
            raise MedglipError(f"phrase {p!r} is not a string")
        c = " ".join(p.split()).strip().rstrip(".").strip()
        if not c:
            raise MedglipError(f"empty phrase {p!r} in {items!r}")
        out.append(c)
    return tuple(out)


def _trained_phrases(run_dir: Path) -> tuple[str, ...]:
    """The training phrases ``medglip train`` wrote to ``RUN/categories.json`` (none for bare checkpoints)."""
    import json

    path = run_dir / "categories.json"
    try:
        phrases = json.loads(path.read_text()).get("phrases", [])
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(p for p in phrases if isinstance(p, str) and p.strip())


class Grounder:
    """Ground phrases in 2D images and 3D volumes with a :class:`~medglip.model.GroundingModel`.

    Args:
        model: the grounding model (put in eval mode).
        device: where the model runs.
        refiner (keyword-only): ``"medsam"`` (LiteMedSAM, built on first use), a ready object with
            ``refine(image, boxes) -> masks``, or None (then ``masks=True`` is an error).
        cache_size: prompts (phrase tuples) whose text features are kept (LRU).
        batch_size: images per forward pass.
        ct_window: CT window for non-8-bit CT input (name or ``(low, high)`` HU); soft tissue default.
    """

    def __init__(self, model: GroundingModel, *, device: str | torch.device = "cpu",
                 refiner: str | Any | None = "medsam", cache_size: int = 64, batch_size: int = 8,
                 ct_window: str | tuple[float, float] | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        if isinstance(refiner, str) and refiner != "medsam":
            raise MedglipError(f"unknown refiner {refiner!r}: use 'medsam' or None")
        self._refiner_spec = refiner
        self._refiner: Any | None = None if isinstance(refiner, str) else refiner
        self.cache_size = int(cache_size)
        self.batch_size = max(1, int(batch_size))
        self.ct_window = ct_window
        self._cache: OrderedDict[tuple[str, ...], list[_Chunk]] = OrderedDict()
        #: the phrases the checkpoint was trained on (RUN/categories.json), the default of reports
        self.known_phrases: tuple[str, ...] = ()
        self.cache_hits = 0
        self.cache_misses = 0

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str | torch.device = "cpu",
                        refiner: str | Any | None = "medsam", **kwargs: Any) -> "Grounder":
        """Load ``RUN/`` (``model.safetensors`` + ``config.json`` + ``text_encoder/``); no hub, no pickle."""
        try:
            model = load_checkpoint(run_dir, device=device)
        except FileNotFoundError as e:
            raise MedglipError(f"cannot load checkpoint {run_dir}: {e}") from None
        g = cls(model, device=device, refiner=refiner, **kwargs)
        g.known_phrases = _trained_phrases(Path(run_dir))
        return g

    # ------------------------------------------------------------------------------ text cache
    def _chunks(self, phrases: tuple[str, ...]) -> list[_Chunk]:
        """Encoded prompts of ``phrases`` (from the LRU cache when seen before)."""
        if phrases in self._cache:
            self._cache.move_to_end(phrases)
            self.cache_hits += 1
            return self._cache[phrases]
        self.cache_misses += 1
        tok, max_len = self.model.tokenizer, self.config.max_text_len
        chunks = []
        with torch.no_grad():
            for group in chunk_phrases(phrases, tok, max_len):
                try:
                    prompt = make_prompt([phrases[i] for i in group], tok, max_len)
                except ValueError as e:  # e.g. a phrase of characters the tokenizer only knows as [UNK]
                    raise MedglipError(f"the text encoder cannot read these phrases: {e}; use words "
                                       "(e.g. 'liver tumor')") from None
                chunks.append(_Chunk(prompt, tuple(group), self.model.encode_text([prompt]).detach()))
        self._cache[phrases] = chunks
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return chunks

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------------------ refiner
    @property
    def refiner(self) -> Any:
        """The mask refiner (LiteMedSAM is loaded on first use)."""
        if self._refiner is None:
            if self._refiner_spec is None:
                raise MedglipError("masks=True needs a mask refiner: create the Grounder with refiner='medsam'")
            self._refiner = MedSAMRefiner(device=self.device)
        return self._refiner

    # ------------------------------------------------------------------------------ 2D
    def ground(self, image: Any, phrases: Sequence[str] | str, *, modality: str | None = None,
               masks: bool = False, score_threshold: float | None = None, top_k: int | None = None
               ) -> GroundingResult | list[GroundingResult]:
        """Ground ``phrases`` in one image or a list of images.

        Args:
            image: numpy array (H, W[, 3]), PIL image, or path (PNG / JPEG / TIFF / 2D DICOM), or a
                list of them (batched; a list of results is returned).
            phrases: the phrases to find, e.g. ``["brain tumor", "left kidney"]``.
            modality: CT / MR / XR / US / ENDO / DERM / PATH (or an alias); default: the DICOM
                Modality tag, else the model's modality classifier.
            masks: also return a mask per box (LiteMedSAM box → mask refinement).
            score_threshold: drop boxes scoring below this (the model already drops those below
                ``config.score_threshold``).
            top_k: keep at most this many boxes per phrase.

        Returns:
            :class:`GroundingResult` (or a list): per phrase ``boxes`` (K, 4) xyxy in original
            pixels, ``scores`` (K,), ``masks`` (K, H, W) bool or None.

        Raises:
            MedglipError: no / empty phrases, unknown modality, a 3D input (use :meth:`ground_volume`),
                unreadable file, masks without a refiner.
        """
        batched = isinstance(image, (list, tuple))
        items = list(image) if batched else [image]
        if batched and not items:
            return []
        names = _clean_phrases(phrases)
        caller = self._check_modality(modality)
        displays = [to_display(x, modality=caller, window=self.ct_window) for x in items]
        results = self._ground_displays(displays, names, caller, masks=masks,
                                        score_threshold=score_threshold, top_k=top_k)
        return results if batched else results[0]

    def _check_modality(self, modality: str | None) -> str | None:
        code = check_modality(modality)
        if code is not None and code not in self.config.modalities:
            raise MedglipError(f"modality {code!r} is not one this model knows ({', '.join(self.config.modalities)})")
        return code

    @torch.no_grad()
    def _classify(self, tensors: torch.Tensor) -> list[str]:
        idx = self.model.classify_modality(tensors.to(self.device)).argmax(1).tolist()
        return [self.config.modalities[i] for i in idx]

    @torch.no_grad()
    def _ground_displays(self, displays: list[DisplayImage], phrases: tuple[str, ...], caller: str | None, *,
                         masks: bool = False, score_threshold: float | None = None, top_k: int | None = None
                         ) -> list[GroundingResult]:
        chunks = self._chunks(phrases)
        out: list[GroundingResult] = []
        for s in range(0, len(displays), self.batch_size):
            batch = displays[s: s + self.batch_size]
            prepared = [prepare_image(d.pixels, self.config.image_size) for d in batch]
            images = torch.stack([t for t, _ in prepared]).to(self.device)
            resolved: list[tuple[str, str] | None] = []
            for d in batch:
                try:
                    resolved.append(resolve_modality(caller, d.modality, None))
                except MedglipError:
                    resolved.append(None)  # decided by the classifier below
            need = [i for i, r in enumerate(resolved) if r is None]
            if need:
                for i, code in zip(need, self._classify(images[need])):
                    resolved[i] = (code, "classifier")
            for i, r in enumerate(resolved):
                if r[0] not in self.config.modalities:
                    raise MedglipError(f"{batch[i].source}: modality {r[0]} ({r[1]}) is not one this model knows "
                                       f"({', '.join(self.config.modalities)}); pass modality=...")
            mod = torch.tensor([self.config.modalities.index(r[0]) for r in resolved], device=self.device)
            per_image: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in batch]
            for ch in chunks:
                b = len(batch)
                tf = TextFeatures(hidden=ch.features.hidden.expand(b, -1, -1), mask=ch.features.mask.expand(b, -1),
                                  phrase_token_masks=[ch.features.phrase_token_masks[0]] * b)
                dets = self.model(images, mod, None, text_features=tf)
                gidx = torch.tensor(ch.indices, dtype=torch.long)
                for i, det in enumerate(dets):
                    boxes = boxes_to_original(det["boxes"].float().cpu(), prepared[i][1])
                    per_image[i].append((boxes.numpy(), det["scores"].float().cpu().numpy(),
                                         gidx[det["phrase_ids"].cpu()].numpy()))
            for i, d in enumerate(batch):
                out.append(self._collect(d, phrases, per_image[i], resolved[i], masks=masks,
                                         score_threshold=score_threshold, top_k=top_k))
        return out

    def _collect(self, d: DisplayImage, phrases: tuple[str, ...], dets: list, modality: tuple[str, str], *,
                 masks: bool, score_threshold: float | None, top_k: int | None) -> GroundingResult:
        boxes = np.concatenate([b for b, _, _ in dets]).reshape(-1, 4) if dets else np.zeros((0, 4), np.float32)
        scores = np.concatenate([s for _, s, _ in dets]) if dets else np.zeros(0, np.float32)
        pids = np.concatenate([p for _, _, p in dets]) if dets else np.zeros(0, np.int64)
        h, w = d.size
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # clipped to nothing → dropped
        if score_threshold is not None:
            valid &= scores >= float(score_threshold)
        groundings = []
        for p, phrase in enumerate(phrases):
            sel = np.nonzero(valid & (pids == p))[0]
            sel = sel[np.argsort(-scores[sel], kind="stable")]
            if top_k is not None:
                sel = sel[: max(0, int(top_k))]
            groundings.append(PhraseGrounding(phrase, boxes[sel].astype(np.float32), scores[sel].astype(np.float32)))
        if masks:
            all_boxes = np.concatenate([g.boxes for g in groundings]).reshape(-1, 4)
            m = self.refiner.refine(d.pixels, all_boxes) if len(all_boxes) else np.zeros((0, h, w), bool)
            start = 0
            for g in groundings:
                g.masks = m[start: start + len(g)]
                start += len(g)
        extra = {"intensity": d.intensity}
        extra.update({k: d.meta[k] for k in ("plane", "pixel_to_voxel", "pixel_to_world", "pixel_spacing")
                      if k in d.meta})
        return GroundingResult(phrases, groundings, (h, w), modality[0], modality[1], d.source, extra)

    # ------------------------------------------------------------------------------ 3D
    def ground_volume(self, path_or_array: Any, phrases: Sequence[str] | str, *, geometry: Any = None,
                      modality: str | None = None, plane: str = "axial", masks: bool = False,
                      score_threshold: float | None = None, link_iou: float = 0.3) -> VolumeGroundingResult:
        """Ground ``phrases`` slice by slice in a volume and link the boxes into 3D objects.

        Args:
            path_or_array: NIfTI / NRRD / MetaImage / DICOM series folder or multi-frame file, or an
                ``(i, j, k)`` array (with ``geometry``, a :class:`medglip.case.Geometry`).
            phrases, modality, masks, score_threshold: as in :meth:`ground`.
            plane: ``axial`` / ``coronal`` / ``sagittal`` display slices.
            link_iou: IoU needed to link boxes of neighbouring slices (one missing slice is bridged).

        Returns:
            :class:`VolumeGroundingResult`: per object phrase, score (mean of its slice scores),
            slice range, ``voxel_box`` / ``world_box`` (LPS mm) and the per-slice boxes.
        """
        names = _clean_phrases(phrases)
        caller = self._check_modality(modality)
        vol = load_volume(path_or_array, geometry)
        if plane not in ("axial", "coronal", "sagittal"):
            raise MedglipError(f"unknown plane {plane!r}; expected axial, coronal or sagittal")
        code, source = resolve_modality(caller, vol.modality, lambda: self._classify_volume(vol, plane))
        if code not in self.config.modalities:
            raise MedglipError(f"modality {code} ({source}) is not one this model knows; pass modality=...")

        def detect(slices: list[np.ndarray], _phrases: Sequence[str]) -> list[GroundingResult]:
            ds = [DisplayImage(s, code, source=f"{vol.source}[{k}]") for k, s in enumerate(slices)]
            return self._ground_displays(ds, names, code, masks=masks, score_threshold=score_threshold)

        res = _ground_volume(detect, vol, names, modality=code, modality_source=source, plane=plane,
                             window=self.ct_window, link_iou=link_iou)
        return res

    def _classify_volume(self, vol: Any, plane: str) -> str:
        """Majority vote of the modality classifier over three central slices."""
        from .volume import volume_slices
        _, slices, _ = volume_slices(vol, None, plane=plane, window=self.ct_window)
        n = len(slices)
        picks = sorted({n // 2, max(0, n // 2 - n // 4), min(n - 1, n // 2 + n // 4)})
        t = torch.stack([prepare_image(slices[k], self.config.image_size)[0] for k in picks])
        votes = self._classify(t)
        return max(set(votes), key=votes.count)
