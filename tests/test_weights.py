"""The paper's weight map: the fast windowed version against one full distance transform per
nucleus, a value worked out by hand, the class-balance term, and the stated error bound."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from unet_lesson import weights
from unet_lesson.toy import synthetic_nuclei


def brute_border(labels, w0=10.0, sigma=5.0):
    """The obvious version: one full-image distance transform per nucleus, sorted per pixel."""
    ids = [k for k in np.unique(labels) if k > 0]
    if len(ids) < 2:
        return np.zeros(labels.shape)
    d = np.sort(np.stack([ndi.distance_transform_edt(labels != k) for k in ids]), axis=0)
    term = w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    term[labels > 0] = 0.0
    return term


def _disks(shape, centres_radii):
    labels = np.zeros(shape, dtype=np.int32)
    for k, (r, c, rad) in enumerate(centres_radii, start=1):
        rr, cc = disk((r, c), rad, shape=shape)
        labels[rr, cc] = k
    return labels


CASES = {
    "touching clusters": synthetic_nuclei((96, 112), 14, seed=3),
    "dense clusters": synthetic_nuclei((128, 128), 30, radius=(4, 9), seed=7),
    "touching the image border": _disks((40, 50), [(0, 0, 6), (39, 20, 7), (10, 49, 8),
                                                   (20, 25, 5)]),
    "one nucleus": _disks((30, 30), [(15, 15, 5)]),
    "no nucleus": np.zeros((20, 25), dtype=np.int32),
    "far apart": _disks((200, 200), [(20, 20, 5), (180, 180, 5)]),
    "non-contiguous ids": np.where(synthetic_nuclei((64, 64), 8, seed=1) > 0,
                                   synthetic_nuclei((64, 64), 8, seed=1) * 37 + 1000, 0),
}


@pytest.mark.parametrize("name", CASES)
def test_fast_border_weights_equal_brute_force(name):
    labels = CASES[name]
    fast = weights.border_weights(labels, w0=10.0, sigma=5.0)
    assert fast.dtype == np.float32 and fast.shape == labels.shape
    np.testing.assert_allclose(fast, brute_border(labels), rtol=0, atol=1e-4)
    # the slow exact path of the package agrees too
    np.testing.assert_allclose(weights.border_weights(labels, tol=0), brute_border(labels),
                               rtol=0, atol=1e-6)


def test_border_term_by_hand():
    # two one-pixel nuclei 10 px apart on a row: the pixel halfway has d1 = d2 = 5
    labels = np.zeros((11, 21), dtype=np.int32)
    labels[5, 5], labels[5, 15] = 1, 2
    term = weights.border_weights(labels, w0=10.0, sigma=5.0)
    assert term[5, 10] == pytest.approx(10 * math.exp(-(10**2) / (2 * 25)), rel=1e-6)
    assert term[5, 5] == 0 and term[5, 15] == 0  # nucleus pixels get no border term
    # one column further: d1 = 4, d2 = 6, the same sum, the same weight
    assert term[5, 11] == pytest.approx(term[5, 10], rel=1e-6)


def test_border_term_lives_on_background_between_two_nuclei():
    labels = CASES["touching clusters"]
    term = weights.border_weights(labels)
    assert np.all(term[labels > 0] == 0)
    assert term.max() > 5  # the narrow gaps between touching nuclei weigh a lot
    assert np.all(weights.border_weights(CASES["one nucleus"]) == 0)
    assert np.all(weights.border_weights(CASES["no nucleus"]) == 0)


def test_cutoff_distance_solves_the_tolerance_equation():
    r = weights.cutoff_distance(10.0, 5.0, 1e-5)
    assert 10.0 * math.exp(-(r**2) / (2 * 25.0)) == pytest.approx(1e-5)
    assert r == pytest.approx(26.28, abs=0.01)
    assert weights.cutoff_distance(1e-6, 5.0, 1e-5) == 0.0
    with pytest.raises(ValueError, match="sigma and tol must be positive"):
        weights.cutoff_distance(10.0, 0.0)


def test_the_stated_maximum_error_holds_where_the_cutoff_acts():
    # a coarse tolerance so the cut-off matters: the error is positive but never above tol
    labels = _disks((120, 120), [(30, 30, 6), (30, 62, 6), (80, 50, 6), (60, 100, 5)])
    tol = 0.05
    error = np.abs(weights.border_weights(labels, tol=tol) - brute_border(labels))
    assert 0 < error.max() <= tol


def test_class_weights_are_inverse_frequencies_with_background_one():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[:2, :] = 1  # 20 nucleus pixels, 80 background
    assert weights.image_class_weights(labels) == (1.0, 4.0)
    w_c = weights.class_weight_map(labels)
    assert w_c.dtype == np.float32
    assert np.all(w_c[labels > 0] == 4.0) and np.all(w_c[labels == 0] == 1.0)
    tiny = np.zeros((10, 10), dtype=np.int32)
    tiny[0, 0] = 3  # 99 : 1 is clipped to 10
    assert weights.image_class_weights(tiny) == (1.0, 10.0)
    assert weights.image_class_weights(tiny, max_class_weight=200) == (1.0, 99.0)
    crowded = np.ones((10, 10), dtype=np.int32)
    crowded[0, :5] = 0  # 5 : 95 is clipped to 1/10
    assert weights.image_class_weights(crowded) == (1.0, pytest.approx(0.1))
    assert weights.image_class_weights(np.zeros((4, 4), dtype=np.int32)) == (1.0, 1.0)
    assert weights.dataset_class_weights([labels, np.zeros((10, 10), np.int32)]) == (1.0, 9.0)
    with pytest.raises(ValueError, match="max_class_weight must be >= 1"):
        weights.image_class_weights(labels, max_class_weight=0.5)


def test_weight_map_is_class_term_plus_border_term():
    labels = CASES["touching clusters"]
    w = weights.weight_map(labels, w0=10.0, sigma=5.0)
    assert w.dtype == np.float32 and w.shape == labels.shape
    expected = weights.class_weight_map(labels) + brute_border(labels)
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-4)
    fixed = weights.weight_map(labels, class_weights=(0.5, 2.0))
    np.testing.assert_allclose(fixed, np.where(labels > 0, 2.0, 0.5) + brute_border(labels),
                               rtol=0, atol=1e-4)


def test_bad_label_images_are_refused():
    with pytest.raises(TypeError, match="integer nucleus ids"):
        weights.weight_map(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D label image"):
        weights.weight_map(np.zeros((2, 4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="negative ids"):
        weights.weight_map(-np.ones((4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="tol must be >= 0"):
        weights.border_weights(np.zeros((4, 4), dtype=np.int32), tol=-1)


def test_fast_equals_brute_force_on_a_real_image(real_dsb_root):
    from skimage.io import imread

    folder = sorted(p for p in real_dsb_root.iterdir() if p.is_dir())[1]
    masks = sorted((folder / "masks").glob("*.png"))
    labels = np.zeros(imread(masks[0]).shape[:2], np.int32)
    for k, path in enumerate(masks, start=1):
        labels[(imread(path) > 0) & (labels == 0)] = k
    np.testing.assert_allclose(weights.border_weights(labels), brute_border(labels),
                               rtol=0, atol=1e-4)


def test_open_gaps_separates_every_touching_pair():
    labels = CASES["dense clusters"]
    touching = weights.touching_pixels(labels)
    h, w = labels.shape
    expected = np.zeros_like(touching)  # the definition, pixel by pixel
    for y in range(h):
        for x in range(w):
            if labels[y, x] == 0:
                continue
            near = labels[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            expected[y, x] = np.any((near > 0) & (near != labels[y, x]))
    np.testing.assert_array_equal(touching, expected)
    assert touching.any()
    opened = weights.open_gaps(labels)
    assert opened.dtype == labels.dtype
    assert not weights.touching_pixels(opened).any()  # no two nuclei are neighbours any more
    assert np.array_equal(opened[~touching], labels[~touching])
    assert np.array_equal(np.unique(opened), np.unique(labels))  # no nucleus vanished here
    # the gap is background with two nuclei close by: the border term is large on it
    gap = touching & (opened == 0)
    assert weights.border_weights(opened)[gap].mean() > 5
