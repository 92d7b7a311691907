"""Scoring a trained U-Net: from probabilities to nuclei, and the Data Science Bowl score.

For each image, the probabilities of :func:`unet_lesson.predict.predict_image` become nuclei by
:class:`PostProcess` (a seeded watershed), and :func:`score_samples` scores them with the
competition's metric, per image, with the image's modality, so results can be read by modality.

Post-processing parameters are chosen by :func:`tune_postprocessing` on the **validation** split
only (one setting for all images, or with ``postprocess_by_modality`` one per modality:
:class:`PostProcessByModality`); the test split is scored once, with the chosen parameters.
:func:`validation_scores` is what training calls after each epoch; :func:`chance_scores` is
the score of predicting no nucleus at all, the floor an epoch must beat to become a run's best.

Beyond the mean score, :func:`score_samples` can name what happened to the nuclei of each image
(matched, missed, merged, split, false positives: :func:`unet_lesson.metrics.object_errors`),
and :func:`score_held_out` is the whole scoring of a trained network: post-processing chosen
on validation, then every held-out split scored with it (a run folder writes what it returns).
How sure a mean over a few dozen images is: :mod:`unet_lesson.stats`.

Built in notebook 09 (the metric) and notebook 11 (tuning, scores by modality).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

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

    Used in notebook 10.
    """

    method: str = "three_class"
    threshold: float = THRESHOLD  # foreground probability threshold
    interior_threshold: float = THRESHOLD  # three_class only: seed threshold on p(interior)
    min_size: int = MIN_SIZE  # pixels: smaller objects are removed

    def __call__(self, probs: np.ndarray, modality: str | None = None) -> np.ndarray:
        """The nuclei (int labels) of ``probs (K, H, W)``; ``modality`` is not needed (one
        setting for every image) but accepted, as :class:`PostProcessByModality` needs it."""
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

    def for_modality(self, modality: str | None) -> PostProcess:
        return self  # one setting for every modality

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PostProcessByModality:
    """A post-processing per modality, chosen on that modality's validation images, and the
    ``shared`` one (chosen on all of them) for every modality that had too few validation
    images (fewer than ``min_images``) or none. ``images``: how many validation images each
    modality had (the choice shown).

    Not built in a notebook: :func:`tune_postprocessing` returns it with ``by_modality``.
    """

    shared: PostProcess
    by_modality: dict[str, PostProcess] = field(default_factory=dict)
    min_images: int = 0
    images: dict[str, int] = field(default_factory=dict)

    def for_modality(self, modality: str | None) -> PostProcess:
        return self.by_modality.get(modality, self.shared)

    def __call__(self, probs: np.ndarray, modality: str | None = None) -> np.ndarray:
        """The nuclei of ``probs`` with the setting of ``modality`` (the shared one if it has
        none, or if ``modality`` is ``None``)."""
        return self.for_modality(modality)(probs)

    def to_dict(self) -> dict:
        return {"shared": self.shared.to_dict(),
                "by_modality": {m: p.to_dict() for m, p in sorted(self.by_modality.items())},
                "min_images": self.min_images, "validation_images": dict(sorted(
                    self.images.items()))}


def postprocess_from_dict(values: dict) -> PostProcess | PostProcessByModality:
    """The post-processing a ``to_dict()`` describes: one shared setting (its fields, as in
    every ``postprocess.json``) or one per modality (``shared`` and ``by_modality``).

    Not built in a notebook: a run folder reads its ``postprocess.json`` with it.
    """
    if "shared" not in values:
        return PostProcess(**values)
    return PostProcessByModality(PostProcess(**values["shared"]),
                                 {m: PostProcess(**v) for m, v in values["by_modality"].items()},
                                 int(values.get("min_images", 0)),
                                 dict(values.get("validation_images", {})))


def score_image(true_labels: np.ndarray, pred_labels: np.ndarray) -> dict:
    """DSB score, pixel Dice and the true and predicted nucleus counts of one image.

    Used in notebook 11.
    """
    return {"dsb": dsb_score(true_labels, pred_labels),
            "dice": float(pixel_dice(true_labels > 0, pred_labels > 0)),
            "n_true": int(len(np.unique(true_labels)) - 1),
            "n_pred": int(len(np.unique(pred_labels)) - 1)}


def score_samples(samples, probabilities, post: PostProcess | PostProcessByModality,
                  errors: bool = False, iou: float = 0.5) -> pd.DataFrame:
    """One row per image: id, modality, size, DSB score, pixel Dice, true and predicted counts.

    ``errors=True`` adds what happened to the nuclei at IoU ``iou``
    (:func:`unet_lesson.metrics.object_errors`): ``true``, ``predicted``, ``matched``,
    ``missed``, ``merged`` (true nuclei inside a prediction that covers several), ``split``
    (true nuclei cut into several predictions), ``false positives`` and ``merges``
    (predictions covering several nuclei). The DSB score counts a merge of two nuclei as one
    false positive and two misses; these columns name it. Each image is post-processed with
    the setting of its modality (:class:`PostProcessByModality`) or the one ``post``.

    Used in notebooks 11 and 12.
    """
    rows = []
    for sample, probs in zip(samples, probabilities, strict=True):
        modality = modality_of(sample.image)
        pred = post(probs, modality)
        row = {"image_id": sample.image_id, "modality": modality,
               "height": sample.labels.shape[0], "width": sample.labels.shape[1],
               **score_image(sample.labels, pred)}
        if errors:
            row.update(object_errors(sample.labels, pred, iou=iou).counts())
        rows.append(row)
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


