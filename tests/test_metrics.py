"""Pixel IoU/Dice, the one-pass IoU matrix and the Data Science Bowl score, against brute-force
loops and hand-made cases whose numbers are worked out in the comments."""

import numpy as np
import pytest
import torch

from unet_lesson import metrics
from unet_lesson.instances import watershed_split
from unet_lesson.toy import fake_probability, synthetic_nuclei

THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# ---------------------------------------------------------------- brute-force references


def brute_iou_matrix(true, pred):
    t_ids = [k for k in np.unique(true) if k > 0]
    p_ids = [k for k in np.unique(pred) if k > 0]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for i, a in enumerate(t_ids):
        for j, b in enumerate(p_ids):
            inter = np.sum((true == a) & (pred == b))
            iou[i, j] = inter / np.sum((true == a) | (pred == b))
    return iou, t_ids, p_ids


def brute_dsb(true, pred):
    """Loops over thresholds and pairs, with explicit one-to-one matching."""
    iou, t_ids, p_ids = brute_iou_matrix(true, pred)
    if not t_ids and not p_ids:
        return 1.0
    scores = []
    for t in THRESHOLDS:
        used, tp = set(), 0
        for i in range(len(t_ids)):
            for j in range(len(p_ids)):
                if j not in used and iou[i, j] > t:
                    used.add(j)
                    tp += 1
                    break
        fp, fn = len(p_ids) - tp, len(t_ids) - tp
        scores.append(tp / (tp + fp + fn))
    return float(np.mean(scores))


def _pairs():
    """(true, pred) label images: splits, merges, shifts, deletions, relabelled ids."""
    rng = np.random.default_rng(0)
    out = []
    for seed in range(4):
        true = synthetic_nuclei((64, 80), 10, seed=seed)
        out.append((true, watershed_split(fake_probability(true, seed=seed))))
        shifted = np.roll(true, shift=(1, 2), axis=(0, 1))
        out.append((true, shifted))
        dropped = np.where(np.isin(true, [2, 5]), 0, true)  # two missed nuclei
        ids = rng.permutation(200)[: true.max() + 1] * 9 + 3  # non-contiguous ids
        out.append((true, np.where(dropped > 0, ids[dropped], 0)))
    return out


# ---------------------------------------------------------------- pixel scores


def test_pixel_scores_by_hand_and_empty_conventions():
    true = np.zeros((4, 4), dtype=bool)
    pred = np.zeros((4, 4), dtype=bool)
    true[0, :4] = True  # 4 pixels
    pred[0, 1:4] = pred[1, 1:4] = True  # 6 pixels, 3 shared
    assert metrics.pixel_iou(true, pred) == pytest.approx(3 / 7)
    assert metrics.pixel_dice(true, pred) == pytest.approx(2 * 3 / 10)
    empty = np.zeros((4, 4), dtype=bool)
    assert metrics.pixel_iou(empty, empty) == 1.0 and metrics.pixel_dice(empty, empty) == 1.0
    assert metrics.pixel_iou(true, empty) == 0.0 and metrics.pixel_dice(empty, pred) == 0.0
    labels = true.astype(np.int32) * 7  # a label image counts as its nuclei (> 0)
    assert metrics.pixel_iou(labels, pred) == pytest.approx(3 / 7)


def test_pixel_scores_per_image_and_pooled_numpy_and_torch():
    rng = np.random.default_rng(1)
    true = rng.random((5, 12, 10)) > 0.6
    pred = rng.random((5, 12, 10)) > 0.5
    true[3], pred[3] = False, False  # an image where both are empty
    true[4] = False  # an image with nothing to find
    per_image = metrics.pixel_iou(true, pred)
    expected = []
    for t, p in zip(true, pred, strict=True):
        union = np.sum(t | p)
        expected.append(1.0 if union == 0 else np.sum(t & p) / union)
    np.testing.assert_allclose(per_image, expected)
    assert per_image[3] == 1.0 and per_image[4] == 0.0
    pooled = metrics.pixel_iou(true, pred, per_image=False)
    assert pooled == pytest.approx(np.sum(true & pred) / np.sum(true | pred))
    dice = metrics.pixel_dice(true, pred)
    np.testing.assert_allclose(dice, 2 * np.array(expected) / (1 + np.array(expected)))
    t_true, t_pred = torch.from_numpy(true), torch.from_numpy(pred)
    torch.testing.assert_close(metrics.pixel_iou(t_true, t_pred),
                               torch.tensor(expected, dtype=torch.float64))
    assert float(metrics.pixel_dice(t_true, t_pred, per_image=False)) == pytest.approx(
        metrics.pixel_dice(true, pred, per_image=False))


