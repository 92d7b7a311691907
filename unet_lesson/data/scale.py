r"""Nuclei at one scale: each image rescaled so that its nuclei have a standard size.

The DSB images come at many magnifications: the median nucleus is about 10 pixels across in
some fluorescence groups and 50 in others. A U-Net's receptive field and its training tiles have
a fixed size in pixels, so it must learn every size of nucleus, and a test image at a
magnification no training group had falls between them. Scale augmentation
(``scale_augment``) shows the network more sizes; this module removes the variation instead:
each image is rescaled so that its median nucleus diameter becomes ``nucleus_size`` pixels
before the network sees it, and what the network predicts is mapped back to the image's own
size.

* :func:`nucleus_diameter` - an image's typical nucleus size: the median equivalent diameter
  :math:`\sqrt{4 A / \pi}` of its nuclei (the diameter of the disk of the same area ``A``);
* :func:`scale_factor` - ``nucleus_size / diameter``, clipped to
  [1 / :data:`MAX_FACTOR`, :data:`MAX_FACTOR`] so a wrong estimate cannot blow an image up or
  shrink it to nothing; 1 where the image has no nucleus;
* :func:`at_one_scale` - training: each sample rescaled once by the factor of its own masks
  (:func:`~unet_lesson.data.colour.rescale`: the image bilinear, the labels nearest, no
  nucleus lost);
* :func:`rescale_image` and :func:`to_size` - prediction: the image rescaled the same way, the
  probabilities brought back to the original height and width. At prediction there are no
  masks: the estimate comes from a first prediction at the native scale
  (:func:`unet_lesson.predict.predict_image`).

Not built in a notebook: training (:func:`unet_lesson.batches.training_tiles`) and prediction
(:func:`unet_lesson.predict.predict_image`) use it when a configuration sets ``nucleus_size``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .colour import rescale

MAX_FACTOR = 2.5  # images are zoomed by at most this factor, or shrunk by at most its inverse


def nucleus_diameter(labels: np.ndarray) -> float | None:
    r"""The median equivalent diameter (pixels) of the nuclei of a label image ``(H, W)``
    (0 background, 1..N nuclei): :math:`\sqrt{4 A / \pi}` of each nucleus's area ``A``.
    ``None`` when it holds no nucleus.

    Not built in a notebook: :func:`at_one_scale` and prediction estimate the scale with it.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer label image (H, W), got {labels.dtype} "
                         f"{labels.shape}")
    areas = np.bincount(labels.ravel().clip(min=0))[1:]  # pixels of nucleus 1..N
    areas = areas[areas > 0]
    if areas.size == 0:
        return None
    return float(np.median(np.sqrt(4 * areas / np.pi)))


def scale_factor(diameter: float | None, nucleus_size: float) -> float:
    """The zoom that brings nuclei of ``diameter`` pixels to ``nucleus_size`` pixels, clipped
    to [1 / :data:`MAX_FACTOR`, :data:`MAX_FACTOR`]; 1 when either is unknown or 0 (off).

    Not built in a notebook: :func:`at_one_scale` and prediction call it.
    """
    if not nucleus_size or not diameter:
        return 1.0
    return float(np.clip(nucleus_size / diameter, 1 / MAX_FACTOR, MAX_FACTOR))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """A ``uint8 (H, W, C)`` image zoomed by ``factor`` to ``round(H * factor) x round(W *
    factor)`` pixels, still ``uint8`` (:func:`~unet_lesson.data.colour.rescale`, bilinear,
    smoothed first when shrinking). ``factor == 1`` returns the image itself.

    Not built in a notebook: prediction rescales the image it is given with it.
    """
    if factor == 1.0:
        return image
    return _rescale_uint8(image, None, factor)[0]


def _rescale_uint8(image: np.ndarray, labels: np.ndarray | None, factor: float):
    """:func:`~unet_lesson.data.colour.rescale` of a ``uint8 (H, W, C)`` image (and labels)."""
    values = np.moveaxis(np.asarray(image), -1, 0).astype(np.float32) / 255.0  # (C, H, W)
    zoomed, labels = rescale(values, labels, factor)  # (C, h, w) in [0, 1], (h, w)
    return np.moveaxis(np.round(zoomed * 255.0), 0, -1).astype(np.uint8), labels  # (h, w, C)


def rescale_sample(sample, factor: float):
    """A sample (``.image uint8 (H, W, C)``, ``.labels (H, W)``, or such a pair) zoomed by
    ``factor``: the image bilinear, the labels nearest with every nucleus kept
    (:func:`~unet_lesson.data.colour.rescale`); the same sample when ``factor == 1``.

    Not built in a notebook: :func:`at_one_scale` calls it.
    """
    if factor == 1.0:
        return sample
    pair = not hasattr(sample, "labels")  # an (image, labels) pair, as TileDataset takes
    image, labels = sample if pair else (sample.image, sample.labels)
    image, labels = _rescale_uint8(image, labels, factor)
    return (image, labels) if pair else dataclasses.replace(sample, image=image, labels=labels)


def at_one_scale(samples, nucleus_size: float) -> list:
    """Each training sample rescaled by the factor of its own masks (:func:`scale_factor` of
    :func:`nucleus_diameter`), so its median nucleus is ``nucleus_size`` pixels across.

    Not built in a notebook: :func:`unet_lesson.batches.training_tiles` calls it.
    """
    def labels(s):
        return s.labels if hasattr(s, "labels") else s[1]

    return [rescale_sample(s, scale_factor(nucleus_diameter(labels(s)), nucleus_size))
            for s in samples]


def to_size(array: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """``array (..., h, w)`` resampled to ``(..., H, W) = shape`` (``skimage.transform.resize``):
    probabilities bilinear (``order=1``; averaged when shrinking, so they still sum to 1),
    label images nearest (``order=0``: the ids are kept). What a prediction at another scale
    is mapped back with.

    Not built in a notebook: :func:`unet_lesson.predict.predict_image` calls it.
    """
    from skimage.transform import resize

    array = np.asarray(array)
    shape = tuple(int(n) for n in shape)
    if array.shape[-2:] == shape:
        return array
    out = resize(array, (*array.shape[:-2], *shape), order=order, mode="edge",
                 anti_aliasing=None if order else False, preserve_range=True)
    return out.astype(array.dtype, copy=False)
