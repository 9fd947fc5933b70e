"""Hierarchical phrases in training: a lesion is sometimes asked by a coarser lesion term of the
ontology, so a model trained on "lower-grade glioma" also answers "brain tumor"."""

from __future__ import annotations

from collections import Counter

import pytest

from layouts_lesions import make_lgg
from medglip.dataset import BuildConfig, build
from medglip.modality import MODALITIES
from medglip.train import TrainConfig
from medglip.train.augment import AugmentConfig
from medglip.train.data import GroundingDataset

LGG = "lower-grade glioma"


class _Prompt:
    def __init__(self, phrases):
        self.phrases = list(phrases)


@pytest.fixture(scope="module")
def lgg_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("coarse")
    out = root / "ds"
    assert not build(BuildConfig(source=str(make_lgg(root)), split_ratios=(1.0, 0.0, 0.0)), out).failed
    return out


def _asked(ds, n_epochs=40):
    seen = Counter()
    for epoch in range(n_epochs):
        ds.set_epoch(epoch)
        for i, im in enumerate(ds.images):
            if im["negative"]:
                continue
            item = ds[i]
            names = item["prompt"].phrases
            seen.update(names[j] for j in item["target"]["phrase_ids"].tolist())
    return seen


def test_lesions_are_asked_by_their_coarser_terms(lgg_dataset):
    ds = GroundingDataset(lgg_dataset, "train", image_size=64, prompt_builder=lambda p: [_Prompt(p)],
                          modalities=MODALITIES, train=True, augment=AugmentConfig(coarse_phrase_prob=0.6))
    assert ds.coarser[LGG] == ("glioma", "brain tumor")
    assert {"glioma", "brain tumor", LGG} <= set(ds.phrases_by_modality["MR"])
    seen = _asked(ds)
    assert seen[LGG] > 0 and seen["glioma"] > 0 and seen["brain tumor"] > 0
    share = (seen["glioma"] + seen["brain tumor"]) / sum(seen.values())
    assert 0.4 < share < 0.8, seen  # ~0.6 of the lesions
    # a coarser term of a present lesion is never its negative
    ds.set_epoch(3)
    for i, im in enumerate(ds.images):
        item = ds[i]
        positives = {item["prompt"].phrases[j] for j in item["target"]["phrase_ids"].tolist()}
        if positives & {"glioma", "brain tumor", LGG}:
            assert not ({"glioma", "brain tumor", LGG} - positives) & set(item["prompt"].phrases)


def test_off_by_default_and_never_at_evaluation(lgg_dataset):
    for kw in ({"train": True}, {"train": False, "augment": AugmentConfig(coarse_phrase_prob=1.0)}):
        ds = GroundingDataset(lgg_dataset, "train", image_size=64, prompt_builder=lambda p: [_Prompt(p)],
                              modalities=MODALITIES, **kw)
        assert ds.coarser == {} and set(_asked(ds, 3)) == {LGG}
    assert TrainConfig(coarse_phrase_prob=0.5).augment_config().coarse_phrase_prob == 0.5
    with pytest.raises(ValueError, match="coarse_phrase_prob"):
        TrainConfig(coarse_phrase_prob=1.5)
