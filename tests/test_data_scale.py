"""Nuclei at one scale: the size estimate, the rescale round trip, training and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import disk

from unet_lesson import predict
from unet_lesson.data import DSBSample
from unet_lesson.data.scale import (
    MAX_FACTOR,
    at_one_scale,
    nucleus_diameter,
    rescale_image,
    rescale_sample,
    scale_factor,
    to_size,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def disks(shape=(90, 120), radius=5, spacing=22, seed=0) -> DSBSample:
    """Round nuclei of one radius on a grid (ids 1..N), bright on a dark background, with a
    little noise so the image is not symmetric."""
    labels = np.zeros(shape, dtype=np.int32)
    k = 0
    for r in range(spacing // 2, shape[0] - radius, spacing):
        for c in range(spacing // 2, shape[1] - radius, spacing):
            k += 1
            labels[disk((r, c), radius, shape=shape)] = k
    noise = np.random.default_rng(seed).integers(0, 20, shape)
    grey = np.where(labels > 0, 200, 20) + noise
    image = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
    return DSBSample("disks", image, labels, Path("."))


@pytest.mark.parametrize("radius", [3, 5, 12])
def test_the_estimate_is_the_diameter_of_known_nuclei(radius):
    sample = disks(shape=(160, 160), radius=radius, spacing=4 * radius)
    area = (sample.labels == 1).sum()  # a digital disk of this radius
    assert nucleus_diameter(sample.labels) == pytest.approx(np.sqrt(4 * area / np.pi))
    assert nucleus_diameter(sample.labels) == pytest.approx(2 * radius, rel=0.1)
    assert nucleus_diameter(np.zeros((8, 8), dtype=np.int32)) is None


def test_the_estimate_is_the_median_over_nuclei():
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[0:2, 0:2], labels[10:14, 10:14], labels[20:40, 20:40] = 1, 2, 3  # 4, 16, 400 pixels
    assert nucleus_diameter(labels) == pytest.approx(np.sqrt(4 * 16 / np.pi))
    with pytest.raises(ValueError, match="integer label image"):
        nucleus_diameter(labels.astype(float))


def test_the_factor_is_clipped_and_one_without_nuclei():
    assert scale_factor(10.0, 20.0) == 2.0
    assert scale_factor(40.0, 20.0) == 0.5
    assert scale_factor(2.0, 20.0) == MAX_FACTOR
    assert scale_factor(500.0, 20.0) == 1 / MAX_FACTOR
    assert scale_factor(None, 20.0) == 1.0
    assert scale_factor(10.0, 0.0) == 1.0  # off


def test_the_round_trip_keeps_labels_aligned_and_undoes_exactly():
    sample = disks()
    zoomed = rescale_sample(sample, 2.0)
    assert zoomed.image.shape == (180, 240, 3) and zoomed.labels.shape == (180, 240)
    assert zoomed.image.dtype == np.uint8 and zoomed.image_id == "disks"
    np.testing.assert_array_equal(np.unique(zoomed.labels), np.unique(sample.labels))
    bright = zoomed.image.mean(-1) > 110
    assert (bright == (zoomed.labels > 0)).mean() > 0.98  # nuclei where their labels are
    assert nucleus_diameter(zoomed.labels) == pytest.approx(2 * nucleus_diameter(
        sample.labels), rel=0.05)
    np.testing.assert_array_equal(to_size(zoomed.labels, (90, 120), order=0), sample.labels)
    assert to_size(zoomed.labels, (90, 120), order=0).dtype == sample.labels.dtype
    np.testing.assert_array_equal(rescale_image(sample.image, 2.0), zoomed.image)
    assert rescale_sample(sample, 1.0) is sample  # no zoom, no copy


@pytest.mark.parametrize("factor", [0.6, 1.37, 2.5])
def test_probabilities_come_back_to_the_exact_shape_and_still_sum_to_one(factor):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 53, 71))
    probs = np.exp(logits) / np.exp(logits).sum(0)  # (3, 53, 71)
    h, w = round(53 * factor), round(71 * factor)
    zoomed = to_size(probs, (h, w))
    back = to_size(zoomed, (53, 71))
    assert zoomed.shape == (3, h, w) and back.shape == (3, 53, 71)
    np.testing.assert_allclose(back.sum(0), 1.0, atol=1e-6)
    assert to_size(probs, (53, 71)) is probs


def test_training_samples_are_rescaled_to_the_nucleus_size():
    small, large = disks(radius=4, seed=1), disks(shape=(120, 120), radius=12, spacing=40)
    pair = (small.image, small.labels)
    rescaled = at_one_scale([small, large, pair], nucleus_size=16)
    for before, after in zip([small, large], rescaled[:2], strict=True):
        assert nucleus_diameter(after.labels) == pytest.approx(16, rel=0.1)
        assert after.image.shape[:2] == after.labels.shape
        assert set(np.unique(after.labels)) == set(np.unique(before.labels))
    image, labels = rescaled[2]  # an (image, labels) pair stays a pair
    assert labels.shape == image.shape[:2] == rescaled[0].labels.shape


class _Threshold(torch.nn.Module):
    """A "network" whose three-class output is the image's brightness: nuclei where bright."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(in_channels=3, num_classes=3, padding="same", depth=0)
        self.scale = torch.nn.Parameter(torch.tensor(40.0))

    def forward(self, x):
        grey = x.mean(1, keepdim=True) - 0.45  # (B, 1, H, W): > 0 on the nuclei
        background = -self.scale * grey
        return torch.cat([background, self.scale * grey, torch.full_like(grey, -5.0)], 1)


