r"""Augmentations that should help a U-Net generalise across stains, microscopes and scales.

The paper's augmentations (:mod:`~unet_lesson.data.augment`: elastic deformation, flips,
grey values) make the network robust within one kind of image. The DSB 2018 test images add
new stains and magnifications, so we also vary what an acquisition changes. Which of these
help is decided by an ablation on a group split (:mod:`~unet_lesson.data.groups`); this
module only provides them, each off by default in :class:`ColourAugment`.

All work on a float image ``(C, H, W)`` in [0, 1] (the network's input,
:func:`~unet_lesson.data.to_input`) with a ``numpy`` :class:`~numpy.random.Generator`, and
return ``float32`` in [0, 1] of the same shape:

* :func:`hed_jitter` - stain augmentation in the haematoxylin-eosin-DAB colour space
  (Tellez et al. 2018, "Whole-slide mitosis detection in H&E breast histology using PHH3 as
  a reference to train distilled stain-invariant convolutional networks", IEEE TMI; Tellez
  et al. 2019, "Quantifying the effects of data augmentation and stain color normalization",
  MedIA): each stain channel :math:`s` becomes :math:`s (1 + \alpha) + \beta`.
* :func:`hue_saturation` - a random hue shift and saturation scale (HSV).
* :func:`to_grey`, :func:`invert` - colour removed; dark and bright swapped (brightfield
  looks like fluorescence and back).
* :func:`contrast` - contrast about the mean (the paper's grey-value change without gamma).
* :func:`gaussian_blur`, :func:`gaussian_noise` - focus and camera noise.

Colour operations change pixel values only, never their place, so the label image stays
aligned and is not touched. Blur mixes neighbours but moves nothing. Only :func:`rescale`
(magnification) changes the geometry, so it takes and returns the labels too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from .augment import grey_values


def _check(image: np.ndarray, colour: bool = False) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) image with C = 1 or 3, got shape {image.shape}")
    if colour and image.shape[0] != 3:
        raise ValueError(f"this is a colour augmentation: it needs 3 channels, got "
                         f"{image.shape[0]} (apply_colour skips it for grey inputs)")
    return image.astype(np.float32, copy=False)


def _finish(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    r"""Colour deconvolution (Ruifrok & Johnston 2001): ``(..., 3)`` RGB in [0, 1] -> stains.

    The optical density :math:`-\ln \max(x, 10^{-6})` times scikit-image's
    ``hed_from_rgb``, in the units of :func:`skimage.color.rgb2hed` (divided by
    :math:`\ln 10^6`). Unlike ``rgb2hed`` it keeps negative concentrations (``rgb2hed`` sets
    them to 0, so ``hed2rgb(rgb2hed(x))`` differs from ``x`` by up to 0.2 on a real DSB stained
    image); :func:`skimage.color.hed2rgb` inverts it exactly.

    Not built in a notebook: the training tiles use it.
    """
    from skimage.color import hed_from_rgb

    log_adjust = np.log(1e-6)  # the normalisation of skimage's rgb2hed
    return (np.log(np.maximum(rgb, 1e-6)) / log_adjust) @ hed_from_rgb


def hed_jitter(image: np.ndarray, rng: np.random.Generator, strength: float = 0.05,
               bias: float = 0.01) -> np.ndarray:
    r"""Stain augmentation (Tellez et al. 2018): jitter haematoxylin, eosin and DAB.

    The RGB image is unmixed into stain concentrations (:func:`rgb_to_hed`); each stain
    channel :math:`s_i` becomes :math:`s_i (1 + \alpha_i) + \beta_i` with
    :math:`\alpha_i \sim U(-\text{strength}, \text{strength})`,
    :math:`\beta_i \sim U(-\text{bias}, \text{bias})`, and the result is mixed back to RGB
    (:func:`skimage.color.hed2rgb`), clipped to [0, 1]. With both 0 it is the identity.

    Units: those of :func:`skimage.color.rgb2hed`, in which the stains of a real DSB
    stained image lie between about 0 and 0.16. Tellez et al. drew both from ranges of
    0.05 ("HED-light") and 0.2 ("HED-strong") on their own stain scale; on this one a bias
    of 0.05 already turns the background white or purple, so the default bias is 0.01 (a
    visible, natural shift) and ``strength`` 0.05; the ablation decides. Meant for stained
    (transmitted light) images; on a grey image it adds a tint. Needs 3 channels.

    Used in notebook 08.
    """
    from skimage.color import hed2rgb

    image = _check(image, colour=True)
    alpha = 1.0 + rng.uniform(-strength, strength, size=3)
    beta = rng.uniform(-bias, bias, size=3)
    hed = rgb_to_hed(np.moveaxis(image, 0, -1).astype(np.float64))  # (H, W, 3)
    rgb = hed2rgb(hed * alpha + beta)  # (H, W, 3)
    return _finish(np.moveaxis(rgb, -1, 0))


def hue_saturation(image: np.ndarray, rng: np.random.Generator, hue: float = 0.05,
                   saturation: float = 0.2) -> np.ndarray:
    """A hue shift ``U(-hue, hue)`` (a fraction of the colour circle) and a saturation scale
    ``U(1 - saturation, 1 + saturation)``, in HSV. Grey pixels stay grey. Needs 3 channels.

    Used in notebook 08.
    """
    from skimage.color import hsv2rgb, rgb2hsv

    image = _check(image, colour=True)
    shift = rng.uniform(-hue, hue)
    scale = rng.uniform(1.0 - saturation, 1.0 + saturation)
    hsv = rgb2hsv(np.moveaxis(np.clip(image, 0, 1), 0, -1))  # (H, W, 3)
    hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * scale, 0.0, 1.0)
    return _finish(np.moveaxis(hsv2rgb(hsv), -1, 0))


def to_grey(image: np.ndarray) -> np.ndarray:
    """Every channel replaced by the grey level (the mean of the channels, as ``to_input``).

    Used in notebook 08.
    """
    image = _check(image)
    return _finish(np.broadcast_to(image.mean(axis=0, keepdims=True), image.shape))


def invert(image: np.ndarray) -> np.ndarray:
    """:math:`1 - x`: bright nuclei on dark become dark nuclei on bright, and back.

    Not built in a notebook: :func:`to_network_input` calls it.
    """
    return _finish(1.0 - _check(image))


def contrast(image: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Contrast about the image mean, by a factor ``U(1 - strength, 1 + strength)``, clipped.

    The paper's grey-value change (:func:`~unet_lesson.data.grey_values`) without gamma
    and brightness.

    Used in notebook 08.
    """
    image = _check(image)
    return _finish(grey_values(image, rng, gamma=0.0, contrast=strength, brightness=0.0))


