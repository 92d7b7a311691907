r"""The paper's weight map (Ronneberger et al. 2015, section 3, equation 2).

The loss of the U-Net paper weights every pixel x by

.. math::

    w(x) = w_c(x) + w_0 \cdot \exp\left(-\frac{(d_1(x) + d_2(x))^2}{2\sigma^2}\right)

* :math:`w_c` balances the class frequencies (:func:`class_weight_map`);
* :math:`d_1, d_2` are the Euclidean distances (pixels) from x to the border of the nearest and
  of the second-nearest nucleus; the paper uses :math:`w_0 = 10` and :math:`\sigma \approx 5`
  pixels (:func:`border_weights`).

The second term is large in the thin background gaps between touching nuclei, so the network
pays for every gap pixel it fills in: that is what keeps touching nuclei apart.

**Our exact choices** (the paper leaves them open):

* The border term is applied to **background pixels only** (the gaps it is meant to separate;
  on a nucleus pixel d1 = 0 and the term would mark the rim of every nucleus touching another
  one, which is the three-class idea of :mod:`unet_lesson.instances`, not the paper's). It is 0
  where fewer than two nuclei exist.
* Touching nuclei in the Data Science Bowl masks have no background between them; use
  :func:`open_gaps` first to open a 2-pixel gap that the border term can weigh (as the paper's
  membranes do).
* :math:`w_c` is the **inverse class frequency of the image, normalised so background = 1**:
  background pixels get 1 and nucleus pixels get ``n_background / n_nucleus``, clipped to
  ``[1 / max_class_weight, max_class_weight]`` (default 10). Per image, because the paper
  "pre-computes the weight map for each ground truth segmentation" and because the training
  dataset computes it on each tile, needing no pass over the data set. The clip keeps a tile
  that holds a sliver of one nucleus (say 5 pixels of 300,000) from giving those pixels a
  weight of 60,000. An image with no nucleus (or no background) has :math:`w_c = 1` everywhere.
  Pass ``class_weights=(w_background, w_nucleus)`` to use fixed values instead, for example the
  data-set frequencies from :func:`dataset_class_weights`.

**Speed.** The obvious computation needs one full-image distance transform per nucleus: on a
1024x1024 image with 300 nuclei that is 300 transforms of a million pixels. We compute each
nucleus's distance transform only in a window around it: the term is below ``tol`` as soon as
d1 + d2 > R, with

.. math::

    R = \sigma \sqrt{2 \ln(w_0 / \mathrm{tol})}

(for w0 = 10, sigma = 5, tol = 1e-5: R = 26.3 px). Since d2 >= d1, the term can only exceed
``tol`` when the two nearest nuclei are both closer than R, so a window of the nucleus's
bounding box grown by ceil(R) pixels on every side sees every distance that matters. Inside its
window a nucleus's distance transform is exact (the whole nucleus lies in the window), so the
only error is that pixels farther than R from their second-nearest nucleus get 0 instead of a
value below ``tol``: **the maximum absolute error is tol** (default 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from .checks import check_label_image

W0 = 10.0  # the paper's w0
SIGMA = 5.0  # the paper's sigma, pixels
TOL = 1e-5  # largest value of the border term we drop (the maximum error of the fast version)


def _check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    return check_label_image(labels, name).astype(np.int64, copy=False)


def cutoff_distance(w0: float = W0, sigma: float = SIGMA, tol: float = TOL) -> float:
    r"""R such that the border term is below ``tol`` once d1 + d2 > R (0 if w0 <= tol).

    Solves :math:`w_0 \exp(-R^2 / 2\sigma^2) = \mathrm{tol}`.

    Used in notebook 07.
    """
    if sigma <= 0 or tol <= 0:
        raise ValueError(f"sigma and tol must be positive, got sigma={sigma}, tol={tol}")
    if w0 <= tol:
        return 0.0
    return sigma * math.sqrt(2.0 * math.log(w0 / tol))


def nearest_two_distances(labels: np.ndarray, max_distance: float | None = None):
    """d1 and d2: distances (pixels) from every pixel to its nearest and second-nearest nucleus.

    Each nucleus's Euclidean distance transform is computed in its bounding box grown by
    ``ceil(max_distance)`` pixels (exact there); distances beyond the window are ``inf``. With
    ``max_distance=None`` the window is the whole image (exact everywhere, slow).
    Returns two float64 arrays (H, W); ``inf`` where fewer than one/two nuclei are in reach.

    Not built in a notebook: :func:`weight_map` calls it.
    """
    labels = _check_labels(labels)
    h, w = labels.shape
    d1 = np.full((h, w), np.inf)
    d2 = np.full((h, w), np.inf)
    margin = max(h, w) if max_distance is None else math.ceil(max_distance)
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:  # an id that is not used (ids need not be contiguous)
            continue
        rows = slice(max(box[0].start - margin, 0), min(box[0].stop + margin, h))
        cols = slice(max(box[1].start - margin, 0), min(box[1].stop + margin, w))
        d = ndi.distance_transform_edt(labels[rows, cols] != k)  # exact: nucleus k is inside
        near1, near2 = d1[rows, cols], d2[rows, cols]  # views: updated in place
        np.minimum(near2, np.maximum(near1, d), out=near2)  # running two smallest
        np.minimum(near1, d, out=near1)
    return d1, d2


def border_weights(labels: np.ndarray, w0: float = W0, sigma: float = SIGMA,
                   tol: float = TOL) -> np.ndarray:
    r"""The separation term :math:`w_0 \exp(-(d_1 + d_2)^2 / 2\sigma^2)` on background pixels.

    ``labels``: (H, W) integers, 0 = background, any positive ids for nuclei. Returns float32
    (H, W), 0 on nucleus pixels and where fewer than two nuclei exist. Windowed computation
    with a maximum absolute error of ``tol`` (see the module docstring); ``tol=0`` computes
    every distance transform on the whole image (the slow, exact reference).

    Built in notebook 07.
    """
    labels = _check_labels(labels)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    reach = None if tol == 0 else cutoff_distance(w0, sigma, tol)
    d1, d2 = nearest_two_distances(labels, reach)
    term = np.zeros(labels.shape, dtype=np.float64)
    gap = (labels == 0) & np.isfinite(d2)  # background pixels with two nuclei in reach
    term[gap] = w0 * np.exp(-((d1[gap] + d2[gap]) ** 2) / (2.0 * sigma**2))
    return term.astype(np.float32)


def image_class_weights(labels: np.ndarray,
                        max_class_weight: float = 10.0) -> tuple[float, float]:
    """(w_background, w_nucleus) for one image: inverse class frequency, background = 1.

    The nucleus weight ``n_background / n_nucleus`` is clipped to
    ``[1 / max_class_weight, max_class_weight]``; (1, 1) if either class is absent.

    Not built in a notebook: :func:`class_weight_map` calls it.
    """
    labels = _check_labels(labels)
    n_fg = int(np.count_nonzero(labels))
    return _balance(labels.size - n_fg, n_fg, max_class_weight)


def dataset_class_weights(label_images: Iterable[np.ndarray],
                          max_class_weight: float = 10.0) -> tuple[float, float]:
    """(w_background, w_nucleus) from the pixel counts of a whole data set (background = 1).

    Not built in a notebook: the tests use it; :func:`weight_map` accepts its result.
    """
    n_bg = n_fg = 0
    for labels in label_images:
        labels = _check_labels(labels)
        fg = int(np.count_nonzero(labels))
        n_fg, n_bg = n_fg + fg, n_bg + labels.size - fg
    return _balance(n_bg, n_fg, max_class_weight)


def _balance(n_bg: int, n_fg: int, max_class_weight: float) -> tuple[float, float]:
    if max_class_weight < 1:
        raise ValueError(f"max_class_weight must be >= 1, got {max_class_weight}")
    if n_bg == 0 or n_fg == 0:
        return 1.0, 1.0
    return 1.0, float(np.clip(n_bg / n_fg, 1.0 / max_class_weight, max_class_weight))


def class_weight_map(labels: np.ndarray, class_weights: tuple[float, float] | None = None,
                     max_class_weight: float = 10.0) -> np.ndarray:
    """w_c(x) as float32 (H, W): ``class_weights`` or, if None, :func:`image_class_weights`.

    Not built in a notebook: :func:`weight_map` calls it.
    """
    labels = _check_labels(labels)
    w_bg, w_fg = class_weights or image_class_weights(labels, max_class_weight)
    return np.where(labels > 0, np.float32(w_fg), np.float32(w_bg)).astype(np.float32)


def touching_pixels(labels: np.ndarray) -> np.ndarray:
    """Nucleus pixels with a *different* nucleus among their 8 neighbours (bool (H, W)).

    Not built in a notebook: :func:`open_gaps` calls it.
    """
    labels = _check_labels(labels)
    none = labels.max(initial=0) + 1  # background must not count as a smaller neighbour
    higher = ndi.maximum_filter(labels, size=3, mode="nearest")
    lower = ndi.minimum_filter(np.where(labels > 0, labels, none), size=3, mode="nearest")
    return (labels > 0) & ((higher != labels) | (lower != labels))


def open_gaps(labels: np.ndarray) -> np.ndarray:
    """Touching nuclei pulled apart: :func:`touching_pixels` become background.

    The paper's cells are separated by membranes, so its border term has background to weigh
    between touching cells. In the Data Science Bowl masks touching nuclei share a boundary
    with no background between them, and the border term has nothing to act on there. Opening
    a gap (2 pixels wide: one from each nucleus) gives the network a line of background to learn
    between touching nuclei, which the weight map then weighs heavily. After it no two
    different nuclei are 8-neighbours.

    Used in notebook 07.
    """
    labels = np.asarray(labels)
    return np.where(touching_pixels(labels), 0, labels).astype(labels.dtype)


def weight_map(labels: np.ndarray, w0: float = W0, sigma: float = SIGMA, *,
               class_weights: tuple[float, float] | None = None,
               max_class_weight: float = 10.0, tol: float = TOL) -> np.ndarray:
    r"""The paper's weight map :math:`w = w_c + w_0 \exp(-(d_1 + d_2)^2 / 2\sigma^2)`.

    ``labels``: (H, W) integer label image (0 = background, nuclei any positive ids).
    Returns float32 (H, W). ``class_weights=(w_background, w_nucleus)`` fixes w_c; by default
    it is the image's inverse class frequency with background = 1 (see the module docstring).

    Built in notebook 07.
    """
    w_c = class_weight_map(labels, class_weights, max_class_weight)
    return w_c + border_weights(labels, w0, sigma, tol)