def test_pixel_scores_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        metrics.pixel_iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(H, W\) or a batch"):
        metrics.pixel_dice(np.zeros(4), np.zeros(4))


# ---------------------------------------------------------------- IoU matrix


@pytest.mark.parametrize("index", range(12))
def test_iou_matrix_equals_brute_force(index):
    true, pred = _pairs()[index]
    iou, t_ids, p_ids = metrics.iou_matrix(true, pred, return_ids=True)
    expected, e_t, e_p = brute_iou_matrix(true, pred)
    np.testing.assert_array_equal(t_ids, e_t)
    np.testing.assert_array_equal(p_ids, e_p)
    np.testing.assert_allclose(iou, expected, rtol=1e-12)


def test_iou_matrix_with_huge_ids_and_no_background():
    true = np.array([[0, 0, 5], [7, 7, 5]])
    pred = np.array([[4_000_000_000, 4_000_000_000, 3], [3, 3, 3]], dtype=np.int64)  # no 0
    np.testing.assert_allclose(metrics.iou_matrix(true, pred), brute_iou_matrix(true, pred)[0])
    assert metrics.iou_matrix(true, np.zeros_like(true)).shape == (2, 0)


def test_iou_matrix_refuses_bad_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.iou_matrix(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(TypeError, match="pred_labels must hold integer nucleus ids"):
        metrics.iou_matrix(np.zeros((3, 3), int), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="true_labels has negative ids"):
        metrics.iou_matrix(-np.ones((3, 3), int), np.zeros((3, 3), int))


# ---------------------------------------------------------------- DSB score


@pytest.mark.parametrize("index", range(12))
def test_dsb_score_equals_brute_force(index):
    true, pred = _pairs()[index]
    assert metrics.dsb_score(true, pred) == pytest.approx(brute_dsb(true, pred), abs=1e-12)


def _rect(labels, k, rows, cols):
    labels[rows[0]:rows[1], cols[0]:cols[1]] = k
    return labels


def test_split_nucleus():
    true = _rect(np.zeros((12, 22), int), 1, (0, 10), (0, 20))  # 200 px
    pred = _rect(_rect(np.zeros((12, 22), int), 1, (0, 10), (0, 12)), 2, (0, 10), (12, 20))
    # IoUs 120/200 = 0.6 and 80/200 = 0.4: a match only at t = 0.50, 0.55 (0.6 > 0.6 fails),
    # then TP 1, FP 1, FN 0 -> 1/2; elsewhere TP 0, FP 2, FN 1 -> 0. Mean: 2 * 0.5 / 10 = 0.1
    result = metrics.dsb_score(true, pred, details=True)
    assert result.score == pytest.approx(0.1)
    np.testing.assert_array_equal(result.tp, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(result.fp, [1, 1, 2, 2, 2, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(result.fn, [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert result.score == pytest.approx(brute_dsb(true, pred))


def test_merged_pair():
    equal = _rect(_rect(np.zeros((10, 20), int), 1, (0, 10), (0, 10)), 2, (0, 10), (10, 20))
    merged = (equal > 0).astype(int)
    # each half has IoU 100/200 = 0.5 with the merged blob: never > t, so the score is 0
    assert metrics.dsb_score(equal, merged) == 0.0
    unequal = _rect(_rect(np.zeros((10, 20), int), 1, (0, 10), (0, 14)), 2, (0, 10), (14, 20))
    # IoUs 140/200 = 0.7 and 60/200 = 0.3: TP 1, FP 0, FN 1 -> 1/2 at t = 0.50 .. 0.65
    # (four thresholds), 0 from 0.70 up. Mean: 4 * 0.5 / 10 = 0.2
    assert metrics.dsb_score(unequal, merged) == pytest.approx(0.2)


def test_missed_one():
    true = np.zeros((20, 20), int)
    for k, (r, c) in enumerate([(0, 0), (0, 10), (10, 0), (10, 10)], start=1):
        _rect(true, k, (r, r + 8), (c, c + 8))
    pred = np.where(true == 4, 0, true)
    # TP 3, FP 0, FN 1 at every threshold: 3/4
    assert metrics.dsb_score(true, pred) == pytest.approx(0.75)


def test_shifted_one():
    true = _rect(np.zeros((10, 14), int), 1, (0, 10), (0, 10))
    pred = _rect(np.zeros((10, 14), int), 1, (0, 10), (2, 12))
    # intersection 10 x 8 = 80, union 120, IoU 2/3: a match at 0.50, 0.55, 0.60, 0.65 -> 4/10
    assert metrics.dsb_score(true, pred) == pytest.approx(0.4)


def test_a_mix_with_a_false_positive():
    true = np.zeros((30, 40), int)
    _rect(true, 1, (0, 10), (0, 10))  # found exactly
    _rect(true, 2, (15, 25), (0, 10))  # found shifted by 2 px (IoU 2/3)
    _rect(true, 3, (15, 25), (25, 35))  # missed
    pred = np.zeros_like(true)
    _rect(pred, 10, (0, 10), (0, 10))
    _rect(pred, 20, (15, 25), (2, 12))
    _rect(pred, 30, (0, 5), (30, 35))  # a false positive
    # t <= 0.65: TP 2, FP 1, FN 1 -> 2/4; t >= 0.70: TP 1, FP 2, FN 2 -> 1/5
    # mean: (4 * 0.5 + 6 * 0.2) / 10 = 0.32
    result = metrics.dsb_score(true, pred, details=True)
    assert result.score == pytest.approx(0.32)
    np.testing.assert_allclose(result.per_threshold, [0.5] * 4 + [0.2] * 6)
    assert (result.n_true, result.n_pred) == (3, 3)
    np.testing.assert_allclose(result.thresholds, THRESHOLDS)


def test_empty_images():
    empty = np.zeros((8, 8), int)
    one = _rect(np.zeros((8, 8), int), 1, (2, 5), (2, 5))
    assert metrics.dsb_score(empty, empty) == 1.0
    assert metrics.dsb_score(one, empty) == 0.0
    assert metrics.dsb_score(empty, one) == 0.0
    assert metrics.dsb_score(one, one) == 1.0
    assert metrics.mean_dsb_score([empty, one, one], [empty, empty, one]) == pytest.approx(2 / 3)


def test_ids_do_not_matter():
    true, pred = _pairs()[0]
    lut = np.random.default_rng(3).permutation(10_000)[: pred.max() + 1] + 1
    relabelled = np.where(pred > 0, lut[pred], 0)
    assert metrics.dsb_score(true, relabelled) == metrics.dsb_score(true, pred)
    assert metrics.dsb_score(true * 1000, pred) == metrics.dsb_score(true, pred)


def test_thresholds_below_one_half_are_refused():
    one = _rect(np.zeros((8, 8), int), 1, (2, 5), (2, 5))
    with pytest.raises(ValueError, match=r"thresholds must be IoU values in \[0.5, 1\)"):
        metrics.dsb_score(one, one, thresholds=[0.3, 0.5])
    assert metrics.dsb_score(one, one, thresholds=[0.5, 0.9]) == 1.0
    with pytest.raises(ValueError, match="got 2 true and 1 predicted"):
        metrics.mean_dsb_score([one, one], [one])


def test_object_errors_name_merges_splits_misses_and_false_positives():
    from unet_lesson.metrics import object_errors

    true = np.zeros((40, 80), dtype=np.int32)
    true[2:12, 2:12] = 1  # matched
    true[2:12, 20:30] = 2  # merged with 3
    true[2:12, 30:40] = 3
    true[20:36, 2:18] = 4  # split in two
    true[20:30, 60:70] = 5  # missed
    pred = np.zeros_like(true)
    pred[2:12, 3:12] = 7  # matches 1 (IoU 0.9)
    pred[2:12, 20:40] = 8  # one blob over 2 and 3
    pred[20:36, 2:10] = 9  # the two halves of 4
    pred[20:36, 10:18] = 10
    pred[30:38, 44:52] = 11  # on background: a false positive
    errors = object_errors(true, pred)
    assert dict(zip(errors.true_ids, errors.true_status, strict=True)) == {
        1: "matched", 2: "merged", 3: "merged", 4: "split", 5: "missed"}
    assert dict(zip(errors.pred_ids, errors.pred_status, strict=True)) == {
        7: "matched", 8: "merge", 9: "split", 10: "split", 11: "false positive"}
    assert dict(zip(errors.pred_ids, errors.partner_of_pred, strict=True)) == {
        7: 1, 8: 2, 9: 4, 10: 4, 11: 0}
    assert errors.counts() == {"true": 5, "predicted": 5, "matched": 1, "missed": 1,
                               "merged": 2, "split": 1, "false positives": 1, "merges": 1}
    # the matches are the DSB score's true positives at IoU 0.5
    assert metrics.dsb_score(true, pred, thresholds=[0.5], details=True).tp[0] == 1


def test_object_errors_on_empty_images():
    from unet_lesson.metrics import object_errors

    empty = np.zeros((8, 8), dtype=np.int32)
    one = empty.copy()
    one[2:5, 2:5] = 3
    assert object_errors(empty, empty).counts()["true"] == 0
    assert object_errors(one, empty).counts()["missed"] == 1
    assert object_errors(empty, one).counts()["false positives"] == 1