# The post-processing settings tried (coordinate ascent over this grid: tune_postprocessing).
# Wide enough that the optimum of a trained network is inside, not on the edge
POSTPROCESS_GRID = {"threshold": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                    "min_size": [4, 8, 16, 32, 64],
                    "interior_threshold": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
MIN_MODALITY_IMAGES = 8  # validation images a modality needs for a setting of its own


def tune_postprocessing(samples, probabilities, target: str, passes: int = 2,
                        by_modality: bool = False, min_images: int | None = None,
                        cache: dict | None = None
                        ) -> tuple[PostProcess | PostProcessByModality, pd.DataFrame]:
    """Choose the post-processing on (validation!) samples; returns the best and every try.

    Coordinate ascent over :data:`POSTPROCESS_GRID` from the defaults: each parameter in turn
    is set to the best of its candidate values with the others fixed, ``passes`` times over
    (a few dozen evaluations instead of the 245 of the full grid; ``interior_threshold`` only
    for a three-class target). Never call this with test images: the reported test score must
    not have chosen anything.

    ``by_modality``: then also one setting per modality, by the same search on that modality's
    images from the shared setting, for each modality with at least ``min_images`` of them
    (default :data:`MIN_MODALITY_IMAGES`; the others keep the shared one): a
    :class:`PostProcessByModality`; the grid then has a ``modality`` column (``"all"`` for the
    shared search).

    ``cache``: a dict of the per-image scores already computed, ``(setting, image id) ->
    DSB``, filled in as the search goes; pass the same one to searches over overlapping
    images *with the same probabilities* (cross-fitting) and no image is post-processed twice
    with one setting.

    Used in notebook 11.
    """
    candidates = {k: v for k, v in POSTPROCESS_GRID.items()
                  if k != "interior_threshold" or target == "three_class"}
    cache = {} if cache is None else cache
    shared, grid = _coordinate_ascent(samples, probabilities, PostProcess.for_target(target),
                                      candidates, passes, cache)
    if not by_modality:
        return shared, grid
    min_images = MIN_MODALITY_IMAGES if min_images is None else min_images
    modalities = [modality_of(s.image) for s in samples]
    images = {m: modalities.count(m) for m in sorted(set(modalities))}
    chosen, grids = {}, [grid.assign(modality="all")]
    for modality, count in images.items():
        if count < min_images:
            continue  # too few to choose on: the shared setting
        mine = [i for i, m in enumerate(modalities) if m == modality]
        chosen[modality], tried = _coordinate_ascent(
            [samples[i] for i in mine], [probabilities[i] for i in mine], shared, candidates,
            passes, cache)
        grids.append(tried.assign(modality=modality))
    return (PostProcessByModality(shared, chosen, min_images, images),
            pd.concat(grids, ignore_index=True))


def _coordinate_ascent(samples, probabilities, start: PostProcess, candidates: dict,
                       passes: int, cache: dict) -> tuple[PostProcess, pd.DataFrame]:
    """The best setting found from ``start``, and every setting tried with its mean DSB."""
    tried: dict[PostProcess, float] = {}

    def image_score(post: PostProcess, sample, probs) -> float:
        key = (post, sample.image_id)
        if key not in cache:
            cache[key] = dsb_score(sample.labels, post(probs))
        return cache[key]

    def score(post: PostProcess) -> float:
        if post not in tried:
            tried[post] = float(np.mean([image_score(post, s, p) for s, p in
                                         zip(samples, probabilities, strict=True)]))
        return tried[post]

    best = start
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


@dataclass
class HeldOut:
    """What :func:`score_held_out` found: the post-processing chosen on validation (and every
    setting tried), one score table per held-out split, the split to report (``test``, or
    ``val`` where a run has no test split) and its probabilities.

    Not built in a notebook: :func:`score_held_out` returns it.
    """

    post: PostProcess | PostProcessByModality
    grid: pd.DataFrame
    scores: dict[str, pd.DataFrame]
    reported: str
    probabilities: list = field(repr=False)
    seconds: float = 0.0

    def metrics(self) -> dict:
        """``{"reported_split": ..., "test": {...}, "val": {...}, "val_seen": {...}}``: each
        split's :func:`summarise`."""
        return {"reported_split": self.reported,
                **{name: summarise(table) for name, table in self.scores.items()}}


def score_held_out(net, parts: dict[str, list], cfg, device=None, tta: bool = False
                   ) -> HeldOut:
    """Score a trained network on its held-out images: choose the post-processing on
    ``parts["val"]`` (:func:`tune_postprocessing`, per modality with the config's
    ``postprocess_by_modality``), then score ``val``, ``val_seen`` (if any) and ``test``
    (once, with what validation chose). ``tta``: average the 8 flips and
    rotations at prediction.

    With a group split: ``val`` holds out whole acquisition groups (it chose the checkpoint
    and the post-processing), ``val_seen`` holds images of the training groups the network did
    not train on (what a random split would report), ``test`` other held-out groups.

    Not built in a notebook: a run folder's ``finish`` writes what it returns.
    """
    started = time.perf_counter()
    val = parts["val"]
    val_probs = predict_samples(net, val, cfg, device, tta, desc="validation")
    post, grid = tune_postprocessing(val, val_probs, cfg.target,
                                     by_modality=cfg.postprocess_by_modality)
    scores = {"val": score_samples(val, val_probs, post)}
    reported, probabilities = "val", val_probs
    for name in ("val_seen", "test"):
        if parts.get(name):
            probs = predict_samples(net, parts[name], cfg, device, tta, desc=name)
            scores[name] = score_samples(parts[name], probs, post)
            if name == "test":
                reported, probabilities = "test", probs
    return HeldOut(post, grid, scores, reported, probabilities,
                   round(time.perf_counter() - started, 1))
