r"""The network's input: three ways to turn a ``uint8`` image into floats (to choose by ablation).

The DSB 2018 images come from very different acquisitions: fluorescence (bright nuclei on a
black background, some barely above it), brightfield and stained tissue (dark nuclei on a
bright background). :func:`~unet_lesson.data.to_input` only divides by 255, so the network
sees each kind with its own brightness *and* polarity, and must learn every kind separately;
a kind that is rare in training (stained tissue) or absent (new stains in ``stage1_test``)
fails. Each mode below is one answer; which one generalises is decided by an ablation on a
group split (:mod:`~unet_lesson.data.groups`), not here.

``INPUT_MODES``:

* ``"raw"`` - today's behaviour, :func:`~unet_lesson.data.to_input`: :math:`x / 255`.
* ``"percentile"`` - per-image percentile normalisation: the 1st and 99th percentiles
  :math:`p_1, p_{99}` of the image's values map to 0 and 1, clipped:
  :math:`\mathrm{clip}((x - p_1) / (p_{99} - p_1), 0, 1)`. A dim and a bright acquisition of
  the same scene give the same input (it undoes any :math:`a x + b` with :math:`a > 0`).
  With 3 channels the percentiles are taken over all R, G, B values together, so colours
  keep their balance; with 1 channel over the grey level (the mean of R, G, B).
* ``"invert"`` - as ``"percentile"``, but an image with a **bright background** is first
  inverted (:math:`255 - x`), so nuclei are bright on a dark background as in fluorescence,
  whatever the microscope. The rule is :func:`~unet_lesson.data.modality_of`'s: the
  background is bright when at least half of the pixels have a grey level of 128 or more
  (:func:`bright_background`). With 3 channels the colour is kept (inverted: purple nuclei
  become green-yellow); with 1 channel the input is the inverted grey level.

Per-image statistics must come from the **whole image**: a tile's own percentiles would
depend on where it was cut, and differ between training tiles and prediction tiles. So
:func:`input_stats` measures the image once and :func:`to_network_input` applies those
numbers to the image or to any window of it (``stats=``). Everything is a pure function of
the pixels, identical at training and prediction time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .table import DARK_BACKGROUND

INPUT_MODES = ("raw", "percentile", "invert")
PERCENTILES = (1.0, 99.0)  # the grey levels mapped to 0 and 1 by "percentile" and "invert"


def to_input(image: np.ndarray, channels: int = 3) -> np.ndarray:
    """THE preprocessing, shared by training and prediction: ``uint8 (H, W, 3)`` -> ``float32
    (C, H, W)`` in [0, 1] (divided by 255; ``channels=1`` averages R, G and B).

    Nothing else (no per-image normalisation): what the network sees at training time is
    exactly what it sees at prediction time.

    Used in notebook 08.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"to_input expects the uint8 image of read_dsb_sample(), got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"to_input expects an (H, W, 3) or (H, W) image, got {image.shape}")
    x = np.moveaxis(image, -1, 0).astype(np.float32) / 255.0  # (C, H, W)
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if channels != 3:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return np.ascontiguousarray(np.broadcast_to(x, (3,) + x.shape[1:]))


class InputStats(NamedTuple):
    """What a mode measures on the whole image: the values mapped to 0 and 1, and inversion.

    Not built in a notebook: the training tiles and to_network_input call it.
    """

    low: float  # value (0..255, after any inversion) mapped to 0
    high: float  # value mapped to 1
    inverted: bool  # whether the image is inverted (255 - x) first


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected the uint8 image of the reader (read_dsb_sample), got "
                        f"{image.dtype}; convert with (x * 255).round().astype(np.uint8) if it is"
                        f" a float image in [0, 1]")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
    return image


def _check_mode(mode: str, channels: int) -> None:
    if mode not in INPUT_MODES:
        raise ValueError(f"mode must be one of {INPUT_MODES}, got {mode!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")


def bright_background(image: np.ndarray) -> bool:
    """Whether the background is bright (brightfield, stained tissue): the rule of
    :func:`~unet_lesson.data.modality_of` - at least half of the pixels have a grey level
    (mean of R, G, B) of 128 or more.

    Not built in a notebook: the training tiles and to_network_input call it.
    """
    image = _check_image(image)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    dark = (image.sum(axis=-1, dtype=np.int32) < 3 * DARK_BACKGROUND).mean() > 0.5
    return not dark


