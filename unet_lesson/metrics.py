r"""How good is a segmentation? Pixel scores, and the Data Science Bowl's nucleus score.

The U-Net paper (section 4) scores the EM challenge by warping, Rand and pixel errors and the
cell tracking challenge by IoU; the 2018 Data Science Bowl scores **nuclei**:

* **Pixel scores** (:func:`pixel_iou`, :func:`pixel_dice`) compare two masks pixel by pixel:
  :math:`IoU = |T \cap P| / |T \cup P|`, :math:`Dice = 2|T \cap P| / (|T| + |P|)`.
  Convention: two empty masks agree perfectly (1.0); exactly one empty mask scores 0.0. They
  work on numpy arrays and torch tensors, per image or pooled over a batch.
* **The nucleus IoU matrix** (:func:`iou_matrix`): the IoU of every true nucleus with every
  predicted one, from one joint histogram of label pairs (``np.bincount``), not a loop.
* **The DSB score** (:func:`dsb_score`): for each IoU threshold t in 0.50, 0.55, ..., 0.95, a
  predicted nucleus matches a true one when their IoU > t; with TP matches, FP unmatched
  predictions and FN unmatched true nuclei the image scores the mean over t of
  :math:`TP / (TP + FP + FN)`. Both images empty: 1.0; exactly one empty: 0.0. The data-set
  score (:func:`mean_dsb_score`) is the mean over images.

Why the matching is one-to-one without a matching algorithm: two nuclei of the same image do
not overlap, so if a prediction had IoU > 0.5 with two true nuclei it would need more than half
of its union with each, i.e. more than its own area. At t >= 0.5 every true nucleus has at most
one partner and vice versa, so TP is simply the number of pairs with IoU > t.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_label_image

DSB_THRESHOLDS = np.round(np.arange(0.50, 0.951, 0.05), 2)  # 0.50, 0.55, ..., 0.95


# --------------------------------------------------------------------------------------------
# Pixel scores
# --------------------------------------------------------------------------------------------


def _pixel_counts(true, pred, per_image: bool):
    if tuple(true.shape) != tuple(pred.shape):
        raise ValueError(f"true and pred must have the same shape, got {tuple(true.shape)} "
                         f"and {tuple(pred.shape)}")
    if true.ndim not in (2, 3):
        raise ValueError(f"expected masks (H, W) or a batch (B, H, W), got shape "
                         f"{tuple(true.shape)}")
    t, p = true > 0, pred > 0  # a mask, or a label image (any nucleus id counts)
    dims = (-2, -1) if per_image else tuple(range(true.ndim))
    inter, n_true, n_pred = (x.sum(dims) for x in (t & p, t, p))
    if isinstance(inter, torch.Tensor):
        return inter.double(), n_true.double(), n_pred.double()
    return (np.asarray(x, dtype=np.float64) for x in (inter, n_true, n_pred))


def _where_empty(both_empty, value, score):
    if isinstance(score, torch.Tensor):
        return torch.where(both_empty, torch.ones_like(score), value / score.clamp_min(1))
    out = np.where(both_empty, 1.0, value / np.maximum(score, 1))
    return float(out) if out.ndim == 0 else out


def pixel_iou(true, pred, per_image: bool = True):
    r"""Pixel IoU :math:`|T \cap P| / |T \cup P|` of masks or label images (> 0 is nucleus).

    ``true``, ``pred``: (H, W) or (B, H, W), numpy or torch. ``per_image=True`` gives one score
    per image (one value for (H, W), shape (B,) for a batch); ``False`` pools every pixel of the
    batch into one score. numpy in: a float or float64 array out; torch in: a float64 tensor
    out (on the inputs' device). Both empty: 1.0; one empty: 0.0.

    Built in notebook 09.
    """
    inter, n_true, n_pred = _pixel_counts(true, pred, per_image)
    union = n_true + n_pred - inter
    return _where_empty(union == 0, inter, union)


def pixel_dice(true, pred, per_image: bool = True):
    r"""Pixel Dice :math:`2|T \cap P| / (|T| + |P|)`; same shapes and conventions as IoU.

    Built in notebook 09.
    """
    inter, n_true, n_pred = _pixel_counts(true, pred, per_image)
    total = n_true + n_pred
    return _where_empty(total == 0, 2 * inter, total)


# --------------------------------------------------------------------------------------------
# Nuclei: IoU matrix and the DSB score
# --------------------------------------------------------------------------------------------


def _compact(labels: np.ndarray):
    """(index image with 0 = background and 1..n the nuclei in id order, their ids, n)."""
    flat = labels.ravel().astype(np.int64, copy=False)
    top = int(flat.max(initial=0))
    if top <= 4 * flat.size + 1024:  # small ids: a lookup table (linear time)
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], ids, ids.size
    ids, index = np.unique(flat, return_inverse=True)  # huge ids: sort instead
    if ids[0] != 0:
        return index + 1, ids, ids.size
    return index, ids[1:], ids.size - 1


def overlap_matrix(true_labels, pred_labels):
    """Pixels shared by every true nucleus (rows) and every predicted one (columns).

    Returns ``(overlap, true_area, pred_area, true_ids, pred_ids)``: ``overlap`` int64
    (n_true, n_pred), the areas (n_true,), (n_pred,) in pixels, the ids in increasing order.
    One joint histogram of (true index, pred index) pairs gives every intersection; the areas
    are its row and column sums (background included).

    Used in notebook 09.
    """
    true = check_label_image(true_labels, "true_labels")
    pred = check_label_image(pred_labels, "pred_labels")
    if true.shape != pred.shape:
        raise ValueError(f"true_labels {true.shape} and pred_labels {pred.shape} differ in shape")
    t_index, t_ids, n_t = _compact(true)
    p_index, p_ids, n_p = _compact(pred)
    joint = np.bincount(t_index * (n_p + 1) + p_index, minlength=(n_t + 1) * (n_p + 1))
    joint = joint.reshape(n_t + 1, n_p + 1)  # joint[i, j]: pixels with true i and pred j
    return joint[1:, 1:], joint.sum(1)[1:], joint.sum(0)[1:], t_ids, p_ids


def iou_matrix(true_labels, pred_labels, return_ids: bool = False):
    """IoU of every true nucleus (rows) with every predicted one (columns), in one pass.

    ``true_labels``, ``pred_labels``: (H, W) integer label images, 0 = background; ids need not
    be contiguous. Rows and columns follow the ids in increasing order. The intersections come
    from :func:`overlap_matrix`. Returns float64 (n_true, n_pred), or
    ``(iou, true_ids, pred_ids)``.

    Built in notebook 09.
    """
    overlap, area_t, area_p, t_ids, p_ids = overlap_matrix(true_labels, pred_labels)
    inter = overlap.astype(np.float64)
    iou = inter / (area_t[:, None] + area_p[None, :] - inter)  # unions are >= 1 pixel
    return (iou, t_ids, p_ids) if return_ids else iou


@dataclass(frozen=True)
class ObjectErrors:
    """What happened to every nucleus of one image (see :func:`object_errors`).

    ``true_status[k]`` for the true nucleus ``true_ids[k]``: ``"matched"``, ``"merged"``,
    ``"split"`` or ``"missed"``; ``pred_status[k]`` for ``pred_ids[k]``: ``"matched"``,
    ``"merge"`` (one prediction over several nuclei), ``"split"`` (a piece of one nucleus) or
    ``"false positive"``. ``partner_of_pred[k]``: the true id a prediction is paired with for
    colouring (its match, or the nucleus it mostly lies on; 0 for none).

    Not built in a notebook: :func:`object_errors` returns it.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_status: np.ndarray
    pred_status: np.ndarray
    partner_of_pred: np.ndarray

    def counts(self) -> dict[str, int]:
        """How many nuclei of each kind: matched, missed, merged, split, false positives."""
        t, p = list(self.true_status), list(self.pred_status)
        return {"true": len(t), "predicted": len(p), "matched": t.count("matched"),
                "missed": t.count("missed"), "merged": t.count("merged"),
                "split": t.count("split"), "false positives": p.count("false positive"),
                "merges": p.count("merge")}


def object_errors(true_labels, pred_labels, iou: float = 0.5, cover: float = 0.5
                  ) -> ObjectErrors:
    """Matched, missed, false-positive, merged and split nuclei of one image.

    * **matched**: a true and a predicted nucleus with IoU > ``iou`` (one-to-one from 0.5 up,
      as in the DSB score);
    * **merged**: unmatched true nuclei whose pixels lie mostly (> ``cover``) in the same
      prediction, when that prediction holds two or more such nuclei (it is a **merge**);
    * **split**: an unmatched true nucleus holding most (> ``cover``) of the pixels of two or
      more predictions (each a **split** piece);
    * **missed**: the other unmatched true nuclei; **false positive**: the other unmatched
      predictions.

    The DSB score counts a merge of two nuclei as one false positive and two false negatives;
    this names it.

    Built in notebook 09.
    """
    overlap, area_t, area_p, t_ids, p_ids = overlap_matrix(true_labels, pred_labels)
    inter = overlap.astype(np.float64)
    iou_m = inter / np.maximum(area_t[:, None] + area_p[None, :] - inter, 1)
    matched = iou_m > max(iou, 0.5)  # at most one True per row and per column
    t_matched, p_matched = matched.any(1), matched.any(0)
    true_status = np.where(t_matched, "matched", "missed").astype(object)
    pred_status = np.where(p_matched, "matched", "false positive").astype(object)
    partner = np.zeros(len(p_ids), dtype=np.int64)
    if len(p_ids) and len(t_ids):
        rows, cols = np.nonzero(matched)
        partner[cols] = t_ids[rows]
        # merges: true nuclei (unmatched) mostly inside one unmatched prediction
        host = inter.argmax(1)  # (n_true,) the prediction holding most of each nucleus
        inside = inter[np.arange(len(t_ids)), host] > cover * area_t
        for j in np.unique(host[inside & ~t_matched]):
            held = np.flatnonzero(inside & ~t_matched & (host == j))
            if len(held) >= 2 and not p_matched[j]:
                true_status[held], pred_status[j] = "merged", "merge"
                partner[j] = t_ids[held[0]]
        # splits: predictions (unmatched) mostly inside one unmatched true nucleus
        owner = inter.argmax(0)  # (n_pred,) the nucleus holding most of each prediction
        within = inter[owner, np.arange(len(p_ids))] > cover * area_p
        for i in np.unique(owner[within & ~p_matched]):
            pieces = np.flatnonzero(within & ~p_matched & (owner == i) & (pred_status ==
                                                                          "false positive"))
            if len(pieces) >= 2 and true_status[i] == "missed":
                true_status[i], pred_status[pieces] = "split", "split"
                partner[pieces] = t_ids[i]
    return ObjectErrors(t_ids, p_ids, true_status, pred_status, partner)


@dataclass(frozen=True)
class DSBScore:
    """The DSB score of one image with its per-threshold counts (arrays over ``thresholds``).

    Not built in a notebook: :func:`dsb_score` returns it with ``details=True``.
    """

    score: float
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    per_threshold: np.ndarray  # TP / (TP + FP + FN) at each threshold
    n_true: int
    n_pred: int


def _thresholds(thresholds) -> np.ndarray:
    t = np.asarray(DSB_THRESHOLDS if thresholds is None else thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or t.min() < 0.5 or t.max() >= 1.0:
        raise ValueError(f"thresholds must be IoU values in [0.5, 1) (matching is one-to-one "
                         f"only from 0.5 up), got {t}")
    return t


def dsb_score(true_labels, pred_labels, thresholds=None, details: bool = False):
    """The 2018 Data Science Bowl score of one image (see the module docstring).

    ``thresholds`` defaults to 0.50, 0.55, ..., 0.95. Returns a float, or a :class:`DSBScore`
    with TP, FP, FN and the score at each threshold when ``details=True``.

    Built in notebook 09; used in notebook 10.
    """
    t = _thresholds(thresholds)
    iou = iou_matrix(true_labels, pred_labels)
    n_true, n_pred = iou.shape
    matched = iou[iou > 0.5]  # candidate pairs: one-to-one above 0.5
    tp = (matched[:, None] > t[None, :]).sum(0)
    fp, fn = n_pred - tp, n_true - tp
    if n_true == 0 and n_pred == 0:
        per_threshold = np.ones_like(t)  # nothing to find and nothing found
    else:
        per_threshold = tp / (tp + fp + fn)
    score = float(per_threshold.mean())
    if not details:
        return score
    return DSBScore(score, t, tp, fp, fn, per_threshold, n_true, n_pred)


def mean_dsb_score(true_label_images: Iterable, pred_label_images: Iterable,
                   thresholds=None) -> float:
    """The data-set score: the mean over images of :func:`dsb_score`.

    Not built in a notebook: the tests and the benchmarks.
    """
    trues, preds = list(true_label_images), list(pred_label_images)
    if len(trues) != len(preds):
        raise ValueError(f"got {len(trues)} true and {len(preds)} predicted label images")
    if not trues:
        raise ValueError("no images to score")
    return float(np.mean([dsb_score(t, p, thresholds) for t, p in zip(trues, preds, strict=True)]))
