"""Scoring a trained U-Net: overlap-tile prediction, nuclei, and the Data Science Bowl score.

For each image: :func:`predict_probabilities` (the one preprocessing ``data.to_input``, then
overlap-tile prediction), :class:`PostProcess` turns probabilities into nuclei (a seeded
watershed), and :func:`score_samples` scores them with the competition's metric, per image,
with the image's modality, so results can be read by modality.

Post-processing parameters are chosen by :func:`tune_postprocessing` on the **validation** split
only; the test split is scored once, with the chosen parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from . import env
from .data import modality_of, to_input
from .instances import MIN_SIZE, THRESHOLD, probabilities_to_labels
from .metrics import dsb_score, pixel_dice
from .predict import predict_tiled


@dataclass(frozen=True)
class PostProcess:
    """How probabilities become nuclei (see :mod:`unet_lesson.instances`).

    ``three_class``: seeds from interior blobs, foreground flooded by a watershed.
    ``watershed`` / ``components``: for a two-class network.
    """

    method: str = "three_class"
    threshold: float = THRESHOLD  # foreground probability threshold
    interior_threshold: float = THRESHOLD  # three_class only: seed threshold on p(interior)
    min_size: int = MIN_SIZE  # pixels: smaller objects are removed

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        if self.method == "three_class":
            return probabilities_to_labels(probs, "three_class",
                                           interior_threshold=self.interior_threshold,
                                           foreground_threshold=self.threshold,
                                           min_size=self.min_size)
        return probabilities_to_labels(probs[1], self.method, threshold=self.threshold,
                                       min_size=self.min_size)

    @classmethod
    def for_target(cls, target: str, **values) -> PostProcess:
        return cls(method="three_class" if target == "three_class" else "watershed", **values)

    def to_dict(self) -> dict:
        return asdict(self)


def predict_probabilities(net, image: np.ndarray, cfg, device: torch.device | None = None,
                          tta: bool = False, batch_size: int = 4) -> np.ndarray:
    """(num_classes, H, W) probabilities for a uint8 (H, W, 3) image, at any size."""
    x = to_input(image, cfg.in_channels)  # (C, H, W), the training preprocessing
    return predict_tiled(net, x, tile_size=cfg.predict_tile, batch_size=batch_size, device=device,
                         amp=cfg.amp, tta=tta)


def score_image(true_labels: np.ndarray, pred_labels: np.ndarray) -> dict:
    return {"dsb": dsb_score(true_labels, pred_labels),
            "dice": float(pixel_dice(true_labels > 0, pred_labels > 0)),
            "n_true": int(len(np.unique(true_labels)) - 1),
            "n_pred": int(len(np.unique(pred_labels)) - 1)}


def predict_samples(net, samples, cfg, device=None, tta: bool = False, desc: str = "predicting"):
    """Probabilities for each sample (a list, in order)."""
    return [predict_probabilities(net, s.image, cfg, device, tta)
            for s in env.progress(samples, desc=desc, leave=False)]


def score_samples(samples, probabilities, post: PostProcess) -> pd.DataFrame:
    """One row per image: id, modality, DSB score, pixel Dice, true and predicted counts."""
    rows = []
    for sample, probs in zip(samples, probabilities, strict=True):
        pred = post(probs)
        rows.append({"image_id": sample.image_id, "modality": modality_of(sample.image),
                     "height": sample.labels.shape[0], "width": sample.labels.shape[1],
                     **score_image(sample.labels, pred)})
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> dict:
    """Mean DSB score and Dice overall and by modality, with image counts."""
    by = scores.groupby("modality")
    return {
        "dsb": float(scores["dsb"].mean()), "dice": float(scores["dice"].mean()),
        "n_images": len(scores),
        "by_modality": {m: {"dsb": float(g["dsb"].mean()), "dice": float(g["dice"].mean()),
                            "n_images": len(g)} for m, g in by},
    }


def tune_postprocessing(samples, probabilities, target: str, passes: int = 2
                        ) -> tuple[PostProcess, pd.DataFrame]:
    """Choose the post-processing on (validation!) samples; returns the best and every try.

    Coordinate ascent from the defaults: each parameter in turn is set to the best of its
    candidate values with the others fixed, ``passes`` times over (about 25 evaluations instead
    of the 75 of a full grid). Never call this with test images: the reported test score must
    not have chosen anything.
    """
    candidates = {"threshold": [0.3, 0.4, 0.5, 0.6, 0.7], "min_size": [8, 16, 32]}
    if target == "three_class":
        candidates["interior_threshold"] = [0.3, 0.4, 0.5, 0.6, 0.7]
    tried: dict[PostProcess, float] = {}

    def score(post: PostProcess) -> float:
        if post not in tried:
            tried[post] = float(np.mean([dsb_score(s.labels, post(p))
                                         for s, p in zip(samples, probabilities, strict=True)]))
        return tried[post]

    best = PostProcess.for_target(target)
    for _ in range(passes):
        for name, values in candidates.items():
            best = max((replace(best, **{name: v}) for v in values), key=score)
    grid = pd.DataFrame([{**p.to_dict(), "dsb": v} for p, v in tried.items()])
    return best, grid.sort_values("dsb", ascending=False, ignore_index=True)