def gaussian_blur(image: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
                  ) -> np.ndarray:
    """A Gaussian blur of standard deviation ``U(0, sigma)`` pixels (mirrored borders).

    Used in notebook 08.
    """
    image = _check(image)
    s = float(rng.uniform(0.0, sigma))
    return _finish(ndimage.gaussian_filter(image, sigma=(0.0, s, s), mode="mirror"))


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, std: float = 0.03
                   ) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``U(0, std)`` (image units), clipped.

    Used in notebook 08.
    """
    image = _check(image)
    s = float(rng.uniform(0.0, std))
    return _finish(image + rng.normal(0.0, s, size=image.shape).astype(np.float32))


# --------------------------------------------------------------------------------------------
# All colour augmentations together
# --------------------------------------------------------------------------------------------


@dataclass
class ColourAugment:
    """Which colour augmentations to draw (a chance ``*_p`` each) and how strong.

    All off by default (every chance 0), so the default changes nothing. They are drawn in
    the order of the fields; on a 1-channel image the colour-only ones (HED, hue) are skipped.

    Used in notebook 08.
    """

    hed_p: float = 0.0  # chance of the HED stain jitter
    hed_strength: float = 0.05  # alpha ~ U(-s, s): stain scale (see hed_jitter)
    hed_bias: float = 0.01  # beta ~ U(-b, b): stain shift (rgb2hed units, stains 0..0.16)
    hue_p: float = 0.0  # chance of the hue/saturation jitter
    hue: float = 0.05  # hue shift ~ U(-hue, hue), fraction of the colour circle
    saturation: float = 0.2  # saturation scale ~ U(1 - s, 1 + s)
    grey_p: float = 0.0  # chance of replacing the colours by the grey level
    invert_p: float = 0.0  # chance of 1 - x
    contrast_p: float = 0.0  # chance of a contrast change
    contrast: float = 0.2  # factor ~ U(1 - c, 1 + c) about the mean
    blur_p: float = 0.0  # chance of a Gaussian blur
    blur_sigma: float = 1.0  # its standard deviation ~ U(0, blur_sigma) pixels
    noise_p: float = 0.0  # chance of Gaussian noise
    noise_std: float = 0.03  # its standard deviation ~ U(0, noise_std) (image in [0, 1])

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
                raise ValueError(f"ColourAugment.{field.name} must be a number >= 0, got "
                                 f"{value!r}")
            if field.name.endswith("_p") and value > 1:
                raise ValueError(f"ColourAugment.{field.name} is a probability: it must be in "
                                 f"[0, 1], got {value!r}")
        for name in ("saturation", "contrast"):
            if getattr(self, name) > 1:
                raise ValueError(f"ColourAugment.{name} must be at most 1 (a factor "
                                 f"U(1 - {name}, 1 + {name}) must stay >= 0), got "
                                 f"{getattr(self, name)!r}")


def apply_colour(image: np.ndarray, rng: np.random.Generator, cfg: ColourAugment
                 ) -> np.ndarray:
    """Apply each augmentation of ``cfg`` with its chance, in the order of its fields.

    ``image``: ``float (C, H, W)`` in [0, 1]; returns ``float32`` of the same shape in
    [0, 1]. The labels need nothing: these operations move no pixel. One draw of ``rng`` per
    augmentation decides whether it happens (whatever the chances), so the same seed gives
    the same result.

    Not built in a notebook: the tile data set calls it.
    """
    image = _finish(_check(image))
    colour = image.shape[0] == 3
    steps = (
        (cfg.hed_p, colour, lambda x: hed_jitter(x, rng, cfg.hed_strength, cfg.hed_bias)),
        (cfg.hue_p, colour, lambda x: hue_saturation(x, rng, cfg.hue, cfg.saturation)),
        (cfg.grey_p, True, to_grey),
        (cfg.invert_p, True, invert),
        (cfg.contrast_p, True, lambda x: contrast(x, rng, cfg.contrast)),
        (cfg.blur_p, True, lambda x: gaussian_blur(x, rng, cfg.blur_sigma)),
        (cfg.noise_p, True, lambda x: gaussian_noise(x, rng, cfg.noise_std)),
    )
    for p, applicable, step in steps:
        if rng.random() < p and applicable:
            image = step(image)
    return image


# --------------------------------------------------------------------------------------------
# Scale
# --------------------------------------------------------------------------------------------


def rescale(image: np.ndarray, labels: np.ndarray | None, factor: float, order: int = 1
            ) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Zoom ``image (C, H, W)`` and ``labels (H, W)`` by ``factor`` (magnification change).

    The output is ``round(H * factor) x round(W * factor)`` pixels. The image is resampled
    bilinearly (``order=1``; 3 for bicubic), smoothed first when shrinking (anti-aliasing);
    the labels by nearest neighbour on the same grid, so every output id is an input id and
    image and labels stay aligned. A nucleus's area becomes about :math:`\text{factor}^2`
    times its area. ``labels=None``: the image alone (``None`` comes back for the labels).

    **Tiny nuclei.** Shrinking can make a small nucleus fall between the sampled pixels. Such
    a nucleus is put back as one pixel, where its pixel nearest its centroid lands, if that
    output pixel is background or belongs to a nucleus that keeps other pixels. If even that
    is impossible (two vanished nuclei on one pixel) it is dropped with a ``RuntimeWarning``
    naming how many: no nucleus is lost silently.

    Used in notebook 08.
    """
    from skimage.transform import resize

    image = _check(image)
    if labels is not None:
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError(f"labels must be a label image of integers >= 0, got "
                             f"{labels.dtype}")
        if labels.shape != image.shape[1:]:
            raise ValueError(f"labels {labels.shape} and image {image.shape[1:]} differ in "
                             f"size")
    if not (np.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be a positive number, got {factor!r}")
    height, width = image.shape[1:]
    out = (max(1, round(height * factor)), max(1, round(width * factor)))
    zoomed = resize(image, (image.shape[0], *out), order=order, mode="reflect",
                    anti_aliasing=factor < 1, preserve_range=True)  # (C, h, w)
    if labels is None:
        return _finish(zoomed), None
    moved = resize(labels, out, order=0, mode="edge", anti_aliasing=False,
                   preserve_range=True).astype(labels.dtype)  # (h, w)
    moved = _restore_lost(labels, moved, (out[0] / height, out[1] / width))
    return _finish(zoomed), moved


def _restore_lost(labels: np.ndarray, moved: np.ndarray, scale: tuple[float, float]
                  ) -> np.ndarray:
    """Put back, as one pixel, the nuclei of ``labels`` missing from ``moved``."""
    ids = np.unique(labels[labels > 0])
    lost = np.setdiff1d(ids, moved)
    if lost.size == 0:
        return moved
    moved = moved.copy()
    sizes = np.bincount(moved.ravel())
    dropped = 0
    boxes = ndimage.find_objects(labels)  # boxes[k - 1]: the bounding box of nucleus k
    for k in lost:
        box = boxes[k - 1]
        rows, cols = np.nonzero(labels[box] == k)
        rows, cols = rows + box[0].start, cols + box[1].start
        centre = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        # the output pixel whose footprint holds that input pixel (pixel centres aligned)
        r = min(int((rows[centre] + 0.5) * scale[0]), moved.shape[0] - 1)
        c = min(int((cols[centre] + 0.5) * scale[1]), moved.shape[1] - 1)
        owner = moved[r, c]
        if owner == 0 or (owner not in lost and sizes[owner] > 1):
            if owner:
                sizes[owner] -= 1
            moved[r, c] = k
        else:
            dropped += 1
    if dropped:
        warnings.warn(f"rescale: {dropped} nucleus/nuclei too small to keep even one pixel "
                      f"at this scale were dropped", RuntimeWarning, stacklevel=3)
    return moved


def random_scale(rng: np.random.Generator, low: float = 0.5, high: float = 2.0) -> float:
    """A zoom factor for :func:`rescale`, drawn log-uniformly in [``low``, ``high``] (as likely
    to halve as to double the magnification).

    Not built in a notebook: the training tiles draw their zoom with it.
    """
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low!r}, high={high!r}")
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
