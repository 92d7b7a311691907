"""The nucleus-like toy image: deterministic, labelled 1..N, bright nuclei, some touching."""

import numpy as np
import pytest
from scipy import ndimage

from unet_lesson.toy import nucleus_like_image


def test_same_seed_same_image_other_seed_other_image():
    a, la = nucleus_like_image(128, 6, seed=3)
    b, lb = nucleus_like_image(128, 6, seed=3)
    c, _ = nucleus_like_image(128, 6, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("seed", range(4))
def test_labels_image_and_contrast(seed):
    image, labels = nucleus_like_image(256, 12, seed=seed)
    assert image.dtype == np.float32 and labels.dtype == np.int32
    assert image.shape == labels.shape == (256, 256)
    assert 0.0 <= image.min() and image.max() <= 1.0
    ids = np.unique(labels)
    assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))  # 0, 1, ..., N
    assert 8 <= len(ids) - 1 <= 12  # a nucleus may hide another entirely
    assert image[labels > 0].mean() > image[labels == 0].mean() + 0.3


@pytest.mark.parametrize("seed", range(4))
def test_some_nuclei_touch(seed):
    _, labels = nucleus_like_image(256, 12, seed=seed)
    grown = ndimage.grey_dilation(labels, size=3)
    touching = (labels > 0) & (grown != labels)  # a neighbour carries another nucleus's label
    assert touching.any()


def test_too_small_raises():
    with pytest.raises(ValueError, match="too small"):
        nucleus_like_image(40, 3)
