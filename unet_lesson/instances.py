r"""From a probability map to nuclei: the post-processing the U-Net needs for instance scores.

The U-Net predicts a class per pixel; the Data Science Bowl scores *nuclei*. This module turns
probabilities into an instance label image (0 = background, 1..N = nuclei):

* :func:`connected_components` - threshold, fill holes, remove tiny objects, label the
  8-connected blobs. Touching nuclei with no background between them come out as one.
* :func:`watershed_split` - the same mask, split by a watershed of the distance transform
  seeded at its h-maxima (one seed per "hill": the centre of each round nucleus). This is the
  classic answer to touching nuclei, and the paper's weight map (section 3) is the training-side
  answer to the same problem.
* :func:`three_class_target` and :func:`labels_from_three_class` - the approach of the best
  Data Science Bowl entries: train the network on three classes (background, nucleus interior,
  nucleus border), then seed one nucleus per interior blob and flood the foreground from them.

Defaults (pixels, chosen for DSB-sized nuclei of roughly 5 to 40 px across): probability
threshold 0.5; holes filled; objects smaller than ``MIN_SIZE = 16`` pixels removed (noise; the
smallest of 4,938 real stage1_train nuclei, every 5th image, has 21 pixels); the distance
transform blurred by ``SMOOTH = 1`` px and seeded at h-maxima of depth ``H_MAXIMA_DEPTH = 0.5``
px; border width 2 px. The watershed defaults were chosen on real stage1_train images, taking
the true nuclei merged into one mask, blurred and noised
(:func:`unet_lesson.toy.fake_probability`), as the probability:
``benchmarks/bench_metrics.py --real-dsb`` scores connected components and the watershed at
these and other settings that way (its figures: ``docs/benchmarks.md``).

Built in notebook 09 (connected components, the watershed, the three classes); notebook 07
builds the weight map that is the training-side answer to the same problem.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk, h_maxima
from skimage.segmentation import relabel_sequential, watershed

from .checks import to_numpy

THRESHOLD = 0.5  # probability above which a pixel is a nucleus
MIN_SIZE = 16  # pixels: smaller connected objects are removed as noise
# pixels: how much higher than the saddle to a higher peak a distance peak must be
H_MAXIMA_DEPTH = 0.5
SMOOTH = 1.0  # pixels: Gaussian blur of the distance transform before looking for its peaks
BORDER_WIDTH = 2  # pixels: width of the border class in three_class_target
# 8-connectivity: a diagonal step does not split a nucleus
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

BACKGROUND, INTERIOR, BORDER = 0, 1, 2  # the three classes


# --------------------------------------------------------------------------------------------
# Small building blocks
# --------------------------------------------------------------------------------------------


def _probability(prob, name: str = "prob") -> np.ndarray:
    prob = to_numpy(prob)
    if prob.ndim != 2:
        raise ValueError(f"{name} must be a 2-D probability map (H, W), got shape {prob.shape}")
    return prob


def remove_small_objects(labels: np.ndarray, min_size: int = MIN_SIZE) -> np.ndarray:
    """Set to 0 every labelled object with fewer than ``min_size`` pixels (ids are kept).

    Not built in a notebook: :func:`to_instances` calls it.
    """
    labels = np.asarray(labels)
    if min_size <= 1 or labels.max(initial=0) == 0:
        return labels.copy()
    sizes = np.bincount(labels.ravel())  # pixels per id
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def foreground_mask(prob, threshold: float = THRESHOLD, fill_holes: bool = True,
                    min_size: int = MIN_SIZE) -> np.ndarray:
    """Boolean nucleus mask: ``prob > threshold``, holes filled, blobs < ``min_size`` removed.

    Not built in a notebook: :func:`to_instances` calls it.
    """
    mask = _probability(prob) > threshold
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if min_size > 1:
        blobs, _ = ndi.label(mask, structure=EIGHT_CONNECTED)
        mask = remove_small_objects(blobs, min_size) > 0
    return mask


def connected_components(prob, threshold: float = THRESHOLD, fill_holes: bool = True,
                         min_size: int = MIN_SIZE) -> np.ndarray:
    """Nuclei as the 8-connected blobs of :func:`foreground_mask`: int32 labels 1..N.

    Built in notebook 09.
    """
    mask = foreground_mask(prob, threshold, fill_holes, min_size)
    blobs, _ = ndi.label(mask, structure=EIGHT_CONNECTED)
    return blobs.astype(np.int32)


def watershed_split(prob, threshold: float = THRESHOLD, h: float = H_MAXIMA_DEPTH,
                    smooth: float = SMOOTH, fill_holes: bool = True,
                    min_size: int = MIN_SIZE) -> np.ndarray:
    r"""Split touching nuclei: watershed of the distance transform, seeded at its h-maxima.

    1. ``mask`` = :func:`foreground_mask` (threshold, holes, tiny blobs).
    2. ``dist`` = Euclidean distance of each mask pixel to the background: a hill per round
       nucleus, with a saddle where two touching nuclei meet; blurred by ``smooth`` pixels
       (a Gaussian), which removes the small ridges a pixelated outline leaves.
    3. Seeds = the regional maxima of ``dist`` at least ``h`` pixels higher than the saddle that
       joins them to a higher one (``skimage.morphology.h_maxima``). A blob left without a
       seed (the blur can join two close blobs into one hill) becomes one nucleus: none is lost.
    4. ``skimage.segmentation.watershed(-dist, seeds, mask=mask)`` floods the valleys of
       ``-dist`` from the seeds; the floods meet on the saddles.

    Returns int32 labels 1..N.

    Built in notebook 09.
    """
    mask = foreground_mask(prob, threshold, fill_holes, min_size)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    dist = ndi.distance_transform_edt(mask)  # (H, W) pixels to the nearest background pixel
    if smooth > 0:
        dist = ndi.gaussian_filter(dist, smooth)
    seeds, _ = ndi.label(h_maxima(dist, h) & mask, structure=EIGHT_CONNECTED)
    return _flood(-dist, seeds, mask)


def _flood(landscape: np.ndarray, seeds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Watershed of ``landscape`` from ``seeds`` inside ``mask``; a blob without a seed becomes
    one nucleus of its own instead of being dropped. int32 labels 1..N."""
    labels = watershed(landscape, seeds, mask=mask)
    orphans, _ = ndi.label(mask & (labels == 0), structure=EIGHT_CONNECTED)
    labels = np.where(orphans > 0, orphans + seeds.max(initial=0), labels)
    return relabel_sequential(labels)[0].astype(np.int32)


