"""From probabilities to nuclei: components against scikit-image, the watershed split beating
plain components on touching nuclei, the three-class target and its decoding."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.draw import disk
from skimage.measure import label as sk_label

from unet_lesson import instances, toy
from unet_lesson.metrics import dsb_score, iou_matrix


def _same_partition(a, b):
    """Two label images describe the same nuclei (up to renumbering)."""
    iou = iou_matrix(a, b)
    return iou.shape[0] == iou.shape[1] and np.allclose(np.sort(iou.max(1)), 1.0)


def test_synthetic_nuclei_are_deterministic_and_touch():
    a = toy.synthetic_nuclei((96, 96), 12, seed=5)
    assert np.array_equal(a, toy.synthetic_nuclei((96, 96), 12, seed=5))
    assert not np.array_equal(a, toy.synthetic_nuclei((96, 96), 12, seed=6))
    assert a.dtype == np.int32 and a.max() == 12
    assert np.array_equal(np.unique(a), np.arange(13))  # ids 1..N, all present
    # some nuclei touch: a pixel whose right or lower neighbour is another nucleus
    right = (a[:, :-1] > 0) & (a[:, 1:] > 0) & (a[:, :-1] != a[:, 1:])
    down = (a[:-1] > 0) & (a[1:] > 0) & (a[:-1] != a[1:])
    assert right.sum() + down.sum() > 10
    prob = toy.fake_probability(a, seed=0)
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1


def test_connected_components_match_scikit_image():
    labels = toy.synthetic_nuclei((80, 90), 10, seed=2)
    prob = toy.fake_probability(labels, seed=2)
    ours = instances.connected_components(prob, min_size=0, fill_holes=False)
    theirs = sk_label(prob > 0.5, connectivity=2)  # 8-connectivity
    assert ours.dtype == np.int32 and ours.max() == theirs.max()
    assert _same_partition(ours, theirs)


def test_holes_are_filled_and_tiny_objects_removed():
    prob = np.zeros((40, 40), dtype=np.float32)
    rr, cc = disk((15, 15), 8)
    prob[rr, cc] = 0.9
    prob[14:17, 14:17] = 0.1  # a hole in the nucleus
    prob[35:38, 35:38] = 0.9  # a 9-pixel speck
    labels = instances.connected_components(prob)
    assert labels.max() == 1 and labels[15, 15] == 1 and labels[36, 36] == 0
    kept = instances.connected_components(prob, fill_holes=False, min_size=5)
    assert kept.max() == 2 and kept[15, 15] == 0
    sizes = np.bincount(kept.ravel())  # [background, ring, speck]
    assert sizes[2] == 9
    cleaned = instances.remove_small_objects(kept, min_size=10)  # ids are kept
    np.testing.assert_array_equal(cleaned, np.where(kept == 2, 0, kept))
    assert np.array_equal(instances.remove_small_objects(kept, min_size=9), kept)


def test_watershed_splits_touching_nuclei_and_raises_the_dsb_score():
    cc_scores, ws_scores = [], []
    for seed in range(5):
        true = toy.synthetic_nuclei((128, 128), 14, seed=seed)
        prob = toy.fake_probability(true, seed=seed)
        cc = instances.connected_components(prob)
        ws = instances.watershed_split(prob)
        assert ws.max() > cc.max()  # merged blobs were split
        cc_scores.append(dsb_score(true, cc))
        ws_scores.append(dsb_score(true, ws))
        assert ws_scores[-1] > cc_scores[-1]
    # measured: components 0.07..0.31 (mean 0.20), watershed 0.70..0.95 (mean 0.84)
    assert np.mean(cc_scores) < 0.3
    assert np.mean(ws_scores) > 0.75


def test_watershed_keeps_single_nuclei_whole_and_loses_no_blob():
    labels = np.zeros((60, 80), dtype=np.int32)
    for k, (r, c, rad) in enumerate([(15, 15, 9), (45, 60, 12), (10, 70, 3)], start=1):
        rr, cc = disk((r, c), rad, shape=labels.shape)
        labels[rr, cc] = k
    prob = (labels > 0).astype(np.float32)
    assert _same_partition(instances.watershed_split(prob), labels)
    assert instances.watershed_split(np.zeros((8, 8))).max() == 0
    # two blobs one pixel apart: the blurred distance may give them one peak; both are kept
    pair = np.zeros((20, 30), dtype=np.float32)
    pair[5:15, 4:14], pair[5:15, 15:25] = 1, 1
    assert instances.watershed_split(pair, h=5.0).max() == 2


def _brute_three_class(labels, r):
    """Border: another label within the disk of radius r; indices reflect at the edges."""
    h, w = labels.shape

    def reflect(i, n):
        return -i - 1 if i < 0 else (2 * n - i - 1 if i >= n else i)

    out = np.zeros(labels.shape, dtype=np.int64)
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
               if dy * dy + dx * dx <= r * r]
    for y in range(h):
        for x in range(w):
            if labels[y, x] == 0:
                continue
            near = {labels[reflect(y + dy, h), reflect(x + dx, w)] for dy, dx in offsets}
            out[y, x] = 1 if near == {labels[y, x]} else 2
    return out


@pytest.mark.parametrize("border_width", [1, 2, 3])
def test_three_class_target_matches_its_definition(border_width):
    labels = toy.synthetic_nuclei((40, 48), 6, seed=4)
    target = instances.three_class_target(labels, border_width)
    assert target.dtype == np.int64
    np.testing.assert_array_equal(target, _brute_three_class(labels, border_width))


def test_three_class_target_by_hand():
    labels = np.zeros((7, 10), dtype=np.int32)
    labels[:, :4] = 1  # touches the top, bottom and left edges of the image
    labels[:, 4:8] = 2  # touches nucleus 1
    target = instances.three_class_target(labels, border_width=1)
    np.testing.assert_array_equal(target[3], [1, 1, 1, 2, 2, 1, 1, 2, 0, 0])
    np.testing.assert_array_equal(target[0], target[3])  # the image edge is not a border


def test_three_class_decoding_recovers_the_nuclei():
    soft_scores = []
    for seed in range(3):
        true = toy.synthetic_nuclei((96, 96), 12, seed=seed)
        one_hot = np.eye(3)[instances.three_class_target(true)].transpose(2, 0, 1)  # (3, H, W)
        decoded = instances.labels_from_three_class(one_hot)
        assert decoded.max() == true.max()
        assert dsb_score(true, decoded) > 0.95
        blurred = ndi.gaussian_filter(one_hot, sigma=(0, 1, 1))  # soft, like a network
        soft = instances.probabilities_to_labels(torch.from_numpy(blurred))
        soft_scores.append(dsb_score(true, soft))
    # measured 0.98, 0.97, 0.81: the blur wipes out the thin interior of two small nuclei
    assert min(soft_scores) > 0.75 and np.mean(soft_scores) > 0.9


def test_a_nucleus_too_small_for_an_interior_is_kept():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:5, 2:5] = 1  # 3x3: all border at width 2
    labels[8:18, 8:18] = 2
    one_hot = np.eye(3)[instances.three_class_target(labels)].transpose(2, 0, 1)
    assert not (one_hot[1] * (labels == 1)).any()  # no interior seed for nucleus 1
    decoded = instances.labels_from_three_class(one_hot, min_size=4)
    assert _same_partition(decoded, labels)


def test_probabilities_to_labels_dispatches_and_refuses():
    true = toy.synthetic_nuclei((64, 64), 8, seed=1)
    prob = toy.fake_probability(true, seed=1)
    two = np.stack([1 - prob, prob])  # (2, H, W) softmax
    assert np.array_equal(instances.probabilities_to_labels(two),
                          instances.watershed_split(prob))
    assert np.array_equal(instances.probabilities_to_labels(prob, method="components"),
                          instances.connected_components(prob))
    with pytest.raises(ValueError, match="method must be 'components', 'watershed' or"):
        instances.probabilities_to_labels(prob, method="magic")
    with pytest.raises(ValueError, match=r"probs must be \(3, H, W\)"):
        instances.labels_from_three_class(two)
    with pytest.raises(ValueError, match=r"2-D probability map"):
        instances.watershed_split(two)
    with pytest.raises(ValueError, match="border_width must be >= 1"):
        instances.three_class_target(true, border_width=0)
