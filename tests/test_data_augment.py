"""Augmentations: the paper's elastic deformation against references, and label integrity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet_lesson.data import (
    Augment,
    augment_window,
    elastic_deform,
    elastic_displacement,
    flip_rotate,
    grey_values,
    synthetic_sample,
    warp,
)


def keys(t, a=-0.75):
    """The cubic convolution kernel (Keys 1981) that torch's bicubic modes use."""
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def bicubic_upsample_reference(coarse, size):
    """Brute-force bicubic interpolation of a (g, g) grid to (size, size), corners aligned."""
    g = coarse.shape[0]
    out = np.zeros((size, size))
    for i, j in np.ndindex(size, size):
        sy, sx = i * (g - 1) / (size - 1), j * (g - 1) / (size - 1)
        y0, x0 = int(np.floor(sy)), int(np.floor(sx))
        for m in range(-1, 3):
            for n in range(-1, 3):
                yy, xx = min(max(y0 + m, 0), g - 1), min(max(x0 + n, 0), g - 1)
                out[i, j] += keys(sy - (y0 + m)) * keys(sx - (x0 + n)) * coarse[yy, xx]
    return out


@pytest.fixture
def nuclei():
    image, labels = synthetic_sample(np.random.default_rng(0), "fluorescence", (96, 96))
    return np.moveaxis(image, -1, 0).astype(np.float32) / 255.0, labels


def test_displacements_are_gaussian_grid_values_interpolated_bicubically():
    field = elastic_displacement(np.random.default_rng(5), (33, 33), grid=3, sigma=10.0)
    coarse = np.random.default_rng(5).normal(0.0, 10.0, size=(2, 3, 3))
    assert field.shape == (2, 33, 33) and field.dtype == np.float32
    # the grid points are the corners and the middle: the field passes through the draws
    for gy, gx in np.ndindex(3, 3):
        np.testing.assert_allclose(field[:, 16 * gy, 16 * gx], coarse[:, gy, gx], rtol=1e-5)
    for axis in range(2):
        np.testing.assert_allclose(field[axis], bicubic_upsample_reference(coarse[axis], 33),
                                   rtol=1e-4, atol=1e-4)


def test_zero_and_integer_displacements_move_pixels_exactly(nuclei):
    image, labels = nuclei
    same, same_labels = warp(image, labels, np.zeros((2, 96, 96), np.float32))
    np.testing.assert_allclose(same, image, atol=1e-5)
    np.testing.assert_array_equal(same_labels, labels)
    shift = np.zeros((2, 80, 80), np.float32)
    shift[0], shift[1] = 3, -2  # sample from (y + 8 + 3, x + 8 - 2)
    moved, moved_labels = warp(image, labels, shift, offset=(8, 8))
    np.testing.assert_allclose(moved, image[:, 11:91, 6:86], atol=1e-5)
    np.testing.assert_array_equal(moved_labels, labels[11:91, 6:86])


def test_outside_positions_are_mirrored(nuclei):
    image, _ = nuclei
    labels = np.arange(96 * 96, dtype=np.int32).reshape(96, 96)  # every pixel its own id
    shift = np.full((2, 96, 96), -5, np.float32)  # everything pulled 5 px up and left
    moved, moved_labels = warp(image, labels, shift)
    # reflection about the border pixels' centres (numpy's "reflect", as the tiles mirror)
    padded = np.pad(labels, 5, mode="reflect")[:96, :96]
    assert not np.array_equal(padded, np.pad(labels, 5, mode="symmetric")[:96, :96])
    np.testing.assert_array_equal(moved_labels, padded)
    np.testing.assert_allclose(moved, np.pad(image, ((0, 0), (5, 0), (5, 0)), mode="reflect")
                               [:, :96, :96], atol=1e-5)


def test_labels_follow_nearest_neighbour_and_the_image_bicubic(nuclei):
    image, labels = nuclei
    rng = np.random.default_rng(2)
    displacement = elastic_displacement(rng, (64, 64), sigma=4.0)
    moved, moved_labels = warp(image, labels, displacement, offset=(16, 16))
    rows = np.arange(64)[:, None] + 16 + displacement[0]
    cols = np.arange(64)[None, :] + 16 + displacement[1]
    # nearest neighbour, away from exact half-way points where rounding conventions differ
    clear = (np.abs(rows % 1 - 0.5) > 1e-3) & (np.abs(cols % 1 - 0.5) > 1e-3)
    expected = labels[np.rint(rows).astype(int), np.rint(cols).astype(int)]
    np.testing.assert_array_equal(moved_labels[clear], expected[clear])
    # bicubic image values, by brute force with the Keys kernel (all taps inside here)
    y0, x0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    reference = np.zeros_like(moved)
    for m in range(-1, 3):
        for n in range(-1, 3):
            weight = keys(rows - (y0 + m)) * keys(cols - (x0 + n))
            reference += weight * image[:, y0 + m, x0 + n]
    np.testing.assert_allclose(moved, np.clip(reference, image.min(), image.max()), atol=1e-4)


