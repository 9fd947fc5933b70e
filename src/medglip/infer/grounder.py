"""``Grounder``: the Python entry point for phrase grounding with a trained checkpoint.

>>> g = Grounder.from_pretrained("RUN")                                     # doctest: +SKIP
>>> res = g.ground_one("scan.dcm", ["brain tumor", "left kidney"], masks=True)  # doctest: +SKIP
>>> res["brain tumor"].boxes, res["brain tumor"].scores, res.picture()           # doctest: +SKIP
>>> many = g.ground(["a.png", "b.png"], ["brain tumor"])                         # doctest: +SKIP
>>> vol = g.ground_volume("ct.nii.gz", ["liver"])                            # doctest: +SKIP
>>> vol.objects[0].voxel_box, vol.objects[0].world_box                       # doctest: +SKIP

Thresholds: by default (``score_threshold="calibrated"``) a phrase's boxes are kept from the
checkpoint's calibrated threshold of that phrase up (:meth:`ModelConfig.finding_threshold`, chosen
by leave-one-patient-out on the training patients; :data:`medglip.core.rules.FINDING_THRESHOLD`
for an uncalibrated checkpoint), so an absent finding returns nothing; evaluation asks for the
whole ranking with ``score_threshold=0.0``.

Pipeline per call: inputs read once (:mod:`.inputs`) → modality (caller > DICOM metadata > the
model's classifier) → model pixels and tensors (:mod:`medglip.core.pipeline`, configured by the
checkpoint) → images batched by modality, the image encoders and FPN run ONCE per image, fusion
and the head once per prompt chunk (text features cached per phrase tuple, LRU) → boxes mapped
back to original pixels, filtered (``score_threshold``, ``top_k``) → optional masks: from the
checkpoint's own mask head (``masks="head"``: per prompt chunk on the fused features, for the kept
boxes only, pasted into the original pixels) or from LiteMedSAM given the boxes (``masks="medsam"``);
``masks=True`` / ``"auto"``: the head when the checkpoint has one, else LiteMedSAM. ``masks`` is the one
setting that chooses; the constructor's ``refiner`` only supplies LiteMedSAM (or a stand-in, or none).
A list in, a list out (:meth:`Grounder.ground`; :meth:`Grounder.ground_one` for one image): every
result carries the pixels the model saw (``result.picture()``).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..core.orient import PLANES, plan_slices
from ..core.pipeline import boxes_to_original, model_pixels, picture, slice_pixels, to_tensor
from ..core.rules import FINDING_THRESHOLD, LINK_IOU
from ..core.text import clean_phrase, phrase_key
from ..errors import MedglipError
from ..model import GroundingModel, TextFeatures, load_checkpoint
from ..model.grounding import image_hw
from ..model.mask_head import paste_masks
from ..model.prompt import Prompt, chunk_phrases, make_prompt
from ..model.shipped import shipped_run, trained_on, trained_phrases
from .detections import Detections
from .inputs import (
    InputImage,
    Volume,
    check_modality,
    read_image_input,
    read_input,
    read_volume_input,
    resolve_modality,
)
from .masks import NO_HEAD, KeepBoxes, Masks, select_boxes
from .medsam import MedSAMRefiner
from .results import GroundingResult, PhraseGrounding
from .volume import VolumeGroundingResult
from .volume import ground_volume as ground_slices

log = logging.getLogger(__name__)

#: A score threshold: a number, ``"calibrated"`` (the checkpoint's, per phrase) or None (no filter).
Threshold = float | Literal["calibrated"] | None


@dataclass
class _Chunk:
    """One prompt of a phrase list, the phrase indices it holds, and its encoded text (batch 1)."""

    prompt: Prompt
    indices: tuple[int, ...]
    features: TextFeatures


@dataclass
class _Prepared:
    """One image ready for the model: its pixels, tensor, letterbox meta and modality."""

    pixels: np.ndarray
    intensity: dict[str, Any]
    tensor: torch.Tensor
    meta: dict[str, Any]
    modality: tuple[str, str]  # (code, where it came from)


def clean_phrases(phrases: Any) -> tuple[str, ...]:
    """The phrases of a call, cleaned (:func:`medglip.core.text.clean_phrase`); errors name the bad one."""
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
        c = clean_phrase(p)
        if not c:
            raise MedglipError(f"empty phrase {p!r} in {items!r}")
        out.append(c)
    return tuple(out)


def calibrated_threshold(grounder: Any, phrases: Any) -> float:
    """The lowest calibrated threshold of ``phrases`` (the grounder already applied each phrase's own),
    the project default without phrases."""
    return min((float(grounder.threshold_for(p)) for p in phrases), default=FINDING_THRESHOLD)


class Grounder:
    """Ground phrases in 2D images and 3D volumes with a :class:`~medglip.model.GroundingModel`.

    Args:
        model: the grounding model (put in eval mode).
        device: where the model runs.
        refiner (keyword-only): what ``masks="medsam"`` runs (it chooses nothing: the ``masks``
            argument of each call does): ``"medsam"`` / ``"auto"`` (default: LiteMedSAM, built on
            first use), a ready object with ``refine(image, boxes) -> masks``, or None (no LiteMedSAM:
            ``masks="medsam"``, and ``True`` on a checkpoint without a mask head, are errors). The old
            ``"head"`` is None with a DeprecationWarning.
        cache_size: prompts (phrase tuples) whose text features are kept (LRU).
        batch_size: images per forward pass.
        known_phrases: the phrases the model was trained on (reports look for these by default).
        trained_on: ``{modality: [phrase, ...]}`` the model was trained on (``RUN/categories.json``);
            results name what a call asks beyond it (:meth:`untrained`). Empty: not known, nothing named.
    """

    def __init__(
        self,
        model: GroundingModel,
        *,
        device: str | torch.device = "cpu",
        refiner: str | Any | None = "auto",
        cache_size: int = 64,
        batch_size: int = 8,
        known_phrases: Sequence[str] = (),
        trained_on: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.input_config = model.config.input_config
        if isinstance(refiner, str) and refiner not in ("auto", "head", "medsam"):
            raise MedglipError(f"unknown refiner {refiner!r}: use 'medsam', a refiner object or None")
        if refiner == "head":  # it used to choose masks; masks= of each call does now
            warnings.warn(
                "Grounder(refiner='head') is deprecated: pass refiner=None and masks='head' (or True) to ground",
                DeprecationWarning,
                stacklevel=2,
            )
            refiner = None
        self._medsam_allowed = refiner is not None
        self._refiner: Any | None = None if isinstance(refiner, str) else refiner
        self.cache_size = int(cache_size)
        self.batch_size = max(1, int(batch_size))
        self._cache: OrderedDict[tuple[str, ...], list[_Chunk]] = OrderedDict()
        #: the phrases the checkpoint was trained on (RUN/categories.json), the default of reports
        self.known_phrases: tuple[str, ...] = tuple(known_phrases)
        self.trained_on: dict[str, frozenset[str]] = {
            str(m): frozenset(phrase_key(p) for p in ps) for m, ps in (trained_on or {}).items()
        }
        self.cache_hits = 0
        self.cache_misses = 0

    @classmethod
    def from_pretrained(
        cls,
        run_dir: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        refiner: str | Any | None = "auto",
        **kwargs: Any,
    ) -> Grounder:
        """Load ``RUN/`` (``model.safetensors`` + ``config.json`` + ``text_encoder/``); no hub, no pickle.
        Without ``run_dir``: the model medglip ships (:mod:`medglip.model.shipped`)."""
        if run_dir is None:
            run_dir = shipped_run()
        try:
            model = load_checkpoint(run_dir, device=device)
        except FileNotFoundError as e:
            raise MedglipError(f"cannot load checkpoint {run_dir}: {e}") from None
        kwargs.setdefault("known_phrases", trained_phrases(run_dir))
        kwargs.setdefault("trained_on", trained_on(run_dir))
        return cls(model, device=device, refiner=refiner, **kwargs)

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
                    raise MedglipError(
                        f"the text encoder cannot read these phrases: {e}; use words (e.g. 'liver tumor')"
                    ) from None
                chunks.append(_Chunk(prompt, tuple(group), self.model.encode_text([prompt]).detach()))
        self._cache[phrases] = chunks
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return chunks

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------------------ masks
    @property
    def has_mask_head(self) -> bool:
        """Whether the checkpoint has its own mask head (``masks="head"``)."""
        return getattr(self.model, "mask_head", None) is not None

    @property
    def refiner(self) -> Any:
        """The box → mask refiner (LiteMedSAM is loaded on first use)."""
        if self._refiner is None:
            if not self._medsam_allowed:
                raise MedglipError(
                    "masks from LiteMedSAM need a mask refiner: this Grounder was created with "
                    "refiner=None (use refiner='medsam', or masks='head')"
                )
            self._refiner = MedSAMRefiner(device=self.device)
        return self._refiner

    def mask_source(self, masks: Masks) -> str | None:
        """Where a call's masks come from: None (no masks), ``"head"`` or ``"medsam"``.

        ``True`` / ``"auto"`` is the checkpoint's mask head when it has one, else LiteMedSAM: it
        depends on the checkpoint only, never on how the Grounder was created.

        Raises:
            MedglipError: an unknown value, ``"head"`` for a checkpoint without a mask head, or
                LiteMedSAM masks from a Grounder created with ``refiner=None``.
        """
        if masks is None or masks is False or masks == "none":
            return None
        if masks is True or masks == "auto":
            if self.has_mask_head:
                return "head"
            if not self._medsam_allowed:
                raise MedglipError(
                    "masks=True on a checkpoint without a mask head needs LiteMedSAM, and this "
                    "Grounder was created with refiner=None: " + NO_HEAD
                )
            return "medsam"
        if masks == "head":
            if not self.has_mask_head:
                raise MedglipError(NO_HEAD)
            return "head"
        if masks == "medsam":
            if not self._medsam_allowed:
                raise MedglipError(
                    "masks='medsam' needs LiteMedSAM: this Grounder was created with refiner=None "
                    "(use refiner='medsam', the default)"
                )
            return "medsam"
        raise MedglipError(f"masks must be true/false, 'auto', 'head', 'medsam' or 'none', not {masks!r}")

    # ------------------------------------------------------------------------------ 2D
    def ground_one(
        self,
        image: Any,
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Threshold = "calibrated",
        top_k: int | None = None,
        ct_window: Any = None,
    ) -> GroundingResult:
        """:meth:`ground` of ONE 2D image: its one result (arguments as there)."""
        if isinstance(image, (list, tuple)):
            raise MedglipError(
                f"ground_one takes one image, got a {type(image).__name__} of {len(image)}: "
                "use ground([...]) for several"
            )
        return self.ground(
            [image],
            phrases,
            modality=modality,
            masks=masks,
            score_threshold=score_threshold,
            top_k=top_k,
            ct_window=ct_window,
        )[0]

    def ground(
        self,
        images: Any,
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Threshold = "calibrated",
        top_k: int | None = None,
        ct_window: Any = None,
    ) -> list[GroundingResult]:
        """Ground ``phrases`` in a list of 2D images (batched): a list in, a list out, same order.

        Args:
            images: a list of numpy arrays (H, W[, 3]), PIL images, paths (PNG / JPEG / TIFF / 2D
                DICOM / one-slice NIfTI or NRRD) or :class:`~medglip.infer.inputs.InputImage` s. One
                image that is not in a list still works for this release, with a DeprecationWarning,
                and returns one result: use :meth:`ground_one` for that.
            phrases: the phrases to find, e.g. ``["brain tumor", "left kidney"]``.
            modality: CT / MR / XR / US / ENDO / DERM / PATH (or an alias); default: the DICOM
                Modality tag, else the model's modality classifier.
            masks: also return a mask per box: ``"head"`` the checkpoint's mask head, ``"medsam"``
                LiteMedSAM given each box, True the Grounder's default (:meth:`mask_source`).
            score_threshold: drop boxes scoring below this: ``"calibrated"`` (default) the
                checkpoint's threshold of each phrase, a number, or None (the whole ranking above the
                model's ``config.score_threshold`` floor, for evaluation).
            top_k: keep at most this many boxes per phrase.
            ct_window: the HU window 8-bit CT pictures show (a name such as ``"soft_tissue"``,
                ``"low,high"`` or a pair); None: :data:`medglip.core.intensity.DEFAULT_PICTURE_WINDOW`
                (lung). Their pixels are mapped back to HU through it, then through the model's
                windows, as every CT input is (:func:`medglip.core.pipeline.ct_form_of`).

        Returns:
            one :class:`GroundingResult` per image: per phrase ``boxes`` (K, 4) xyxy in original
            pixels, ``scores`` (K,), ``masks`` (K, H, W) bool or None; ``pixels`` the model saw;
            ``thresholds`` the score threshold applied to each phrase.

        Raises:
            MedglipError: no / empty phrases, unknown modality, a 3D input (use :meth:`ground_volume`),
                unreadable file, masks from a source this Grounder or checkpoint lacks.
        """
        if not isinstance(images, (list, tuple)):
            warnings.warn(
                "Grounder.ground(one image) is deprecated: use ground_one(image, ...) or ground([image, ...])",
                DeprecationWarning,
                stacklevel=2,
            )
            # the deprecated one-image form keeps answering one result, not a list
            return self.ground_one(
                images,
                phrases,
                modality=modality,
                masks=masks,  # type: ignore[return-value]
                score_threshold=score_threshold,
                top_k=top_k,
                ct_window=ct_window,
            )
        items = list(images)
        if not items:
            return []
        names = clean_phrases(phrases)
        caller = self._check_modality(modality)
        source = self.mask_source(masks)
        inputs = [read_image_input(x, ct_window=ct_window) for x in items]
        prepared = self._prepare(inputs, caller)
        keep = KeepBoxes(self.threshold_for, names, score_threshold, top_k) if source == "head" else None
        dets = self._detect(
            [p.tensor for p in prepared],
            [p.meta for p in prepared],
            [p.modality[0] for p in prepared],
            self._chunks(names),
            head_masks=keep,
        )
        out = [
            self._collect(x, p, names, d, masks=source, score_threshold=score_threshold, top_k=top_k)
            for x, p, d in zip(inputs, prepared, dets, strict=True)
        ]
        for r in out:
            r.untrained = self.untrained(names, r.modality)
        return out

    @torch.no_grad()
    def masks_for_boxes(
        self,
        image: Any,
        boxes: Any,
        phrase: str,
        *,
        modality: str | None = None,
        source: Literal["head", "medsam"] = "head",
    ) -> np.ndarray:
        """Masks of given boxes (box prompts → masks), e.g. boxes a user drew or true boxes.

        Args:
            image: one 2D image (as in :meth:`ground`).
            boxes: ``(K, 4)`` xyxy in the image's original pixels (pixel edges).
            phrase: what the boxes hold (the mask head reads features fused with this prompt).
            modality: as in :meth:`ground`.
            source: ``"head"`` (the checkpoint's mask head) or ``"medsam"`` (LiteMedSAM).

        Returns:
            ``(K, H, W)`` bool masks in original pixels.
        """
        if self.mask_source(source) != source:
            raise MedglipError(f"source must be 'head' or 'medsam', not {source!r}")
        (name,) = clean_phrases([phrase])
        p = self._prepare([read_image_input(image)], self._check_modality(modality))[0]
        h, w = p.pixels.shape[:2]
        b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        if len(b) == 0:
            return np.zeros((0, h, w), bool)
        if source == "medsam":
            return np.asarray(self.refiner.refine(picture(p.pixels, p.intensity), b.numpy()), bool)
        images = p.tensor[None].to(self.device)
        mod = torch.tensor([self.config.modalities.index(p.modality[0])])
        feats = self.model.encode_images(images, mod)
        ch = self._chunks((name,))[0]
        hw = image_hw(images)
        _, fused = self.model.detect_with_features(feats, ch.features, hw)
        scale = float(p.meta["scale"])
        probs = self.model.predict_masks(fused, feats.images, [(b * scale).to(self.device)], hw)[0]
        return paste_masks(probs, b, (h, w)).numpy()

    def ground_file(
        self,
        image: Any,
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Threshold = "calibrated",
        plane: str = "axial",
        top_k: int | None = None,
        ct_window: Any = None,
    ) -> GroundingResult | VolumeGroundingResult:
        """Ground a 2D image or a volume, whichever ``image`` is (read once): :meth:`ground` (with
        ``top_k``) or :meth:`ground_volume` (with ``plane``). The one entry point of the CLI, VQA,
        reports and the service."""
        item = read_input(image, ct_window=ct_window)
        if isinstance(item, Volume):
            return self.ground_volume(
                item, phrases, modality=modality, masks=masks, score_threshold=score_threshold, plane=plane
            )
        return self.ground_one(
            item, phrases, modality=modality, masks=masks, score_threshold=score_threshold, top_k=top_k
        )

    def untrained(self, phrases: Sequence[str], modality: str) -> tuple[str, ...]:
        """One line for a modality, and one per phrase, that the model was never trained on (in that
        modality); empty when the checkpoint does not record what it was trained on."""
        if not self.trained_on:
            return ()
        if modality not in self.trained_on:
            known = ", ".join(sorted(self.trained_on))
            return (
                f"this model was never trained on {modality} images (only {known}): its boxes here are not calibrated",
            )
        anywhere = frozenset().union(*self.trained_on.values())
        out = []
        for p in phrases:
            key = phrase_key(p)
            if key in self.trained_on[modality]:
                continue
            where = sorted(m for m, ps in self.trained_on.items() if key in ps)
            out.append(
                f"'{p}' was never a training phrase of this model: its boxes are not calibrated"
                if key not in anywhere
                else f"'{p}' was trained on {', '.join(where)} images only, not {modality}: "
                "its boxes are not calibrated"
            )
        return tuple(out)

    def threshold_for(self, phrase: str) -> float:
        """The checkpoint's calibrated score threshold of ``phrase`` (see the module docstring)."""
        return self.config.finding_threshold(phrase)

    def thresholds(self, phrases: Sequence[str], score_threshold: Threshold) -> dict[str, float | None]:
        """The score threshold a call with ``score_threshold`` applies to each phrase (None: none)."""
        if score_threshold == "calibrated":
            return {p: float(self.threshold_for(p)) for p in phrases}
        return {p: None if score_threshold is None else float(score_threshold) for p in phrases}

    def phrases_for(self, modality: str) -> tuple[str, ...]:
        """The phrases this model was trained on in ``modality`` (``RUN/categories.json``), in the
        order of :attr:`known_phrases`; all known phrases when the checkpoint does not say per
        modality; empty when it lists none."""
        if not self.trained_on:
            return self.known_phrases
        keys = self.trained_on.get(str(modality), frozenset())
        return tuple(p for p in self.known_phrases if phrase_key(p) in keys)

    def modality_of(self, image: Any, modality: str | None = None) -> str:
        """The modality code a call would use for ``image`` (a path, array or input already read):
        the caller's, else its metadata, else the model's classifier (a volume: three central slices)."""
        caller = self._check_modality(modality)
        item = read_input(image)
        if isinstance(item, Volume):
            plan = plan_slices(item.geometry, item.array.shape, "axial")
            code, where = resolve_modality(caller, item.modality, lambda: self._classify_volume(item, plan))
            self._known(code, where, item.source)
            return code
        return self._prepare([item], caller)[0].modality[0]

    def _check_modality(self, modality: str | None) -> str | None:
        code = check_modality(modality)
        if code is not None and code not in self.config.modalities:
            raise MedglipError(f"modality {code!r} is not one this model knows ({', '.join(self.config.modalities)})")
        return code

    def _known(self, code: str, where: str, what: str) -> None:
        if code not in self.config.modalities:
            raise MedglipError(
                f"{what}: modality {code} ({where}) is not one this model knows "
                f"({', '.join(self.config.modalities)}); pass modality=..."
            )

    @torch.no_grad()
    def _classify(self, tensors: list[torch.Tensor]) -> list[str]:
        idx = self.model.classify_modality(torch.stack(tensors).to(self.device)).argmax(1).tolist()
        return [self.config.modalities[i] for i in idx]

    def _prepare(self, inputs: list[InputImage], caller: str | None) -> list[_Prepared]:
        """Model pixels and tensors of 2D inputs, with their modality (classified where unknown)."""
        size, cfg = self.config.image_size, self.input_config
        out: list[_Prepared | None] = [None] * len(inputs)
        unknown = []
        for i, x in enumerate(inputs):
            try:
                code, where = resolve_modality(caller, x.modality, None)
            except MedglipError:
                unknown.append(i)
                continue
            self._known(code, where, x.source)
            pix, rec = model_pixels(x.raw, code, cfg, what=x.source, form=x.ct_form)
            out[i] = _Prepared(pix, rec, *to_tensor(pix, size), (code, where))
        if unknown:  # the classifier looks at the pixels made without a modality (HU-like → CT windows)
            first = [
                model_pixels(inputs[i].raw, None, cfg, what=inputs[i].source, form=inputs[i].ct_form) for i in unknown
            ]
            tensors = [to_tensor(p, size) for p, _ in first]
            codes = self._classify([t for t, _ in tensors])
            for i, (pix, rec), (t, meta), code in zip(unknown, first, tensors, codes, strict=True):
                self._known(code, "classifier", inputs[i].source)
                if code == "CT" and rec["mode"] != "ct_windows" or code != "CT" and rec["mode"] == "ct_windows":
                    pix, rec = model_pixels(inputs[i].raw, code, cfg, what=inputs[i].source, form=inputs[i].ct_form)
                    t, meta = to_tensor(pix, size)
                out[i] = _Prepared(pix, rec, t, meta, (code, "classifier"))
        return [p for p in out if p is not None]

    @torch.no_grad()
    def _detect(
        self,
        tensors: list[torch.Tensor],
        metas: list[dict[str, Any]],
        modalities: list[str],
        chunks: list[_Chunk],
        *,
        head_masks: KeepBoxes | None = None,
    ) -> list[list[Detections]]:
        """Per image, per prompt chunk: :class:`Detections` in original pixels (with ``head_masks``:
        only the boxes it keeps, each with its mask from the mask head).

        Images are batched by modality (each forward pass runs one image encoder on a full batch),
        the image side runs once per image, fusion and the head once per chunk.
        """
        out: list[list[Detections]] = [[] for _ in tensors]
        order = sorted(range(len(tensors)), key=lambda i: (self.config.modalities.index(modalities[i]), i))
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            groups: dict[str, list[int]] = {}
            for i in idx:
                groups.setdefault(modalities[i], []).append(i)
            for code, members in groups.items():
                images = torch.stack([tensors[i] for i in members]).to(self.device)
                mod = torch.full((len(members),), self.config.modalities.index(code), dtype=torch.long)  # CPU: no sync
                feats = self.model.encode_images(images, mod)  # once per image, whatever the chunks
                b = len(members)
                hw = image_hw(images)
                for ch in chunks:
                    tf = TextFeatures(
                        hidden=ch.features.hidden.expand(b, -1, -1),
                        mask=ch.features.mask.expand(b, -1),
                        phrase_token_masks=[ch.features.phrase_token_masks[0]] * b,
                    )
                    if head_masks is None:
                        dets = self.model.detect(feats, tf, hw)
                    else:
                        dets, fused = self.model.detect_with_features(feats, tf, hw)
                    gidx = torch.tensor(ch.indices, dtype=torch.long)
                    found = [
                        Detections(
                            boxes=boxes_to_original(det["boxes"].float().cpu(), metas[i]).numpy(),
                            scores=det["scores"].float().cpu().numpy(),
                            phrase_ids=gidx[det["phrase_ids"].cpu()].numpy(),
                        )
                        for i, det in zip(members, dets, strict=True)
                    ]
                    if head_masks is not None:  # masks of the boxes the result keeps, pasted into the original
                        sel = [torch.as_tensor(head_masks.indices(d), dtype=torch.long) for d in found]
                        kept = [d["boxes"].float()[k.to(d["boxes"].device)] for d, k in zip(dets, sel, strict=True)]
                        probs = self.model.predict_masks(fused, feats.images, kept, hw)
                        found = [
                            d.take(k.numpy()).with_masks(
                                paste_masks(pr, bx.cpu() / float(metas[i]["scale"]), metas[i]["orig_size"]).numpy()
                            )
                            for d, k, bx, pr, i in zip(found, sel, kept, probs, members, strict=True)
                        ]
                    for i, d in zip(members, found, strict=True):
                        out[i].append(d)
        return out

    def _collect(
        self,
        x: InputImage | None,
        p: _Prepared,
        phrases: tuple[str, ...],
        dets: list[Detections],
        *,
        masks: str | None,
        score_threshold: Threshold,
        top_k: int | None,
        source: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> GroundingResult:
        h, w = p.pixels.shape[:2]
        d = Detections.concat(dets, (h, w))
        if masks == "head" and d.masks is None:  # no chunk (cannot happen) or a chunk without masks
            raise MedglipError("internal: the mask head gave no masks for these detections")  # pragma: no cover
        groundings = []
        for k, sel in enumerate(
            select_boxes(self.threshold_for, d.boxes, d.scores, d.phrase_ids, phrases, score_threshold, top_k)
        ):
            kept = d.take(sel)
            groundings.append(
                PhraseGrounding(phrases[k], kept.boxes, kept.scores, kept.masks if masks == "head" else None)
            )
        if masks == "medsam":
            all_boxes = np.concatenate([g.boxes for g in groundings]).reshape(-1, 4)
            m = (
                self.refiner.refine(picture(p.pixels, p.intensity), all_boxes)
                if len(all_boxes)
                else np.zeros((0, h, w), bool)
            )
            start = 0
            for g in groundings:
                g.masks = m[start : start + len(g)]
                start += len(g)
        info = {"intensity": p.intensity, **(extra or {})}
        if x is not None:
            info.update(
                {k: x.meta[k] for k in ("plane", "pixel_to_voxel", "pixel_to_world", "pixel_spacing") if k in x.meta}
            )
        return GroundingResult(
            phrases,
            groundings,
            (h, w),
            p.modality[0],
            p.modality[1],
            source if source is not None else (x.source if x is not None else "array"),
            info,
            pixels=p.pixels,
            raw=None if x is None else x.raw,
            dicom_headers=() if x is None else x.dicom_headers,
            thresholds=self.thresholds(phrases, score_threshold),
        )

    # ------------------------------------------------------------------------------ 3D
    def ground_volume(
        self,
        path_or_array: Any,
        phrases: Sequence[str] | str,
        *,
        geometry: Any = None,
        modality: str | None = None,
        plane: str = "axial",
        masks: Masks = False,
        score_threshold: Threshold = "calibrated",
        link_iou: float = LINK_IOU,
        ct_window: Any = None,
    ) -> VolumeGroundingResult:
        """Ground ``phrases`` slice by slice in a volume and link the boxes into 3D objects.

        Args:
            path_or_array: NIfTI / NRRD / MetaImage / DICOM series folder or multi-frame file, an
                ``(i, j, k)`` array (with ``geometry``, a :class:`medglip.core.geometry.Geometry`), or
                a :class:`~medglip.infer.inputs.Volume`.
            phrases, modality, masks, score_threshold: as in :meth:`ground`.
            plane: ``axial`` / ``coronal`` / ``sagittal`` display slices.
            link_iou: IoU needed to link boxes of neighbouring slices (one missing slice is bridged).
            ct_window: for an 8-bit CT volume, the window its pictures show (as in :meth:`ground`).

        Returns:
            :class:`VolumeGroundingResult`: per object phrase, score (mean of its slice scores),
            slice range, ``voxel_box`` / ``world_box`` (LPS mm) and the per-slice boxes; its
            ``picture(k)`` draws display slice ``k`` as the model saw it.
        """
        names = clean_phrases(phrases)
        caller = self._check_modality(modality)
        if plane not in PLANES:
            raise MedglipError(f"unknown plane {plane!r}; expected axial, coronal or sagittal")
        vol = read_volume_input(path_or_array, geometry, ct_window=ct_window)
        try:
            plan = plan_slices(vol.geometry, vol.array.shape, plane)
        except ValueError as exc:
            raise MedglipError(f"{vol.source}: {exc}") from None
        code, where = resolve_modality(caller, vol.modality, lambda: self._classify_volume(vol, plan))
        self._known(code, where, vol.source)
        mask_source = self.mask_source(masks)
        keep = KeepBoxes(self.threshold_for, names, score_threshold, None) if mask_source == "head" else None
        cfg, size, chunks = self.input_config, self.config.image_size, self._chunks(names)

        def detect(ks: range, _phrases: Sequence[str]) -> list[GroundingResult]:
            prepared = []
            for k in ks:  # views of the volume, never a copy of it
                pix, rec = slice_pixels(vol.array, plan, k, code, cfg, what=f"{vol.source}[{k}]", form=vol.ct_form)
                prepared.append(_Prepared(pix, rec, *to_tensor(pix, size), (code, where)))
            dets = self._detect(
                [p.tensor for p in prepared],
                [p.meta for p in prepared],
                [code] * len(prepared),
                chunks,
                head_masks=keep,
            )
            out = []
            for k, p, d in zip(ks, prepared, dets, strict=True):
                res = self._collect(
                    None,
                    p,
                    names,
                    d,
                    masks=mask_source,
                    score_threshold=score_threshold,
                    top_k=None,
                    source=f"{vol.source}[{k}]",
                )
                res.pixels = None  # the volume result makes slice pixels on demand (volumes can be large)
                out.append(res)
            return out

        result = ground_slices(
            detect,
            vol,
            names,
            modality=code,
            modality_source=where,
            plane=plane,
            batch_size=self.batch_size,
            link_iou=link_iou,
            input_config=cfg,
        )
        result.untrained = self.untrained(names, code)
        result.thresholds = self.thresholds(names, score_threshold)
        return result

    def _classify_volume(self, vol: Volume, plan: Any) -> str:
        """Majority vote of the modality classifier over three central slices (only those are cut)."""
        n = plan.n_slices
        picks = sorted({n // 2, max(0, n // 2 - n // 4), min(n - 1, n // 2 + n // 4)})
        tensors = [
            to_tensor(
                slice_pixels(vol.array, plan, k, None, self.input_config, form=vol.ct_form)[0], self.config.image_size
            )[0]
            for k in picks
        ]
        votes = self._classify(tensors)
        return max(set(votes), key=votes.count)