def _values(image: np.ndarray, channels: int, inverted: bool) -> np.ndarray:
    """``float32 (C, H, W)`` in 0..255: the channels to normalise (grey for 1), inverted or not."""
    x = np.moveaxis(image, -1, 0).astype(np.float32)  # (C0, H, W)
    x = x.mean(axis=0, keepdims=True) if channels == 1 else np.broadcast_to(
        x, (3,) + x.shape[1:])  # (C, H, W)
    return 255.0 - x if inverted else x


def input_stats(image: np.ndarray, mode: str = "percentile", channels: int = 3) -> InputStats:
    """Measure ``image`` (``uint8 (H, W, 3)``) for ``mode``: see :func:`to_network_input`.

    ``"raw"`` gives ``(0, 255, False)``. For the other modes ``low`` and ``high`` are the
    :data:`PERCENTILES` of the values to normalise; when they are closer than one grey level
    (an image that is nearly constant but for a few pixels) the minimum and maximum are used
    instead, and a constant image keeps ``high = low + 1`` (its input is all zeros).

    Not built in a notebook: the training tiles and to_network_input call it.
    """
    image = _check_image(image)
    _check_mode(mode, channels)
    if mode == "raw":
        return InputStats(0.0, 255.0, False)
    inverted = mode == "invert" and bright_background(image)
    values = _values(image, channels, inverted)
    low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    if high - low < 1.0:  # degenerate percentiles: fall back on the full range
        low, high = float(values.min()), float(values.max())
    if high - low < 1.0:  # a constant image: no contrast to stretch
        high = low + 1.0
    return InputStats(low, high, inverted)


def normalise(values: np.ndarray, stats: InputStats, channels: int = 3) -> np.ndarray:
    """Apply measured ``stats`` to ``values`` (``float (3, H, W)`` grey levels in 0..255, e.g.
    a window of the image, possibly colour-augmented): the grey level for ``channels=1``,
    inversion, then ``low -> 0`` and ``high -> 1``, clipped. Returns ``float32 (C, H, W)``.

    This is the last step of :func:`to_network_input`; training tiles call it on their
    window with the whole image's ``stats``, so they see exactly what prediction sees.

    Not built in a notebook: the training tiles and to_network_input call it.
    """
    _check_mode("raw", channels)
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"values must be (C, H, W) with C = 1 or 3, got shape {x.shape}")
    if channels == 1:
        x = x.mean(axis=0, keepdims=True)
    elif x.shape[0] == 1:
        x = np.broadcast_to(x, (3,) + x.shape[1:])
    if stats.inverted:
        x = 255.0 - x
    x = (x - stats.low) / max(stats.high - stats.low, 1e-6)
    return np.ascontiguousarray(np.clip(x, 0.0, 1.0), dtype=np.float32)  # (C, H, W)


def to_network_input(image: np.ndarray, mode: str = "raw", channels: int = 3,
                     stats: InputStats | None = None) -> np.ndarray:
    """THE preprocessing, shared by training and prediction: ``uint8 (H, W, 3)`` ->
    ``float32 (C, H, W)`` in [0, 1].

    ``mode`` is one of :data:`INPUT_MODES` (see the module docstring):

    * ``"raw"``: :math:`x / 255`, :func:`~unet_lesson.data.to_input` (the grey level up to
      float rounding: the mean is taken before the division here);
    * ``"percentile"``: the image's 1st and 99th percentiles map to 0 and 1, clipped;
    * ``"invert"``: bright-background images are inverted (nuclei bright, as in
      fluorescence), then as ``"percentile"``.

    Every mode ends in :func:`normalise`, which the training tiles call on their windows.
    ``channels``: 3 (RGB) or 1 (grey, the mean of R, G, B, as in the paper). ``stats``: the
    numbers measured by :func:`input_stats` on the whole image, when ``image`` is a window of
    it (default: measured on ``image`` itself). The same image always gives the same input.

    Built in notebook 08; used in notebooks 10 and 12.
    """
    image = _check_image(image)
    if stats is None:
        stats = input_stats(image, mode, channels)
    _check_mode(mode, channels)
    values = np.moveaxis(image, -1, 0).astype(np.float32)  # (C0, H, W) in 0..255
    return normalise(values, stats, channels)
