"""``GrounderLike``: what evaluation, VQA, reports and the service need of a Grounder.

:class:`~medglip.infer.grounder.Grounder` is the implementation; the service's
``WorkerGrounder`` (model calls on its worker thread) and test stand-ins are others. Code above
``infer`` takes a ``GrounderLike`` rather than ``Any``, so a type checker sees the seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..core.pipeline import InputConfig
    from ..model.config import ModelConfig
    from .masks import Masks
    from .results import GroundingResult
    from .volume import VolumeGroundingResult


@runtime_checkable
class GrounderLike(Protocol):
    """The Grounder's public surface (see :class:`medglip.infer.grounder.Grounder` for each method)."""

    config: ModelConfig
    input_config: InputConfig
    known_phrases: tuple[str, ...]

    def threshold_for(self, phrase: str) -> float: ...

    def phrases_for(self, modality: str) -> tuple[str, ...]: ...

    def modality_of(self, image: Any, modality: str | None = None) -> str: ...

    def ground(
        self,
        images: Sequence[Any],
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        top_k: int | None = None,
    ) -> list[GroundingResult]: ...

    def ground_one(
        self,
        image: Any,
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        top_k: int | None = None,
    ) -> GroundingResult: ...

    def ground_volume(
        self, path_or_array: Any, phrases: Sequence[str] | str, **kwargs: Any
    ) -> VolumeGroundingResult: ...

    def ground_file(
        self,
        image: Any,
        phrases: Sequence[str] | str,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        plane: str = "axial",
        top_k: int | None = None,
    ) -> GroundingResult | VolumeGroundingResult: ...
