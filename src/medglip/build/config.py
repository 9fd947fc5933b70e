"""The resolved build configuration, saved as ``build_config.json`` beside every built dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from .orient import PLANES

def ct_windows() -> dict[str, tuple[float, float]]:
    """Named CT windows (HU), defined once in the ontology data (``core.yaml``)."""
    from ..ontology import load_ontology

    return load_ontology().ct_windows


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build writes (workers and shard do not, and are not here).

    Attributes:
        source: dataset root as given.
        layout: adapter name or ``auto``.
        modality: canonical modality forced on every case, or None to take the layout's.
        plane: slicing plane for 3D volumes (``axial``, ``coronal``, ``sagittal``).
        ct_window: ``auto`` (by the labelled structures, weighted by voxels), a window name of
            :func:`ct_windows`, or ``"low,high"`` in HU.
        percentiles: low/high percentiles of the whole volume used to normalise non-CT 3D images
            and 2D images that are not 8-bit.
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
    ct_window: str = "auto"
    percentiles: tuple[float, float] = (0.5, 99.5)
    channels: str = "first"
    min_area_mm2: float = 4.0
    min_pixels: int = 4
    negative_ratio: float = 0.2
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    test_cases: tuple[str, ...] = ()
    seed: int = 0
    label_mapping: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    include_unlabeled: bool = False

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {self.plane!r}")
        if self.channels not in ("first", "all"):
            raise ValueError(f"channels must be 'first' or 'all', got {self.channels!r}")
        parse_window(self.ct_window)  # raises on a bad value
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if len(self.split_ratios) != 3 or any(r < 0 for r in self.split_ratios) or sum(self.split_ratios) <= 0:
            raise ValueError(f"split_ratios must be three non-negative fractions, got {self.split_ratios}")
        if self.negative_ratio < 0:
            raise ValueError(f"negative_ratio must be >= 0, got {self.negative_ratio}")

    @property
    def mapping(self) -> dict[str, dict[str, str]]:
        return {src: dict(pairs) for src, pairs in self.label_mapping}

    def to_json(self) -> dict:
        d = asdict(self)
        d["label_mapping"] = self.mapping
        return d

    @classmethod
    def from_json(cls, d: dict) -> "BuildConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("percentiles", "split_ratios", "test_cases"):
            if k in d:
                d[k] = tuple(d[k])
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


def parse_window(spec: str) -> tuple[float, float] | None:
    """``auto`` → None; a window name or ``"low,high"`` → HU bounds. Raises ValueError otherwise."""
    if spec == "auto":
        return None
    windows = ct_windows()
    if spec in windows:
        return windows[spec]
    try:
        lo, hi = (float(x) for x in spec.split(","))
    except ValueError:
        raise ValueError(
            f"ct_window must be 'auto', one of {', '.join(windows)}, or 'low,high' in HU; got {spec!r}"
        ) from None
    if not lo < hi:
        raise ValueError(f"ct_window low must be below high, got {spec!r}")
    return lo, hi
