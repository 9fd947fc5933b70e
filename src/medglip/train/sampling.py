"""Which images each training step sees: sources weighted, batches of one modality, ranks disjoint.

Per epoch (a pure function of ``(seed, epoch)``, the same on every rank and after resuming):

1. every image gets a sampling weight: its source's weight shared by the source's images (a recipe
   records one weight per source; ``TrainConfig.source_weights`` overrides them), times its
   modality's weight (``TrainConfig.modality_weights``, default 1); with all weights equal the
   epoch is a plain shuffle of the images, otherwise as many images are drawn, with replacement,
   in proportion to the weights;
2. the drawn images are grouped by modality and cut into batches of ``batch_size`` (a modality's
   last, short batch is dropped when the modality fills at least one batch), so that each step
   runs ONE modality-specific image encoder on a full batch;
3. the batches are shuffled and dealt to the ranks in turn (DDP: ``batch i`` → rank ``i % world``);
   every rank gets exactly ``max(1, images // (batch_size × world))`` batches per epoch (a
   constant, so a step number says where to resume), repeating batches when there are too few.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler


def image_weights(
    sources: Sequence[str],
    modalities: Sequence[str],
    *,
    source_weights: Mapping[str, float],
    modality_weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Per-image sampling weights (normalised to sum 1): each source's weight split among its images,
    times the image's modality weight. A source without a weight counts 1."""
    counts: dict[str, int] = defaultdict(int)
    for s in sources:
        counts[s] += 1
    w = np.array([float(source_weights.get(s, 1.0)) / counts[s] for s in sources], dtype=np.float64)
    if modality_weights:
        w *= np.array([float(modality_weights.get(m, 1.0)) for m in modalities])
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"sampling weights must be non-negative and not all zero, got {sorted(set(w.tolist()))[:5]}")
    return w / w.sum()


class ModalityBatchSampler(Sampler[list[int]]):
    """Batches of image indices for one rank (see the module docstring).

    Args (keyword-only):
        modalities: each image's modality; weights: each image's sampling weight (None: uniform).
        batch_size, rank, world_size, seed: as named.
        skip: batches of the epoch already done (resuming in the middle of an epoch).
    """

    def __init__(
        self,
        *,
        modalities: Sequence[str],
        weights: np.ndarray | None,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        self.modalities = list(modalities)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.batch_size, self.rank, self.world_size, self.seed = int(batch_size), int(rank), int(world_size), int(seed)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.modalities)
        uniform = self.weights is None or np.allclose(self.weights, self.weights[0])
        drawn = rng.permutation(n) if uniform else rng.choice(n, size=n, replace=True, p=self.weights)
        by_mod: dict[str, list[int]] = defaultdict(list)
        for i in drawn.tolist():
            by_mod[self.modalities[i]].append(i)
        batches = []
        for mod in sorted(by_mod):
            idx = by_mod[mod]
            full = len(idx) // self.batch_size * self.batch_size
            cut = idx[:full] if full else idx  # a modality smaller than a batch still gets one
            batches += [cut[k : k + self.batch_size] for k in range(0, len(cut), self.batch_size)]
        order = rng.permutation(len(batches))
        batches = [batches[k] for k in order]
        need = self.steps_per_epoch() * self.world_size
        batches = [batches[k % len(batches)] for k in range(need)]  # too few: repeat; too many: cut
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self._batches()) - self.skip)

    def steps_per_epoch(self) -> int:
        """Batches per epoch on every rank."""
        return max(1, len(self.modalities) // (self.batch_size * self.world_size))
