"""Test doubles shared by the test modules (importable because conftest puts tests/ on sys.path)."""

from __future__ import annotations

import numpy as np


class BoxFillRefiner:
    """Fake mask refiner: each mask is its rounded box."""

    def refine(self, image, boxes):
        h, w = image.shape[:2]
        out = np.zeros((len(boxes), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            out[i, y0:y1, x0:x1] = True
        return out


def tiny_grounder(folder):
    """A Grounder on a seeded tiny random checkpoint saved in ``folder``, with :class:`BoxFillRefiner`;
    no score floor and a calibrated threshold of 0, so that an untrained model still returns boxes."""
    import torch

    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset, save_checkpoint

    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", score_threshold=0.0, finding_thresholds=(("*", 0.0),))).eval()
    return Grounder.from_pretrained(save_checkpoint(model, folder), refiner=BoxFillRefiner())


def truth_on_grid(truth, geometry, shape):
    """``truth`` (an ImageData label volume) resampled (nearest voxel) onto another ``(i, j, k)`` grid."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape[:3]], indexing="ij"), -1).reshape(-1, 3)
    world = geometry.index_to_world(idx)
    a = truth.geometry.affine
    src = np.rint((world - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T).astype(np.int64)
    ok = np.all((src >= 0) & (src < np.asarray(truth.array.shape[:3])), axis=1)
    out = np.zeros(len(idx), truth.array.dtype)
    out[ok] = truth.array[tuple(src[ok].T)]
    return out.reshape(tuple(shape[:3]))


class OracleVolumes:
    """Mixin: volumes are grounded by an oracle that finds ``phrase`` where a known label volume is, slice by
    slice (the box of the label's pixels, the label as its mask, score 0.9), plus ``extra`` (a second phrase
    found as a box around the first, score 0.5, so that the two overlap). Real linking, masks and exports."""

    truth = None
    phrase = "brain tumor"
    extra = "brain"

    def ground_volume(self, path_or_array, phrases, *, geometry=None, modality=None, plane="axial", masks=False,
                      score_threshold="calibrated", link_iou=0.3):
        from medglip.core.orient import plan_slices
        from medglip.infer.grounder import clean_phrases
        from medglip.infer.inputs import read_volume_input
        from medglip.infer.results import GroundingResult, PhraseGrounding
        from medglip.infer.volume import ground_volume

        names = clean_phrases(phrases)
        vol = read_volume_input(path_or_array, geometry)
        lab = truth_on_grid(self.truth, vol.geometry, vol.array.shape) > 0
        plan = plan_slices(vol.geometry, vol.array.shape, plane)

        def detect(ks, _phrases):
            out = []
            for k in ks:
                m = plan.take(lab, k)
                gs = []
                for p in names:
                    box, mask, score = None, None, 0.0
                    if m.any() and p in (self.phrase, self.extra):
                        ys, xs = np.nonzero(m)
                        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
                        mask, score = m, 0.9
                        if p == self.extra:  # a larger box reaching past the finding on its right and below
                            box = box + np.array([4, 4, 14, 14], np.float32)
                            box[2:] = np.minimum(box[2:], [m.shape[1], m.shape[0]])
                            mask = BoxFillRefiner().refine(m, box[None])[0]
                            score = 0.5
                    thr = self.threshold_for(p) if score_threshold == "calibrated" else score_threshold
                    if box is None or (thr is not None and score < thr):
                        gs.append(PhraseGrounding(p, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                                                  np.zeros((0, *m.shape), bool) if masks else None))
                    else:
                        gs.append(PhraseGrounding(p, box[None], np.array([score], np.float32),
                                                  mask[None].copy() if masks else None))
                out.append(GroundingResult(names, gs, m.shape, "MR"))
            return out

        return ground_volume(detect, vol, names, modality=modality or vol.modality or "MR", plane=plane,
                             input_config=self.input_config, link_iou=link_iou)


def oracle_grounder(folder, truth):
    """A Grounder on a tiny random checkpoint (2D images, config, tokenizer) whose volumes are grounded by
    :class:`OracleVolumes` against ``truth`` (an ImageData label volume)."""
    from medglip.infer import Grounder

    base = tiny_grounder(folder)

    class OracleGrounder(OracleVolumes, Grounder):
        pass

    g = OracleGrounder(base.model, refiner=BoxFillRefiner(), known_phrases=("brain tumor",))
    g.truth = truth
    return g
