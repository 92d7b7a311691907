r"""Data augmentation as in the paper (section 3.1), on a training tile and its labels.

"In case of microscopical images we primarily need shift and rotation invariance as well as
robustness to deformations and gray value variations. Especially random elastic deformations of the training samples seem to
be the key concept to train a segmentation network with very few annotated images. We
generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid. The
displacements are sampled from a Gaussian distribution with 10 pixels standard deviation.
Per-pixel displacements are then computed using bicubic interpolation."

* :func:`elastic_displacement` - the 3x3 grid of Gaussian displacements (standard deviation
  10 px), interpolated bicubically to every pixel: a field :math:`d(x)` of shape (2, H, W).
* :func:`warp` - the deformed tile :math:`I'(x) = I(x + d(x))`: bicubic interpolation for the
  image, nearest neighbour for the label image (so every output label is an input label:
  no new ids, no blended ids), mirrored at the borders. It uses ``torch``'s ``grid_sample``.
* :func:`flip_rotate` - mirror images and 90-degree rotations (exact, no interpolation).
* :func:`grey_values` - "gray value variations": gamma, contrast and brightness.

The tile Dataset (:mod:`~unet_lesson.data.tiles`) deforms only the crop it needs plus a
margin, so the cost grows with the tile, not the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Which augmentations to draw, and how strong (defaults: the paper's deformation).

    Used in notebooks 08 and 10.
    """

    elastic: bool = True  # the paper's elastic deformation
    elastic_p: float = 1.0  # chance that a tile is deformed (the paper: every tile)
    elastic_sigma: float = 10.0  # standard deviation of the grid displacements (pixels)
    elastic_grid: int = 3  # the coarse grid is elastic_grid x elastic_grid points
    flips: bool = True  # mirror left-right (with rotations: all 8 symmetries of a square)
    rot90: bool = True  # rotate by 0, 90, 180 or 270 degrees
    grey: bool = True  # grey value variations below
    gamma: float = 0.3  # gamma drawn as exp(U(-gamma, gamma))
    contrast: float = 0.2  # contrast factor drawn from U(1 - contrast, 1 + contrast)
    brightness: float = 0.1  # offset drawn from U(-brightness, brightness) (image in [0, 1])

    def margin(self) -> int:
        """Extra pixels around a tile that a deformation may pull in (4 standard deviations)."""
        return int(np.ceil(4 * self.elastic_sigma)) if self.elastic else 0


def elastic_displacement(rng: np.random.Generator, shape: tuple[int, int], grid: int = 3,
                         sigma: float = 10.0) -> np.ndarray:
    r"""A smooth random displacement field ``float32 (2, H, W)`` (row, column offsets in px).

    ``grid x grid`` displacement vectors :math:`\sim \mathcal{N}(0, \sigma^2)` sit on a grid
    spanning the tile (the corners are grid points); bicubic interpolation (``align_corners``)
    gives the per-pixel displacements.

    Notebook 08 builds the same field by hand and checks it through :func:`elastic_deform`.

    Not built in a notebook on its own: :func:`elastic_deform` calls it.
    """
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid)).astype(np.float32)  # (2, 3, 3)
    field = F.interpolate(torch.from_numpy(coarse)[None], size=tuple(shape), mode="bicubic",
                          align_corners=True)
    return field[0].numpy()  # (2, H, W)


