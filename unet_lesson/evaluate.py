"""Scoring a trained U-Net: from probabilities to nuclei, and the Data Science Bowl score.

For each image, the probabilities of :func:`unet_lesson.predict.predict_image` become nuclei by
:class:`PostProcess` (a seeded watershed), and :func:`score_samples` scores them with the
competition's metric, per image, with the image's modality, so results can be read by modality.

Post-processing parameters are chosen by :func:`tune_postprocessing` on the **validation** split
only; the test split is scored once, with the chosen parameters. :func:`validation_scores` is
what training calls after each epoch; :func:`chance_scores` is the score of predicting no
nucleus at all, the floor an epoch must beat to become a run's best.

Beyond the mean score: :func:`object_error_table` names what happened to the nuclei of each
image (matched, missed, merged, split, false positives: :func:`unet_lesson.metrics.object_errors`),
and :func:`bootstrap_interval` says how much a mean over a few dozen images could move had
other images of the same kind been drawn.

Built in notebook 09 (the metric) and notebook 11 (tuning, scores by modality).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from .data import modality_of
from .instances import MIN_SIZE, THRESHOLD, probabilities_to_labels
from .metrics import dsb_score, object_errors, pixel_dice
from .predict import predict_samples


@dataclass(frozen=True)
class PostProcess:
    """How probabilities become nuclei (see :mod:`unet_lesson.instances`).

    ``three_class``: seeds from interior blobs, foreground flooded by a watershed.
    ``watershed`` / ``components``: for a two-class network.

    Not built in a notebook: :func:`tune_postprocessing` returns it.
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


def score_image(true_labels: np.ndarray, pred_labels: np.ndarray) -> dict:
    """DSB score, pixel Dice and the true and predicted nucleus counts of one image.

    Used in notebook 11.
    """
    return {"dsb": dsb_score(true_labels, pred_labels),
            "dice": float(pixel_dice(true_labels > 0, pred_labels > 0)),
            "n_true": int(len(np.unique(true_labels)) - 1),
            "n_pred": int(len(np.unique(pred_labels)) - 1)}


def score_samples(samples, probabilities, post: PostProcess) -> pd.DataFrame:
    """One row per image: id, modality, DSB score, pixel Dice, true and predicted counts.

    Used in notebook 11.
    """
    rows = []
    for sample, probs in zip(samples, probabilities, strict=True):
        pred = post(probs)
        rows.append({"image_id": sample.image_id, "modality": modality_of(sample.image),
                     "height": sample.labels.shape[0], "width": sample.labels.shape[1],
                     **score_image(sample.labels, pred)})
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> dict:
    """Mean DSB score and Dice overall and by modality, with image counts.

    Not built in a notebook: the run's final metrics and the command line.
    """
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

    Used in notebook 11.
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


def validation_scores(net, samples, cfg, device=None) -> dict:
    """Mean Dice and DSB score on (up to ``cfg.val_max_images``) validation images, with the
    default post-processing: what training records after each epoch.

    Not built in a notebook: :func:`~unet_lesson.train.fit` validates every epoch with it.
    """
    if cfg.val_max_images:
        samples = samples[: cfg.val_max_images]
    probs = predict_samples(net, samples, cfg, device, desc="validating")
    scores = score_samples(samples, probs, PostProcess.for_target(cfg.target))
    return {"val_dice": float(scores["dice"].mean()), "val_dsb": float(scores["dsb"].mean())}


def chance_scores(samples) -> dict:
    """What a network that learned nothing scores: the better of the two constant predictions.

    ``val_dsb``: the DSB score of predicting no nucleus (1 for an image without nuclei, else
    0; predicting one image-wide blob scores 0 too). ``val_dice``: the better pixel Dice of
    predicting no nucleus pixel or every pixel. An epoch must beat one of them on validation
    to become a run's best (a diverged network that predicts nothing or everything does not).

    Not built in a notebook: :func:`~unet_lesson.train.fit` picks the best epoch above it.
    """
    if not samples:
        return {"val_dsb": 0.0, "val_dice": 0.0}
    empty = [float(s.labels.max(initial=0) == 0) for s in samples]
    full = [2 * c / (1 + c) for c in ((s.labels > 0).mean() for s in samples)]
    return {"val_dsb": float(np.mean(empty)),
            "val_dice": float(max(np.mean(empty), np.mean(full)))}


def format_metrics(metrics: dict) -> str:
    """A few lines for the terminal: overall and per-modality scores of a metrics dict.

    Not built in a notebook: the command line prints metrics with it.
    """
    name = metrics["reported_split"]
    m = metrics[name]
    lines = [f"{name} split: DSB score {m['dsb']:.3f}, pixel Dice {m['dice']:.3f} "
             f"({m['n_images']} images)"]
    for modality, v in sorted(m["by_modality"].items()):
        lines.append(f"  {modality:<22} DSB {v['dsb']:.3f}  Dice {v['dice']:.3f}  "
                     f"({v['n_images']} images)")
    return "\n".join(lines)


def object_error_table(samples, probabilities, post: PostProcess, iou: float = 0.5
                       ) -> pd.DataFrame:
    """One row per image: id, modality, DSB score and what happened to its nuclei at IoU
    ``iou`` (:func:`unet_lesson.metrics.object_errors`).

    Columns ``true``, ``predicted``, ``matched``, ``missed``, ``merged`` (true nuclei inside a
    prediction that covers several), ``split`` (true nuclei cut into several predictions),
    ``false positives`` and ``merges`` (predictions covering several nuclei). The DSB score
    counts a merge of two nuclei as one false positive and two misses; this table names it.

    Used in notebook 11.
    """
    rows = []
    for sample, probs in zip(samples, probabilities, strict=True):
        pred = post(probs)
        counts = object_errors(sample.labels, pred, iou=iou).counts()
        rows.append({"image_id": sample.image_id, "modality": modality_of(sample.image),
                     "dsb": dsb_score(sample.labels, pred), **counts})
    return pd.DataFrame(rows)


def bootstrap_interval(values, level: float = 0.95, n_resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``values`` (e.g. per-image DSB scores).

    Draw ``n_resamples`` samples of the same size with replacement (images, not pixels, are
    the unit: the score of a data set is a mean over images), take each one's mean, and
    return the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means. It shows
    how far the mean could move had other images of the same kind been drawn; it does not
    cover a change of kind of image (another acquisition group), which is larger.

    Used in notebook 11.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no values to resample")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[picks].mean(axis=1)  # (n_resamples,)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