# --------------------------------------------------------------------------------------------
# Three classes: background, interior, border
# --------------------------------------------------------------------------------------------


def three_class_target(labels: np.ndarray, border_width: int = BORDER_WIDTH) -> np.ndarray:
    """Class per pixel: 0 background, 1 nucleus interior, 2 nucleus border.

    A nucleus pixel is *border* when another label (background or a different nucleus) lies
    within ``border_width`` pixels (a disk); the image edge is not a border (reflected). Returns
    int64 (H, W), ready for the losses (``num_classes=3``).

    Used in notebook 09.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    if border_width < 1:
        raise ValueError(f"border_width must be >= 1 pixel, got {border_width}")
    footprint = disk(border_width).astype(bool)
    same_all_around = (ndi.minimum_filter(labels, footprint=footprint) == labels) & (
        ndi.maximum_filter(labels, footprint=footprint) == labels
    )
    target = np.full(labels.shape, BACKGROUND, dtype=np.int64)
    target[labels > 0] = BORDER
    target[(labels > 0) & same_all_around] = INTERIOR
    return target


def labels_from_three_class(probs, interior_threshold: float = THRESHOLD,
                            foreground_threshold: float = THRESHOLD, fill_holes: bool = True,
                            min_size: int = MIN_SIZE) -> np.ndarray:
    """Decode (3, H, W) probabilities (background, interior, border) into nuclei.

    Seeds are the 8-connected blobs of ``p_interior > interior_threshold``; the foreground is
    ``1 - p_background > foreground_threshold`` (holes filled, blobs < ``min_size`` removed);
    a watershed of ``p_background`` floods the foreground from the seeds. A foreground blob
    with no seed (a nucleus too small to have an interior) becomes one nucleus of its own rather
    than being dropped. Returns int32 labels 1..N.

    Used in notebook 09.
    """
    probs = to_numpy(probs)
    if probs.ndim != 3 or probs.shape[0] != 3:
        raise ValueError(f"probs must be (3, H, W) (background, interior, border), got "
                         f"{probs.shape}")
    mask = foreground_mask(1.0 - probs[BACKGROUND], foreground_threshold, fill_holes, min_size)
    seeds, _ = ndi.label((probs[INTERIOR] > interior_threshold) & mask, structure=EIGHT_CONNECTED)
    return _flood(probs[BACKGROUND], seeds, mask)


def probabilities_to_labels(probs, method: str = "watershed", **kwargs) -> np.ndarray:
    """One entry point: (H, W) nucleus probability, or (C, H, W) softmax with C = 2 or 3.

    ``method``: ``"components"`` or ``"watershed"`` (for C <= 2), ``"three_class"`` (C = 3).

    Not built in a notebook: :class:`~unet_lesson.evaluate.PostProcess` calls it.
    """
    probs = to_numpy(probs)
    if probs.ndim == 3 and probs.shape[0] == 3:
        method = "three_class" if method == "watershed" else method
    if method == "three_class":
        return labels_from_three_class(probs, **kwargs)
    if probs.ndim == 3 and probs.shape[0] == 2:
        probs = probs[1]  # P(nucleus)
    methods = {"components": connected_components, "watershed": watershed_split}
    if method not in methods:
        raise ValueError(f"method must be 'components', 'watershed' or 'three_class', got "
                         f"{method!r}")
    return methods[method](probs, **kwargs)
