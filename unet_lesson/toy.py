"""Small deterministic examples for the lessons: toy images, label images, probability maps.

* :func:`nucleus_like_image` - a nucleus-like picture for the architecture lessons (notebooks
  02-06; notebook 02 draws it in plain view): a few elliptic nuclei, several in touching
  clusters, each with its own brightness and a grainy chromatin texture, blurred by the optics
  and overlaid with camera noise. A picture to look at feature maps and to train a tiny
  network for a few seconds, not a data set (the synthetic Data Science Bowl set lives in
  :mod:`unet_lesson.data`).
* :func:`synthetic_nuclei` - a label image of touching and clustered nuclei (notebooks 07, 09).
* :func:`fake_probability` - a blurred, noisy probability map standing in for a network's
  output (notebooks 07, 09).

The tests and benchmarks use them too.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse
from skimage.segmentation import relabel_sequential

from .instances import remove_small_objects


def nucleus_like_image(size: int = 256, n_nuclei: int = 12, seed: int = 0,
                       radius: tuple[float, float] = (9.0, 16.0)) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) float32 image in [0, 1] and its int32 label image (0 = background).

    Nuclei come in small clusters (so some touch, the case the U-Net's weight map is about);
    a later nucleus covers an earlier one where they overlap. ``radius`` is the range of the
    ellipses' semi-axes in pixels.

    Built in notebook 02; used in notebooks 03, 04, 05 and 06.
    """
    if size < 4 * radius[1]:
        raise ValueError(f"size {size} is too small for nuclei of radius up to {radius[1]} px; "
                         f"use size >= {int(4 * radius[1])} or smaller radii")
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.int32)
    brightness = np.zeros((size, size), dtype=np.float32)
    margin = radius[1]
    n_clusters = max(1, n_nuclei // 3)
    centres = rng.uniform(margin, size - margin, size=(n_clusters, 2))
    for k in range(1, n_nuclei + 1):
        # a nucleus sits next to its cluster's centre, about one diameter away, so they touch
        r_axis, c_axis = rng.uniform(*radius, size=2)
        centre = centres[k % n_clusters] + rng.normal(0.0, 1.2 * radius[1], size=2)
        centre = np.clip(centre, margin, size - margin)
        rr, cc = ellipse(centre[0], centre[1], r_axis, c_axis, shape=labels.shape,
                         rotation=rng.uniform(0, np.pi))
        labels[rr, cc] = k
        brightness[rr, cc] = rng.uniform(0.4, 0.85)
    # chromatin texture: smoothed noise that modulates each nucleus's brightness
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=1.5)
    texture /= texture.std()
    image = brightness * (labels > 0) * (1.0 + 0.25 * texture)
    image = ndimage.gaussian_filter(image, sigma=1.2)  # the microscope's blur
    image += 0.05 + rng.normal(0.0, 0.03, size=image.shape)  # background and camera noise
    # renumber 1..N in case a nucleus was completely covered by a later one
    _, labels = np.unique(labels, return_inverse=True)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels.reshape(size, size).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Label images and probability maps for the post-processing and metrics lessons (07, 09)
# --------------------------------------------------------------------------------------------


def synthetic_nuclei(shape: tuple[int, int] = (128, 128), n_nuclei: int = 12,
                     radius: tuple[float, float] = (6.0, 12.0), cluster_size: int = 3,
                     touch: float = 0.9, seed: int = 0) -> np.ndarray:
    """A label image of elliptical nuclei in clusters of touching ones, deterministic by seed.

    Clusters of 1..``cluster_size`` nuclei are scattered over the image (they may cross its
    edge); inside a cluster each new ellipse is placed at ``touch`` times the sum of the radii
    from a previous one, so they touch or overlap a little. Pixels already taken keep their
    nucleus (so touching nuclei share a boundary and no background separates them). An
    ellipse that would lose more than 30 % of its pixels is redrawn. Returns int32 (H, W)
    with ids 1..N (N <= ``n_nuclei``; fewer only if the image is too crowded).

    Used in notebooks 07 and 09.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.int32)
    n = attempts = 0
    while n < n_nuclei and attempts < 50 * n_nuclei:
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        members = []  # (centre y, centre x, mean radius) of this cluster's nuclei
        for _ in range(int(rng.integers(1, cluster_size + 1))):
            attempts += 1
            a, b = rng.uniform(*radius, size=2)
            if members:
                py, px, pr = members[int(rng.integers(len(members)))]
                angle, dist = rng.uniform(0, 2 * np.pi), touch * (pr + (a + b) / 2)
                cy, cx = py + dist * np.sin(angle), px + dist * np.cos(angle)
            rr, cc = ellipse(cy, cx, a, b, shape=shape, rotation=rng.uniform(0, np.pi))
            free = labels[rr, cc] == 0
            if rr.size < 10 or free.mean() < 0.7 or n >= n_nuclei:
                continue
            n += 1
            labels[rr[free], cc[free]] = n
            members.append((cy, cx, (a + b) / 2))
    return relabel_sequential(remove_small_objects(labels, 10))[0].astype(np.int32)


def fake_probability(labels: np.ndarray, blur: float = 1.0, noise: float = 0.05,
                     seed: int = 0) -> np.ndarray:
    """A stand-in for a network's nucleus probability: the mask, blurred, plus Gaussian noise.

    Touching nuclei stay touching (no gap), which is exactly what a network trained without
    the weight map tends to predict. float32 (H, W) in [0, 1].

    Used in notebooks 07 and 09.
    """
    rng = np.random.default_rng(seed)
    prob = ndimage.gaussian_filter((np.asarray(labels) > 0).astype(np.float64), blur)
    prob += rng.normal(0.0, noise, prob.shape)
    return np.clip(prob, 0.0, 1.0).astype(np.float32)
