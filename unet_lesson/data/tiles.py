r"""Training tiles: the overlap-tile geometry of the paper (section 2, Figure 2) as a Dataset.

A valid-padding U-Net sees a larger *input tile* than the *output* it predicts: the paper's
572x572 input gives a 388x388 segmentation, the centre of the input. The 92 pixels of
*context* on each side must come from somewhere; at the image border "the missing context is
extrapolated by mirroring the input image". :class:`TileDataset` yields exactly that:

* ``padding="valid"``: an input tile ``in_size`` (from :func:`~unet_lesson.sizes.
  input_size_for_output`) and targets of the network's output size ``out_size`` (from
  :func:`~unet_lesson.sizes.output_size`), the targets aligned with the centre of the input;
  any part of the input window outside the image is mirrored;
* ``padding="same"``: input and targets of the same size.

Each item is a dict of tensors: ``"image"`` float32 (C, in, in) in the run's input mode (the
whole image's statistics applied to the window, :func:`~unet_lesson.data.normalise.normalise`:
what prediction sees), ``"labels"`` int64 (out, out) the nuclei ids, and whatever
``target_fn(labels_in)`` returns (for example the paper's weight map), computed on the
input-sized labels, so distances see the nuclei in the context, then cropped to the output
size.

An item is made in this order: cut the window (a little larger or smaller when the scale is
augmented), colour augmentations on its RGB values (:mod:`~unet_lesson.data.colour`), the
input normalisation, the change of scale, then the paper's augmentations
(:func:`~unet_lesson.data.augment.augment_window`: elastic deformation, flips and rotations,
grey values). With ``augment=None`` and a ``margin``, items are plain windows ``margin`` pixels
larger on every side, for augmentation on the training device
(:mod:`~unet_lesson.data.batch_augment`).

Crops and augmentations are drawn from ``np.random.default_rng([seed, epoch, index])``: an item
is the same whichever DataLoader worker makes it; :meth:`TileDataset.set_epoch` draws new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..networks.blocks import center_crop
from ..sizes import input_size_for_output, output_size
from .augment import Augment, augment_window
from .colour import ColourAugment, apply_colour, random_scale, rescale
from .normalise import input_stats, normalise


def tile_sizes(out_size: int, padding: str = "valid", depth: int = 4) -> tuple[int, int]:
    """``(in_size, out_size)`` of a square training tile with at least ``out_size`` outputs.

    ``valid``: the smallest legal input tile and its (possibly larger) output, e.g.
    ``tile_sizes(388) == (572, 388)`` and ``tile_sizes(256) == (444, 260)`` for depth 4.
    ``same``: ``(out_size, out_size)``.

    Used in notebook 08.
    """
    if padding == "same":
        if out_size < 1:
            raise ValueError(f"out_size must be positive, got {out_size}")
        return out_size, out_size
    if padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    in_size = input_size_for_output(out_size, depth, padding)
    return in_size, output_size(in_size, depth, padding)


def mirror_indices(start: int, length: int, size: int) -> np.ndarray:
    """Indices ``start .. start+length-1`` into an axis of ``size``, mirrored at both ends.

    Mirroring repeats as often as needed (``... 2 1 | 0 1 2 3 | 2 1 0 1 ...``, numpy's
    ``reflect`` mode), so a window may be larger than the image.

    Not built in a notebook: :func:`extract_window` calls it.
    """
    idx = np.arange(start, start + length)
    if size == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (size - 1)
    idx = np.mod(idx, period)
    return np.where(idx < size, idx, period - idx)


def extract_window(array: np.ndarray, top: int, left: int, height: int, width: int
                   ) -> np.ndarray:
    """The ``height x width`` window at ``(top, left)`` of an (H, W, ...) array, mirrored.

    Used in notebook 08.
    """
    size_y, size_x = array.shape[:2]
    if 0 <= top and top + height <= size_y and 0 <= left and left + width <= size_x:
        return array[top : top + height, left : left + width]  # inside: a plain slice
    rows = mirror_indices(top, height, size_y)
    cols = mirror_indices(left, width, size_x)
    return array.take(rows, axis=0).take(cols, axis=1)


class TileDataset(Dataset):
    """Random training tiles from a list of samples (see the module docstring for the items).

    Parameters
    ----------
    samples : ``DSBSample`` objects (``.image``, ``.labels``) or ``(image, labels)`` pairs,
        images ``uint8 (H, W, 3)``.
    out_size : the wanted output (target) size; for ``valid`` padding the tile may be a
        little larger (see :func:`tile_sizes`); read ``in_size`` and ``out_size`` afterwards.
    padding, depth : the U-Net's padding and depth (they fix the tile geometry).
    augment : an :class:`~unet_lesson.data.augment.Augment`, ``True`` for the defaults, or
        ``None``/``False`` for plain crops (validation).
    target_fn : ``labels_in (in, in) int64 -> dict[str, np.ndarray]`` of extra targets with
        (..., in, in) arrays; they are cropped to (..., out, out).
    tiles_per_image : items per image and epoch (``len = tiles_per_image * len(samples)``).
    channels : 3 (RGB) or 1 (grey, the paper's single channel).
    seed : with the epoch and the index, fixes every crop and augmentation.
    input_mode : how pixels become inputs (:data:`~unet_lesson.data.normalise.INPUT_MODES`),
        measured once on each whole image.
    colour : a :class:`~unet_lesson.data.colour.ColourAugment` (stain, hue, grey, contrast,
        blur, noise), or ``None``.
    scale : ``(low, high)``: zoom each tile by a factor drawn log-uniformly in that range
        (a change of magnification), or ``None``.
    margin : pixels of extra window on every side when ``augment`` is ``None`` (for
        augmentation on the device); with ``augment`` it is ``augment.margin()``.

    Built in notebook 08; used in notebook 10.
    """

    def __init__(self, samples: Sequence, out_size: int = 256, padding: str = "same",
                 depth: int = 4, augment: Augment | bool | None = None,
                 target_fn: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
                 tiles_per_image: int = 1, channels: int = 3, seed: int = 0,
                 input_mode: str = "raw", colour: ColourAugment | None = None,
                 scale: tuple[float, float] | None = None, margin: int = 0):
        self.pairs = [(s.image, s.labels) if hasattr(s, "labels") else (s[0], s[1])
                      for s in samples]
        if not self.pairs:
            raise ValueError("TileDataset needs at least one sample")
        # each image's normalisation, measured on the whole image (as prediction does)
        self.stats = [input_stats(image, input_mode, channels) for image, _ in self.pairs]
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0 pixels, got {margin}")
        if margin and not augment and target_fn is not None:
            raise ValueError("plain windows (margin without augment) are augmented on the "
                             "device, and their targets computed after that: pass "
                             "target_fn=None")
        self.input_mode, self.colour, self.scale = input_mode, colour, scale
        self.in_size, self.out_size = tile_sizes(out_size, padding, depth)
        self.context = (self.in_size - self.out_size) // 2  # pixels of context on each side
        self.padding, self.depth = padding, depth
        self.augment = Augment() if augment is True else (augment or None)
        self.target_fn = target_fn
        self.tiles_per_image = tiles_per_image
        self.channels = channels
        self.seed = seed
        self.epoch = 0
        self.margin = self.augment.margin() if self.augment else margin

    def __len__(self) -> int:
        return len(self.pairs) * self.tiles_per_image

    def set_epoch(self, epoch: int) -> None:
        """Draw new crops and augmentations (call at the start of every epoch)."""
        self.epoch = epoch

    def output_window(self, index: int) -> tuple[int, int, int]:
        """``(image number, top, left)`` of the output window of item ``index`` in its image.

        Uniform over positions inside the image; an image smaller than the tile is centred
        (the rest is mirrored).
        """
        rng = np.random.default_rng([self.seed, self.epoch, index])
        which = index % len(self.pairs)
        height, width = self.pairs[which][1].shape
        top, left = (int(rng.integers(0, n - self.out_size + 1)) if n >= self.out_size
                     else -((self.out_size - n) // 2) for n in (height, width))
        return which, top, left

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} tiles")
        which, top, left = self.output_window(index)
        # a second generator for the augmentation, so crops do not depend on the augmentation
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        image, labels = self.pairs[which]
        size = self.in_size + 2 * self.margin  # the window the augmentations need
        factor = random_scale(rng, *self.scale) if self.scale else 1.0
        source = size if factor == 1.0 else int(np.ceil(size / factor)) + 1
        start = self.context + self.margin + (source - size) // 2
        window = extract_window(image, top - start, left - start, source, source)  # (s, s, 3)
        labels_in = extract_window(labels, top - start, left - start, source, source)
        values = np.moveaxis(window, -1, 0).astype(np.float32)  # (3, s, s) in 0..255
        if self.colour is not None:
            values = 255.0 * apply_colour(values / 255.0, rng, self.colour)
        x = normalise(values, self.stats[which], self.channels)  # (C, s, s)
        if factor != 1.0:
            x, labels_in = rescale(x, labels_in, factor)  # >= size: cut the middle
            x, labels_in = center_crop(x, size, size), center_crop(labels_in, size, size)
        if self.augment:
            x, labels_in = augment_window(x, labels_in, rng, self.augment, self.margin)
        labels_in = labels_in.astype(np.int64)  # (in, in), or (s, s) for plain windows
        labels_out = center_crop(labels_in, self.out_size, self.out_size) if self.augment \
            or not self.margin else labels_in  # (out, out)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels_out)),
        }
        if self.target_fn is not None:
            for name, value in self.target_fn(labels_in).items():
                if name in item:
                    raise ValueError(f"target_fn returned {name!r}, which the dataset sets")
                value = np.asarray(value)
                if value.shape[-2:] != labels_in.shape:
                    raise ValueError(f"target_fn's {name!r} has shape {value.shape}; expected "
                                     f"(..., {self.in_size}, {self.in_size}), the input size")
                cropped = center_crop(value, self.out_size, self.out_size)
                item[name] = torch.from_numpy(np.ascontiguousarray(cropped))
        return item
