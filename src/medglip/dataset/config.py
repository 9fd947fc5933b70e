"""The resolved build configuration, saved as ``build_config.json`` beside every built dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import cast

from ..core.intensity import parse_window
from ..core.orient import PLANES
from ..core.pipeline import PIPELINE_VERSION, InputConfig
from ..errors import MedglipError


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build writes (workers and shard do not, and are not here).

    Attributes:
        source: dataset root as given.
        layout: adapter name or ``auto``.
        modality: canonical modality forced on every case, or None to take the layout's.
        plane: slicing plane for 3D volumes (``axial``, ``coronal``, ``sagittal``).
        ct_windows: the input pipeline's three CT windows (``(low, high)`` HU), stacked as the
            channels of every CT image written (:mod:`medglip.core.pipeline`); a model trains on a
            dataset only when its own ``ct_windows`` are these.
        percentiles: the input pipeline's percentiles: of each slice's (each 2D image's)
            non-background values, mapped to 0 and 255 for non-CT images that are not 8-bit.
        context_slices: the input pipeline's 2.5D step ``d``: each grey volume slice is written with
            slices ``k - d`` and ``k + d`` as its first and last channels (0: off).
        display_window: the CT window ``medglip show`` draws: ``auto`` (by the labelled
            structures, weighted by voxels), a name of :data:`medglip.core.intensity.CT_WINDOWS`,
            or ``"low,high"`` in HU. Pictures only: the model's input does not depend on it.
        channels: ``first`` (channel 0 only) or ``all`` (one image per channel) for multi-channel volumes.
        min_area_mm2: components smaller than this (mm²) are dropped (when spacing is known).
        min_pixels: components with fewer pixels are dropped.
        negative_ratio: slices without findings sampled per slice with findings, per volume.
        split_ratios: train / val / test fractions of cases (cases never straddle splits).
        test_cases: case ids (or ``source/case_id``) forced into the test split.
        seed: seed of the split shuffle and negative sampling.
        label_mapping: user mapping ``{source: {source_label: canonical phrase}}`` applied before the ontology.
        include_unlabeled: also slice cases without labels (as negatives).
    """

    source: str
    layout: str = "auto"
    modality: str | None = None
    plane: str = "axial"
    ct_windows: tuple[tuple[float, float], ...] = InputConfig().ct_windows
    percentiles: tuple[float, float] = InputConfig().percentiles
    context_slices: int = 0
    display_window: str = "auto"
    channels: str = "first"
    min_area_mm2: float = 4.0
    min_pixels: int = 4
    negative_ratio: float = 0.2
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    test_cases: tuple[str, ...] = ()
    seed: int = 0
    label_mapping: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    include_unlabeled: bool = False
    input_version: int = PIPELINE_VERSION

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {self.plane!r}")
        if self.channels not in ("first", "all"):
            raise ValueError(f"channels must be 'first' or 'all', got {self.channels!r}")
        if self.display_window != "auto":
            try:
                parse_window(self.display_window)
            except MedglipError as exc:
                raise ValueError(f"display_window: {exc} (or 'auto')") from None
        _ = self.input_config  # the property validates ct_windows and percentiles
        if len(self.split_ratios) != 3 or any(r < 0 for r in self.split_ratios) or sum(self.split_ratios) <= 0:
            raise ValueError(f"split_ratios must be three non-negative fractions, got {self.split_ratios}")
        if self.negative_ratio < 0:
            raise ValueError(f"negative_ratio must be >= 0, got {self.negative_ratio}")

    @property
    def input_config(self) -> InputConfig:
        """The input pipeline the build writes its images with."""
        # cast: InputConfig itself checks that each window and the percentiles are (low, high) pairs
        windows = cast(tuple[tuple[float, float], ...], tuple(tuple(float(v) for v in w) for w in self.ct_windows))
        return InputConfig(
            ct_windows=windows,
            percentiles=cast(tuple[float, float], tuple(self.percentiles)),
            version=self.input_version,
            context_slices=self.context_slices,
        )

    @property
    def mapping(self) -> dict[str, dict[str, str]]:
        return {src: dict(pairs) for src, pairs in self.label_mapping}

    def to_json(self) -> dict:
        d = asdict(self)
        d["label_mapping"] = self.mapping
        if not self.context_slices:  # absent = 0: datasets built before the 2.5D option keep their fingerprint
            del d["context_slices"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> BuildConfig:
        known = {f.name for f in fields(cls)}
        if "input_version" not in d:
            raise MedglipError(
                "this dataset was built before medglip's input pipeline (its images hold one "
                "CT window, normalised per volume): rebuild it with `medglip build`"
            )
        d = {k: v for k, v in d.items() if k in known}
        for k in ("percentiles", "split_ratios", "test_cases"):
            if k in d:
                d[k] = tuple(d[k])
        if "ct_windows" in d:
            d["ct_windows"] = tuple(tuple(float(v) for v in w) for w in d["ct_windows"])
        d["label_mapping"] = mapping_to_tuple(d.get("label_mapping") or {})
        return cls(**d)

    def fingerprint(self) -> str:
        """Short hash of the settings that change outputs (the source path excluded)."""
        d = self.to_json()
        d.pop("source")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def mapping_to_tuple(mapping: dict[str, dict[str, str]]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """Freeze a ``{source: {label: phrase}}`` mapping for the frozen config."""
    return tuple(sorted((str(s), tuple(sorted((str(k), str(v)) for k, v in m.items()))) for s, m in mapping.items()))


def display_window_spec(spec: str) -> tuple[float, float] | None:
    """``auto`` → None; a window name or ``"low,high"`` → HU bounds (:func:`parse_window`)."""
    return None if spec == "auto" else parse_window(spec)