def warp(image: np.ndarray, labels: np.ndarray | None, displacement: np.ndarray,
         offset: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Sample ``image (C, Hs, Ws)`` and ``labels (Hs, Ws)`` at :math:`x + \text{offset} + d(x)`.

    The output has the displacement's size (H, W): pixel ``(y, x)`` comes from the source at
    ``(y + offset[0] + dy, x + offset[1] + dx)``. Bicubic for the image (values clipped to the
    input's range), nearest for the labels; positions outside the source are mirrored.

    Notebook 08 builds the same resampling by hand and checks it through :func:`elastic_deform`.

    Not built in a notebook on its own: :func:`elastic_deform` calls it.
    """
    height, width = displacement.shape[1:]
    src_h, src_w = image.shape[-2:]
    rows = np.arange(height, dtype=np.float32)[:, None] + offset[0] + displacement[0]
    cols = np.arange(width, dtype=np.float32)[None, :] + offset[1] + displacement[1]
    # grid_sample wants (x, y) in [-1, 1], -1 and 1 being the centres of the corner pixels
    grid = np.stack([2 * cols / max(src_w - 1, 1) - 1, 2 * rows / max(src_h - 1, 1) - 1], -1)
    grid = torch.from_numpy(grid.astype(np.float32))[None]  # (1, H, W, 2)
    source = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    warped = F.grid_sample(source, grid, mode="bicubic", padding_mode="reflection",
                           align_corners=True)[0]  # (C, H, W)
    warped = warped.clamp(float(image.min()), float(image.max())).numpy()
    if labels is None:
        return warped, None
    ids = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))[None, None]
    moved = F.grid_sample(ids, grid, mode="nearest", padding_mode="reflection",
                          align_corners=True)[0, 0]  # (H, W), exact: ids < 2**24
    return warped, moved.numpy().astype(labels.dtype)


def elastic_deform(image: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator,
                   out_shape: tuple[int, int] | None = None, margin: int = 0, sigma: float = 10.0,
                   grid: int = 3) -> tuple[np.ndarray, np.ndarray | None]:
    """The paper's elastic deformation of ``image (C, H, W)`` and ``labels (H, W)``.

    With ``margin`` > 0 the inputs are a window ``margin`` pixels larger than the wanted tile
    on every side, and the deformed ``out_shape`` tile (default: the input less the margins)
    is cut from its middle: displaced pixels near the tile's edge then come from real
    neighbours, not from mirroring.

    Built in notebook 08.
    """
    if out_shape is None:
        out_shape = (image.shape[-2] - 2 * margin, image.shape[-1] - 2 * margin)
    displacement = elastic_displacement(rng, out_shape, grid, sigma)
    return warp(image, labels, displacement, offset=(margin, margin))


def flip_rotate(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                flips: bool = True, rot90: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A random mirror image and/or 90-degree rotation of ``(C, H, W)`` and ``(H, W)`` arrays.

    Rotations by 90 or 270 degrees swap height and width, so they are drawn for square tiles
    only (180 degrees for the others).

    Not built in a notebook: :func:`augment_window` calls it.
    """
    if rot90:
        square = image.shape[-1] == image.shape[-2]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
        image, labels = np.rot90(image, k, axes=(-2, -1)), np.rot90(labels, k)
    if flips and rng.random() < 0.5:
        image, labels = image[..., ::-1], labels[..., ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def grey_values(image: np.ndarray, rng: np.random.Generator, gamma: float = 0.3,
                contrast: float = 0.2, brightness: float = 0.1) -> np.ndarray:
    r"""Random gray value changes of an image in [0, 1]: :math:`((x^g - m) c + m + b)`, clipped.

    ``g = exp(U(-gamma, gamma))``, ``c ~ U(1 - contrast, 1 + contrast)``, ``b ~
    U(-brightness, brightness)``, ``m`` the mean after the gamma. The same for all channels.

    Used in notebook 08.
    """
    g = float(np.exp(rng.uniform(-gamma, gamma)))
    c = float(rng.uniform(1 - contrast, 1 + contrast))
    b = float(rng.uniform(-brightness, brightness))
    out = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).clamp(0.0, 1.0) ** g
    mean = float(out.mean())
    return ((out - mean) * c + (mean + b)).clamp_(0.0, 1.0).numpy()


def augment_window(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   augment: Augment, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All augmentations on a window ``margin`` pixels larger than the tile on every side.

    Order: elastic deformation (with chance ``elastic_p``; otherwise just the central crop),
    flips and rotations, grey values.
    Returns the tile ``(C, H, W)`` float32 and its labels ``(H, W)``.

    Not built in a notebook: :class:`~unet_lesson.data.tiles.TileDataset` calls it.
    """
    if augment.elastic and (augment.elastic_p >= 1.0 or rng.random() < augment.elastic_p):
        image, labels = elastic_deform(image, labels, rng, margin=margin,
                                       sigma=augment.elastic_sigma, grid=augment.elastic_grid)
    elif margin:
        image = image[..., margin:-margin, margin:-margin]
        labels = labels[margin:-margin, margin:-margin]
    image, labels = flip_rotate(image, labels, rng, augment.flips, augment.rot90)
    if augment.grey:
        image = grey_values(image, rng, augment.gamma, augment.contrast, augment.brightness)
    return image, labels
