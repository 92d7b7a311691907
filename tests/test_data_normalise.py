"""The network's input modes: raw, percentile, invert (ranges, inversion, properties, errors)."""

from __future__ import annotations

import numpy as np
import pytest

from unet_lesson.data import modality_of, to_input
from unet_lesson.data.normalise import (
    INPUT_MODES,
    PERCENTILES,
    InputStats,
    bright_background,
    input_stats,
    to_network_input,
)
from unet_lesson.data.synthetic import synthetic_sample


def sample(modality, seed=0, shape=(96, 128)):
    return synthetic_sample(np.random.default_rng(seed), modality, shape)


def to_uint8(x):
    """A network input (C, H, W) in [0, 1] back to a uint8 (H, W, 3) image."""
    x = np.broadcast_to(x, (3,) + x.shape[1:])
    return np.round(np.moveaxis(x, 0, -1) * 255).astype(np.uint8)


MODALITIES = ("fluorescence", "brightfield", "stained")


@pytest.mark.parametrize("mode", INPUT_MODES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("modality", MODALITIES)
def test_shapes_types_and_ranges(mode, channels, modality):
    image, _ = sample(modality)
    x = to_network_input(image, mode, channels)
    assert x.shape == (channels, *image.shape[:2]) and x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    assert 0.0 <= x.min() and x.max() <= 1.0
    if mode != "raw":  # stretched: the full range is used
        assert x.min() == 0.0 and x.max() == 1.0
    again = to_network_input(image.copy(), mode, channels)
    np.testing.assert_array_equal(x, again)  # deterministic


@pytest.mark.parametrize("channels", [1, 3])
def test_raw_is_to_input(channels):
    image, _ = sample("stained")
    np.testing.assert_allclose(to_network_input(image, "raw", channels),
                               to_input(image, channels), rtol=0, atol=3e-7)
    assert input_stats(image, "raw") == InputStats(0.0, 255.0, False)


@pytest.mark.parametrize("channels", [1, 3])
def test_percentile_maps_the_percentiles_to_0_and_1(channels):
    image, _ = sample("fluorescence", seed=1)
    values = image.astype(np.float64)
    values = values.mean(axis=-1) if channels == 1 else values
    low, high = np.percentile(values, PERCENTILES)
    expected = np.clip((values - low) / (high - low), 0, 1)
    expected = expected[None] if channels == 1 else np.moveaxis(expected, -1, 0)
    x = to_network_input(image, "percentile", channels)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    # about 1% of the values at each end are clipped
    assert 0.005 <= (x == 0).mean() and 0.005 <= (x == 1).mean() <= 0.02


def test_percentile_undoes_exposure_and_offset():
    image, _ = sample("fluorescence", seed=2)
    x = to_network_input(image, "percentile", 3)
    # the same scene, twice as bright plus a camera offset of 10 grey levels
    brighter = np.clip(image.astype(np.int32) * 2 + 10, 0, 255).astype(np.uint8)
    assert brighter.max() < 255  # no saturation, so the change is exactly affine
    np.testing.assert_allclose(to_network_input(brighter, "percentile", 3), x, atol=1e-5)


@pytest.mark.parametrize("mode", ["percentile", "invert"])
def test_normalising_twice_changes_nothing(mode):
    for modality in MODALITIES:
        image, _ = sample(modality, seed=3)
        once = to_network_input(image, mode, 3)
        twice = to_network_input(to_uint8(once), mode, 3)
        # a normalised image is dark-background and already stretched: the same again,
        # up to rounding to uint8 and the clipped 1% moving the percentiles a little
        assert np.abs(twice - once).mean() < 0.02, modality


def test_invert_gives_every_modality_a_dark_background():
    for modality in MODALITIES:
        for seed in range(3):
            image, labels = sample(modality, seed=seed)
            assert bright_background(image) == (modality != "fluorescence")
            for channels in (1, 3):
                x = to_network_input(image, "invert", channels)
                assert modality_of(to_uint8(x)) == "fluorescence", (modality, seed, channels)
                # nuclei are brighter than the background, as in fluorescence
                grey = x.mean(axis=0)
                assert grey[labels > 0].mean() > grey[labels == 0].mean() + 0.1


def test_invert_is_percentile_of_the_inverted_image():
    for modality in MODALITIES:
        image, _ = sample(modality, seed=4)
        for channels in (1, 3):
            inverted = to_network_input(image, "invert", channels)
            reference = image if modality == "fluorescence" else 255 - image
            np.testing.assert_allclose(
                inverted, to_network_input(reference, "percentile", channels), atol=1e-5)
    image, _ = sample("stained", seed=4)
    x = to_network_input(image, "invert", 3)
    assert not np.allclose(x[0], x[1])  # channels=3 keeps the colour


def test_stats_of_the_whole_image_apply_to_its_windows():
    image, _ = sample("brightfield", seed=5, shape=(128, 160))
    for mode in INPUT_MODES:
        whole = to_network_input(image, mode, 3)
        stats = input_stats(image, mode, 3)
        window = to_network_input(image[20:84, 30:94], mode, 3, stats=stats)
        np.testing.assert_array_equal(window, whole[:, 20:84, 30:94])


def test_constant_and_nearly_constant_images():
    for value in (0, 77, 255):
        flat = np.full((32, 40, 3), value, dtype=np.uint8)
        for mode in INPUT_MODES:
            x = to_network_input(flat, mode, 1)
            assert np.isfinite(x).all() and np.ptp(x) == 0
            if mode != "raw":
                assert (x == 0).all()
    # one bright pixel on black: the percentiles are equal, the full range is used instead
    dot = np.zeros((32, 40, 3), dtype=np.uint8)
    dot[5, 7] = 200
    x = to_network_input(dot, "percentile", 3)
    assert x[:, 5, 7].tolist() == [1.0, 1.0, 1.0] and x.sum() == 3.0


def test_arguments_are_checked():
    image, _ = sample("fluorescence")
    with pytest.raises(TypeError, match="uint8"):
        to_network_input(image.astype(np.float32) / 255, "percentile", 3)
    with pytest.raises(ValueError, match="mode must be one of"):
        to_network_input(image, "zscore", 3)
    with pytest.raises(ValueError, match="channels"):
        to_network_input(image, "percentile", 2)
    with pytest.raises(ValueError, match="shape"):
        to_network_input(np.zeros((4, 5, 6), dtype=np.uint8), "raw", 3)
    grey = image[..., 0]  # (H, W) is accepted as a grey image
    np.testing.assert_array_equal(to_network_input(grey, "percentile", 3)[0],
                                  to_network_input(grey, "percentile", 1)[0])
    original = image.copy()
    to_network_input(image, "invert", 3)
    np.testing.assert_array_equal(image, original)  # the input is not modified
