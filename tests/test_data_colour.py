"""Colour, blur, noise and scale augmentations: ranges, alignment, references, determinism."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import hed2rgb, rgb2hed, rgb2hsv

from unet_lesson.data import to_input
from unet_lesson.data.colour import (
    ColourAugment,
    apply_colour,
    contrast,
    gaussian_blur,
    gaussian_noise,
    hed_jitter,
    hue_saturation,
    invert,
    random_scale,
    rescale,
    rgb_to_hed,
    to_grey,
)
from unet_lesson.data.synthetic import synthetic_sample


def sample(modality="stained", seed=0, shape=(96, 128)):
    image, labels = synthetic_sample(np.random.default_rng(seed), modality, shape)
    return to_input(image), labels  # (3, H, W) float32 in [0, 1], (H, W)


# every augmentation on, strong
STRONG = ColourAugment(hed_p=1, hed_strength=0.3, hed_bias=0.05, hue_p=1, hue=0.3,
                       saturation=0.8, grey_p=0.0, invert_p=1, contrast_p=1, contrast=0.8,
                       blur_p=1, blur_sigma=3, noise_p=1, noise_std=0.2)


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Each augmentation
# --------------------------------------------------------------------------------------------


OPS = {
    "hed": lambda x, r: hed_jitter(x, r, 0.3, 0.05),
    "hue": lambda x, r: hue_saturation(x, r, 0.3, 0.8),
    "grey": lambda x, r: to_grey(x),
    "invert": lambda x, r: invert(x),
    "contrast": lambda x, r: contrast(x, r, 0.8),
    "blur": lambda x, r: gaussian_blur(x, r, 3.0),
    "noise": lambda x, r: gaussian_noise(x, r, 0.2),
}


@pytest.mark.parametrize("name", OPS)
def test_each_op_keeps_shape_and_range_and_is_seeded(name):
    image, _ = sample()
    before = image.copy()
    out = OPS[name](image, rng(1))
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(image, before)  # the input is not modified
    np.testing.assert_array_equal(OPS[name](image, rng(1)), out)
    if name not in ("grey", "invert"):  # random ones change with the seed
        assert not np.array_equal(OPS[name](image, rng(2)), out)


@pytest.mark.parametrize("name", ["hed", "hue", "grey", "invert", "contrast"])
def test_colour_ops_move_no_pixel(name):
    """A pixel-wise operation: pixels equal before are equal after (labels stay aligned)."""
    image, labels = sample(seed=3)
    # quantise so many pixels share a colour
    image = np.round(image * 8) / 8
    out = OPS[name](image, rng(4))
    colours = image.reshape(3, -1).T
    _, which = np.unique(colours, axis=0, return_inverse=True)
    flat = out.reshape(3, -1).T
    for k in range(which.max() + 1):
        members = flat[which.ravel() == k]
        assert np.ptp(members, axis=0).max() < 1e-6


def test_rgb_to_hed_matches_skimage_and_inverts_exactly():
    image, _ = sample(seed=5)
    rgb = np.moveaxis(image, 0, -1).astype(np.float64)
    ours, reference = rgb_to_hed(rgb), rgb2hed(rgb)
    positive = (ours >= 0).all(axis=-1)
    assert positive.any()
    # skimage's rgb2hed is ours with negative concentrations set to 0
    np.testing.assert_allclose(ours[positive], reference[positive], atol=1e-12)
    np.testing.assert_allclose(np.maximum(ours, 0), reference, atol=1e-12)
    np.testing.assert_allclose(hed2rgb(ours), rgb, atol=1e-9)


def test_hed_with_zero_strength_is_the_identity():
    image, _ = sample(seed=6)
    np.testing.assert_allclose(hed_jitter(image, rng(), strength=0.0, bias=0.0), image,
                               atol=1e-5)


def test_hed_scales_the_stains_it_should():
    image, _ = sample(seed=7)
    rgb = np.moveaxis(image, 0, -1).astype(np.float64)
    draw = rng(8)
    out = hed_jitter(image, draw, strength=0.2, bias=0.0)
    alpha = 1 + rng(8).uniform(-0.2, 0.2, size=3)  # the same draws
    hed_in = rgb_to_hed(rgb)
    hed_out = rgb_to_hed(np.moveaxis(out, 0, -1).astype(np.float64))
    inside = (np.moveaxis(out, 0, -1) > 1e-3).all(-1) & (np.moveaxis(out, 0, -1) < 1).all(-1)
    # where nothing was clipped, every stain concentration is scaled by its alpha
    np.testing.assert_allclose(hed_out[inside], hed_in[inside] * alpha, atol=2e-3)


def test_hue_saturation_keeps_grey_grey_and_shifts_hue():
    grey, _ = sample("brightfield", seed=9)
    np.testing.assert_allclose(hue_saturation(grey, rng(), 0.3, 0.5), grey, atol=1e-6)
    image, _ = sample(seed=9)
    out = hue_saturation(image, rng(10), hue=0.1, saturation=0.0)
    shift = rng(10).uniform(-0.1, 0.1)
    h_in = rgb2hsv(np.moveaxis(image, 0, -1))
    h_out = rgb2hsv(np.moveaxis(out, 0, -1))
    coloured = h_in[..., 1] > 0.2
    delta = (h_out[..., 0] - h_in[..., 0] - shift + 0.5) % 1.0 - 0.5
    assert np.abs(delta[coloured]).max() < 1e-3
    np.testing.assert_allclose(h_out[..., 1:], h_in[..., 1:], atol=1e-5)


def test_grey_invert_contrast_blur_noise_properties():
    image, labels = sample("fluorescence", seed=11)
    grey = to_grey(image)
    np.testing.assert_allclose(grey, np.broadcast_to(image.mean(0), image.shape), atol=1e-6)
    np.testing.assert_allclose(invert(invert(image)), image, atol=1e-6)
    np.testing.assert_allclose(contrast(image, rng(), 0.0), image, atol=1e-6)
    # contrast about the mean: the mean moves only by clipping
    low = contrast(image, rng(12), 0.5)
    assert abs(low.mean() - image.mean()) < 0.02
    # blur moves nothing: each nucleus's centre of brightness stays within a pixel
    blurred = gaussian_blur(image, rng(13), sigma=3.0)
    ids = np.arange(1, labels.max() + 1)
    big = ids[ndimage.sum(np.ones_like(labels), labels, ids) > 150]
    before = np.array(ndimage.center_of_mass(image[0], labels, big))
    after = np.array(ndimage.center_of_mass(blurred[0], labels, big))
    assert np.abs(after - before).max() < 1.0
    noisy = gaussian_noise(np.full((3, 64, 64), 0.5, np.float32), rng(14), std=0.1)
    std = rng(14).uniform(0, 0.1)
    assert noisy.std() == pytest.approx(std, rel=0.05)
    assert abs(noisy.mean() - 0.5) < 0.01


def test_colour_ops_need_three_channels():
    grey = np.full((1, 16, 16), 0.5, np.float32)
    with pytest.raises(ValueError, match="3 channels"):
        hed_jitter(grey, rng())
    with pytest.raises(ValueError, match="3 channels"):
        hue_saturation(grey, rng())
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        invert(np.zeros((16, 16), np.float32))


# --------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------


def test_default_config_changes_nothing():
    image, _ = sample(seed=15)
    assert all(getattr(ColourAugment(), f.name) == 0 for f in dataclasses.fields(ColourAugment)
               if f.name.endswith("_p"))
    np.testing.assert_array_equal(apply_colour(image, rng(), ColourAugment()), image)


def test_apply_colour_is_seeded_in_range_and_keeps_shape():
    for channels in (1, 3):
        image, _ = sample(seed=16)
        image = image[:channels]
        out = apply_colour(image, rng(17), STRONG)
        assert out.shape == image.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        np.testing.assert_array_equal(apply_colour(image, rng(17), STRONG), out)
        assert not np.array_equal(apply_colour(image, rng(18), STRONG), out)


def test_apply_colour_matches_the_ops_in_order():
    image, _ = sample(seed=19)
    cfg = ColourAugment(invert_p=1.0, contrast_p=1.0, contrast=0.4)
    out = apply_colour(image, rng(20), cfg)
    draw = rng(20)  # one draw per augmentation decides; hed, hue, grey have chance 0
    assert [draw.random() < p for p in (0.0, 0.0, 0.0, 1.0)] == [False] * 3 + [True]
    expected = invert(image)
    assert draw.random() < 1.0
    expected = contrast(expected, draw, 0.4)
    np.testing.assert_array_equal(out, expected)


def test_config_is_checked():
    for bad in ({"hed_p": 1.5}, {"noise_std": -0.1}, {"blur_p": float("nan")},
                {"contrast": 2.0}, {"hue_p": "often"}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            ColourAugment(**bad)


# --------------------------------------------------------------------------------------------
# Scale
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 0.75, 1.5, 2.0])
def test_rescale_keeps_ids_areas_and_alignment(factor):
    image, labels = sample("fluorescence", seed=21, shape=(128, 160))
    out_image, out_labels = rescale(image, labels, factor)
    shape = (round(128 * factor), round(160 * factor))
    assert out_image.shape == (3, *shape) and out_labels.shape == shape
    assert out_labels.dtype == labels.dtype
    assert set(np.unique(out_labels)) == set(np.unique(labels))
    areas = np.bincount(labels.ravel())[1:]
    new_areas = np.bincount(out_labels.ravel(), minlength=areas.size + 1)[1:]
    big = areas >= 100
    ratio = new_areas[big] / (areas[big] * factor ** 2)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    assert np.abs(ratio - 1).max() < 0.3
    # the zoomed image still shows its nuclei where the zoomed labels are
    reference = ndimage.zoom((labels > 0).astype(float), (shape[0] / 128, shape[1] / 160),
                             order=0, grid_mode=True, mode="grid-constant")
    agree = ((out_labels > 0) == (reference > 0.5)).mean()
    assert agree > 0.97
    bright = out_image.mean(0)
    assert bright[out_labels > 0].mean() > bright[out_labels == 0].mean() + 0.1


def test_rescale_never_loses_a_tiny_nucleus():
    labels = np.zeros((64, 64), np.int32)
    labels[10, 11] = 1  # one-pixel nuclei fall between the samples of a 1/4 zoom
    labels[40, 41] = 2
    labels[20:40, 20:40] = 3
    labels[5, 50] = 4
    image = np.repeat((labels > 0)[None].astype(np.float32), 3, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no nucleus dropped here, so no warning
        _, small = rescale(image, labels, 0.25)
    assert set(np.unique(small)) == {0, 1, 2, 3, 4}
    assert (small == 1).sum() == 1 and (small == 3).sum() == 25
    r, c = np.argwhere(small == 1)[0]
    assert (r, c) == (10 // 4, 11 // 4)  # put back where it was
    # two one-pixel nuclei landing on the same output pixel: one is dropped, loudly
    crowded = np.zeros((8, 8), np.int32)
    crowded[0, 1], crowded[1, 0] = 1, 2
    with pytest.warns(RuntimeWarning, match="1 nucleus"):
        _, tiny = rescale(np.zeros((1, 8, 8), np.float32), crowded, 0.25)
    assert len(set(np.unique(tiny)) - {0}) == 1


def test_random_scale_and_rescale_errors():
    image, labels = sample(seed=22, shape=(64, 64))
    factors = [random_scale(rng(s)) for s in range(400)]
    assert random_scale(rng(23)) == random_scale(rng(23))  # seeded
    assert 0.5 <= min(factors) and max(factors) <= 2.0
    # log-uniform: as likely to halve as to double, so log(factor) has mean about 0
    assert abs(np.mean(np.log(factors))) < 0.06
    assert random_scale(rng(23)) == np.exp(rng(23).uniform(np.log(0.5), np.log(2.0)))
    with pytest.raises(ValueError, match="factor"):
        rescale(image, labels, 0.0)
    with pytest.raises(ValueError, match="differ in size"):
        rescale(image, labels[:10], 2.0)
    with pytest.raises(ValueError, match="integers"):
        rescale(image, labels.astype(float), 2.0)
    with pytest.raises(ValueError, match="low"):
        random_scale(rng(), low=2.0, high=1.0)