def test_elastic_deformation_keeps_ids_and_image_label_alignment(nuclei):
    image, labels = nuclei
    coded = labels.astype(np.float32)[None] / 100.0  # the labels, as an image channel
    deformed, deformed_labels = elastic_deform(coded, labels, np.random.default_rng(4),
                                               margin=16)
    assert deformed.shape == (1, 64, 64) and deformed_labels.shape == (64, 64)
    assert deformed_labels.dtype == labels.dtype
    assert set(np.unique(deformed_labels)) <= set(np.unique(labels))
    # deep inside a nucleus (or the background) the bicubic image equals its label there
    deep = np.zeros((64, 64), bool)
    for k in np.unique(deformed_labels):
        deep |= ndimage.binary_erosion(deformed_labels == k, iterations=3)
    assert deep.sum() > 1000
    np.testing.assert_allclose(deformed[0][deep] * 100.0, deformed_labels[deep], atol=1e-3)


def test_flips_and_rotations_move_image_and_labels_together(nuclei):
    image, labels = nuclei
    coded = np.concatenate([image, labels[None].astype(np.float32)])
    seen = set()
    for seed in range(24):
        out, out_labels = flip_rotate(coded, labels, np.random.default_rng(seed))
        np.testing.assert_array_equal(out[-1], out_labels)
        candidates = [np.rot90(labels, k) for k in range(4)]
        candidates += [c[:, ::-1] for c in candidates]
        matches = [i for i, c in enumerate(candidates) if np.array_equal(c, out_labels)]
        assert matches
        seen.add(matches[0])
    assert len(seen) == 8, "all eight symmetries of the square should be drawn"
    tall = np.arange(12).reshape(3, 4)
    for seed in range(6):  # a non-square tile only turns by 0 or 180 degrees
        _, out = flip_rotate(tall[None].astype(np.float32), tall, np.random.default_rng(seed))
        assert out.shape == (3, 4)


def test_grey_values_stay_in_range_and_keep_the_order(nuclei):
    image, _ = nuclei
    for seed in range(5):
        out = grey_values(image, np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == image.shape
        assert 0.0 <= out.min() and out.max() <= 1.0
        order = np.argsort(image.ravel(), kind="stable")
        assert np.all(np.diff(out.ravel()[order]) >= -1e-6), "grey changes must be monotone"
    assert not np.allclose(grey_values(image, np.random.default_rng(0)), image)
    np.testing.assert_allclose(grey_values(image, np.random.default_rng(0), 0.0, 0.0, 0.0),
                               image, atol=1e-6)


def test_every_augmentation_keeps_labels_intact(nuclei):
    image, labels = nuclei
    original = set(np.unique(labels))
    configs = [Augment(), Augment(elastic=False), Augment(flips=False, rot90=False),
               Augment(grey=False), Augment(elastic_sigma=25.0)]
    for augment in configs:
        margin = augment.margin()
        window = np.pad(image, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
        window_labels = np.pad(labels, margin, mode="reflect")
        for seed in range(3):
            out, out_labels = augment_window(window, window_labels, np.random.default_rng(seed),
                                             augment, margin)
            assert out.shape == image.shape and out_labels.shape == labels.shape
            assert out.dtype == np.float32 and out_labels.dtype == labels.dtype
            assert set(np.unique(out_labels)) <= original, augment
    assert Augment().margin() == 40 and Augment(elastic=False).margin() == 0
    # elastic_p = 0: no deformation, only the central crop (then exact transforms)
    augment = Augment(elastic_p=0.0, grey=False)
    window = np.pad(image, ((0, 0), (40, 40), (40, 40)), mode="reflect")
    out, out_labels = augment_window(window, np.pad(labels, 40, mode="reflect"),
                                     np.random.default_rng(0), augment, 40)
    rng = np.random.default_rng(0)
    rng.random()  # elastic_p draws one number first
    plain, plain_labels = flip_rotate(image, labels, rng)
    np.testing.assert_array_equal(out_labels, plain_labels)
    np.testing.assert_allclose(out, plain)