def _cfg(**changes):
    from unet_lesson.config import preset

    return preset("practical", input_mode="raw", **changes)


def test_the_test_time_estimate_comes_from_a_first_prediction():
    sample = disks(radius=5)
    net = _Threshold()
    native = predict.predict_image(net, sample.image, _cfg(amp_cpu=False))
    expected = 20 / nucleus_diameter(predict.probabilities_to_labels(native))
    assert predict.scale_from_prediction(native, 20) == pytest.approx(expected)
    assert expected == pytest.approx(2.0, rel=0.15)  # nuclei 10 pixels across
    nothing = np.zeros_like(native)
    nothing[0] = 1.0  # background everywhere: no nucleus found, no zoom
    assert predict.scale_from_prediction(nothing, 20) == 1.0


def test_prediction_at_one_scale_returns_the_original_shape(monkeypatch):
    sample = disks(shape=(70, 95), radius=5)
    net = _Threshold()
    seen = []
    tiled = predict.predict_tiled
    monkeypatch.setattr(predict, "predict_tiled", lambda n, x, **kw: seen.append(x.shape) or
                        tiled(n, x, **kw))
    probs = predict.predict_image(net, sample.image, _cfg(nucleus_size=20, amp_cpu=False))
    assert probs.shape == (3, 70, 95)
    plain = predict.predict_image(net, sample.image, _cfg(amp_cpu=False))
    factor = predict.scale_from_prediction(plain, 20)  # what the first pass measures
    assert factor == pytest.approx(2.0, rel=0.15)
    assert seen[:2] == [(3, 70, 95), (3, round(70 * factor), round(95 * factor))]
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    agree = (probs.argmax(0) == plain.argmax(0)).mean()  # the same nuclei, mapped back
    assert agree > 0.97


def test_a_prediction_without_nuclei_stays_at_its_own_scale(monkeypatch):
    image = np.full((40, 50, 3), 10, dtype=np.uint8)  # dark: no nucleus
    seen = []
    tiled = predict.predict_tiled
    monkeypatch.setattr(predict, "predict_tiled", lambda n, x, **kw: seen.append(
        (x.shape, kw["tta"])) or tiled(n, x, **kw))
    probs = predict.predict_image(_Threshold(), image, _cfg(nucleus_size=20, amp_cpu=False),
                                  tta=True)
    assert probs.shape == (3, 40, 50)
    assert seen == [((3, 40, 50), False), ((3, 40, 50), True)]  # measured, then TTA at 1x
