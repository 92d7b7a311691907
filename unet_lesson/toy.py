"""A nucleus-like toy image for the architecture lessons (notebooks 02-06).

Notebook 02 draws it in plain view; this is the copy the later lessons reuse. It is a picture
to look at feature maps and to train a tiny network for a few seconds, not a data set (the
synthetic Data Science Bowl set lives in :mod:`unet_lesson.data`).

A few elliptic nuclei, several in touching clusters, each with its own brightness and a
grainy chromatin texture, blurred by the optics and overlaid with camera noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse


def nucleus_like_image(size: int = 256, n_nuclei: int = 12, seed: int = 0,
                       radius: tuple[float, float] = (9.0, 16.0)) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) float32 image in [0, 1] and its int32 label image (0 = background).

    Nuclei come in small clusters (so some touch, the case the U-Net's weight map is about);
    a later nucleus covers an earlier one where they overlap. ``radius`` is the range of the
    ellipses' semi-axes in pixels.
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
