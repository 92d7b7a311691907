r"""The paper's data augmentation (section 3.1) on a whole batch, on the training device.

:mod:`~unet_lesson.data.augment` deforms one tile at a time in numpy inside a DataLoader
worker: a GPU trains on more tiles a second than a couple of CPU cores deform. This module
does the same augmentations as tensor operations on a batch that has already reached the
device (CPU or CUDA: everything runs on the device of the input tensors), the same pixels for
the same random draws (the tests check it against augment.py):

* :func:`elastic_displacement_batch` - the paper's 3x3 grid of Gaussian displacements (10 px
  standard deviation) per tile, interpolated bicubically to every pixel (one matrix product
  per axis, with the weights of ``F.interpolate(mode="bicubic", align_corners=True)``).
* :func:`sample_at` - :func:`~unet_lesson.data.augment.warp` for a batch: one ``grid_sample``
  for the images (bicubic, clipped to each image's own range) and one for the labels (nearest
  neighbour, so no new or blended ids), mirrored at the borders.
* :func:`draw_symmetries` - one of the 8 symmetries of a square per tile (moved exactly).
* :func:`draw_grey_values`, :func:`apply_grey_values` - gamma, contrast and brightness per tile.
* :class:`BatchAugment` - all of them in the order of
  :func:`~unet_lesson.data.augment.augment_window`, configured by the same
  :class:`~unet_lesson.data.augment.Augment`.
The DataLoader side is :class:`~unet_lesson.data.tiles.TileDataset` with ``augment=None`` and a
``margin``: windows cut ``margin`` pixels larger on every side and not augmented. Targets made
from labels must be computed *after* the deformation: :mod:`unet_lesson.batches`.

Usage (``s = in_size + 2 * margin``; valid padding: crop the targets to the output size after)::

    margin = Augment().margin()                               # 40 px
    loader = DataLoader(TileDataset(samples, 256, margin=margin), batch_size=8)
    augment = BatchAugment(Augment(), torch.Generator().manual_seed(0))
    for batch in loader:
        images, labels = batch["image"].to(device), batch["labels"].to(device)  # (B, C, s, s)
        images, labels = augment(images, labels, margin)  # (B, C, in, in), (B, in, in)
        target = center_crop(three_class_target_batch(labels), out_size, out_size)

Random numbers come from a ``torch.Generator``: the same seed gives the same augmentations.
They are drawn on the generator's device (a CPU generator serves a CUDA batch) and moved.

Not built in a notebook: training with ``augment_on_device`` (:mod:`unet_lesson.batches`).

Speed: ``benchmarks/bench_augment.py`` measures both paths (its figures: ``docs/benchmarks.md``).
What the batched path removes is the per-tile overhead: the bicubic upsampling of the 3x3 grid
(two matrix products), ``pow``, numpy copies, three interpolations of a grey RGB tile. On a
GPU it leaves the DataLoader only the cutting of windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import Augment

# --------------------------------------------------------------------------------------------
# Random draws: on the generator's device, then moved to the batch's device
# --------------------------------------------------------------------------------------------


def _normal(generator: torch.Generator, size: tuple[int, ...], device) -> Tensor:
    """Standard normal draws of ``size`` from ``generator``, on ``device``."""
    return torch.randn(size, generator=generator, device=generator.device).to(device)


def _uniform(generator: torch.Generator, size: tuple[int, ...], device) -> Tensor:
    """Uniform [0, 1) draws of ``size`` from ``generator``, on ``device``."""
    return torch.rand(size, generator=generator, device=generator.device).to(device)


# --------------------------------------------------------------------------------------------
# Elastic deformation (section 3.1)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _bicubic_matrix(n_out: int, n_in: int) -> Tensor:
    """``(n_out, n_in)`` weights of 1-D bicubic interpolation (``align_corners=True``).

    Taken from ``F.interpolate`` itself (each input point in turn set to 1), so the
    matrix form below gives the same field as interpolating the grid in one call.
    """
    impulses = torch.eye(n_in).view(n_in, 1, n_in, 1)  # (n_in, 1, n_in, 1): one 1 per item
    rows = F.interpolate(impulses, size=(n_out, 1), mode="bicubic", align_corners=True)
    return rows[:, 0, :, 0].T.contiguous()  # (n_out, n_in)


def displacement_from_grid(coarse: Tensor, shape: tuple[int, int]) -> Tensor:
    r"""The per-pixel displacements ``(B, 2, H, W)`` from coarse grids ``(B, 2, g, g)`` (px).

    Bicubic interpolation is separable: :math:`d = W_y \, c \, W_x^T` with the ``(H, g)``
    and ``(W, g)`` weight matrices of ``F.interpolate(..., mode="bicubic",
    align_corners=True)``: two small matrix products instead of 16 taps per pixel (30x
    faster on a CPU than ``F.interpolate`` of the grid). The grid's corners sit on the corner
    pixels, as in :func:`~unet_lesson.data.augment.elastic_displacement`.
    """
    if coarse.ndim != 4 or coarse.shape[1] != 2:
        raise ValueError(f"coarse must be (B, 2, g_rows, g_cols) row and column offsets, "
                         f"got shape {tuple(coarse.shape)}")
    height, width = shape
    rows = _bicubic_matrix(height, coarse.shape[2]).to(coarse)  # (H, g)
    cols = _bicubic_matrix(width, coarse.shape[3]).to(coarse)  # (W, g)
    return rows @ coarse @ cols.T  # (B, 2, H, W)


def elastic_displacement_batch(generator: torch.Generator, batch: int, shape: tuple[int, int],
                               grid: int = 3, sigma: float = 10.0, device=None) -> Tensor:
    r"""``batch`` smooth random displacement fields, float32 ``(B, 2, H, W)`` (px).

    Per tile, ``grid x grid`` displacement vectors :math:`\sim \mathcal{N}(0, \sigma^2)`
    (the paper: 3x3, :math:`\sigma` = 10 px) on a grid spanning the tile, interpolated
    bicubically to every pixel (:func:`displacement_from_grid`). The batched
    :func:`~unet_lesson.data.augment.elastic_displacement`.
    """
    coarse = sigma * _normal(generator, (batch, 2, grid, grid), device)  # (B, 2, g, g)
    return displacement_from_grid(coarse, shape)


def source_positions(displacement: Tensor, offset: tuple[int, int] = (0, 0)) -> Tensor:
    """Where each output pixel samples its source: ``(B, 2, H, W)`` rows and columns (px).

    Pixel ``(y, x)`` of tile ``b`` samples ``(y + offset[0] + d[b, 0, y, x], x + offset[1] +
    d[b, 1, y, x])``.
    """
    height, width = displacement.shape[-2:]
    device = displacement.device
    rows = torch.arange(height, dtype=torch.float32, device=device)[:, None] + offset[0]
    cols = torch.arange(width, dtype=torch.float32, device=device)[None, :] + offset[1]
    positions = torch.empty_like(displacement, dtype=torch.float32)  # (B, 2, H, W)
    torch.add(rows, displacement[:, 0], out=positions[:, 0])  # (H, 1) + (B, H, W)
    torch.add(cols, displacement[:, 1], out=positions[:, 1])  # (1, W) + (B, H, W)
    return positions


def _sampling_grid(positions: Tensor, src_h: int, src_w: int) -> Tensor:
    """``grid_sample``'s grid ``(B, H, W, 2)``: (x, y) in [-1, 1], +-1 the corner pixels.

    ``2 * p / (size - 1) - 1``, the float32 operations of ``augment.warp`` (the same bits),
    written straight into the grid.
    """
    grid = positions.new_empty(positions.shape[:1] + positions.shape[2:] + (2,))
    for axis, size in ((1, src_w), (0, src_h)):  # x (columns) first, then y (rows)
        out = grid[..., 1 - axis]  # (B, H, W) view
        torch.mul(positions[:, axis], 2, out=out).div_(max(size - 1, 1)).sub_(1)
    return grid


def _taps_inside(positions: Tensor, src_h: int, src_w: int) -> bool:
    """True when every bicubic tap (floor - 1 .. floor + 2) lies inside the source.

    Then nothing is mirrored and ``grid_sample``'s ``border`` mode gives exactly its
    ``reflection`` mode's result, twice as fast on a CPU. The 0.01 px of safety cover the
    rounding of grid_sample's own coordinate arithmetic.
    """
    low = positions.amin(dim=(0, 2, 3))  # (2,) smallest row and column
    high = positions.amax(dim=(0, 2, 3))
    size = torch.tensor([src_h, src_w], dtype=high.dtype, device=high.device)
    return bool((low >= 1.01).all() & (high <= size - 2.01).all())  # one sync per batch


def _bicubic(images: Tensor, grid: Tensor, padding: str) -> Tensor:
    """Bicubic ``grid_sample`` of ``images (B, C, Hs, Ws)`` at ``grid (B, H, W, 2)``.

    A grey tile (its C channels equal: most microscopy images read as RGB) is interpolated
    once and copied, 3x less work. One call for the batch when its tiles are all grey or all
    colour; a mixed batch goes tile by tile (views, no copies: faster on a CPU than gathering
    the grey and the colour tiles into two batches).
    """
    sample = partial(F.grid_sample, mode="bicubic", padding_mode=padding, align_corners=True)
    channels = images.shape[1]
    if channels == 1:
        return sample(images, grid)  # (B, 1, H, W)
    grey = (images[:, 1:] == images[:, :1]).flatten(1).all(dim=1).cpu()  # (B,) on the host
    if not grey.any():
        return sample(images, grid)  # (B, C, H, W)
    if grey.all():
        return sample(images[:, :1], grid).expand(-1, channels, -1, -1).contiguous()
    out = grid.new_empty(images.shape[:2] + grid.shape[1:3])  # (B, C, H, W)
    for b, one in enumerate(grey.tolist()):
        out[b] = sample(images[b : b + 1, : 1 if one else channels], grid[b : b + 1])[0]
    return out


def sample_at(images: Tensor, labels: Tensor | None, positions: Tensor
              ) -> tuple[Tensor, Tensor | None]:
    """``images (B, C, Hs, Ws)`` and ``labels (B, Hs, Ws)`` sampled at ``positions (B, 2, H, W)``.

    ``positions`` are (row, column) source coordinates in px (:func:`source_positions`).
    Bicubic for the images, each tile clipped to its own input range (bicubic overshoots);
    nearest for the integer labels (exact for ids < 2**24: no new, no blended ids); positions
    outside the source are mirrored (numpy's ``reflect``). Returns ``(B, C, H, W)`` float32
    and ``(B, H, W)`` of the labels' dtype.
    """
    src_h, src_w = images.shape[-2:]
    grid = _sampling_grid(positions, src_h, src_w)  # (B, H, W, 2)
    padding = "border" if _taps_inside(positions, src_h, src_w) else "reflection"
    warped = _bicubic(images.float(), grid, padding)  # (B, C, H, W)
    low = images.amin(dim=(1, 2, 3)).view(-1, 1, 1, 1).float()  # (B, 1, 1, 1)
    high = images.amax(dim=(1, 2, 3)).view(-1, 1, 1, 1).float()
    warped.clamp_(low, high)
    if labels is None:
        return warped, None
    ids = labels[:, None].float()  # (B, 1, Hs, Ws), exact for ids < 2**24
    moved = F.grid_sample(ids, grid, mode="nearest", padding_mode="reflection",
                          align_corners=True)[:, 0]  # (B, H, W)
    return warped, moved.to(labels.dtype)


# --------------------------------------------------------------------------------------------
# Flips and 90-degree rotations
# --------------------------------------------------------------------------------------------


# Each symmetry of the square as one flip (a copy) and maybe a transpose (a view):
# code = turns % 4 + 4 * mirrored, for np.rot90(x, turns, axes=(-2, -1)) then x[..., ::-1]
SYMMETRIES = {
    0: ((), False), 1: ((-1,), True), 2: ((-2, -1), False), 3: ((-2,), True),  # turns
    4: ((-1,), False), 5: ((-2, -1), True), 6: ((-2,), False), 7: ((), True),  # + mirror
}


def _symmetries(tensors: Sequence[Tensor], code: Tensor) -> list[Tensor]:
    """Tile ``b`` of every ``(B, ..., H, W)`` tensor moved by symmetry ``code[b]`` (0..7).

    Exact (pixels are moved, not interpolated): per tile one flip and a copy into the output,
    a loop over the tiles of the batch (faster on a CPU than gathering, or than moving the
    tiles with the same symmetry together, for batches of 8).
    """
    outputs = [torch.empty_like(t) for t in tensors]
    for b, symmetry in enumerate(code.tolist()):
        dims, transpose = SYMMETRIES[symmetry]
        for tensor, out in zip(tensors, outputs, strict=True):
            moved = tensor[b].flip(dims) if dims else tensor[b]  # (..., H, W)
            out[b] = moved.transpose(-2, -1) if transpose else moved
    return outputs


def _symmetry_code(turns: Tensor, flips: Tensor) -> Tensor:
    """One number 0..7 per tile: ``turns % 4 + 4 * flips`` (on the host)."""
    return turns.cpu().long() % 4 + 4 * flips.cpu().long()


def draw_symmetries(generator: torch.Generator, batch: int, square: bool = True,
                    flips: bool = True, rot90: bool = True) -> tuple[Tensor, Tensor]:
    """Random ``(turns, flips)``, int64 and bool (B,) on the host: with both, each of the 8
    symmetries of a square is equally likely. A non-square tile turns by 0 or 180 degrees
    only (90 would swap its height and width), as in ``augment.flip_rotate``.
    """
    draws = torch.rand((2, batch), generator=generator, device=generator.device).cpu()
    turns = torch.zeros(batch, dtype=torch.long)
    if rot90:
        turns = (draws[0] * 4).long().clamp_(max=3) if square else 2 * (draws[0] < 0.5).long()
    mirror = draws[1] < 0.5 if flips else torch.zeros(batch, dtype=torch.bool)
    return turns, mirror


# --------------------------------------------------------------------------------------------
# Grey values
# --------------------------------------------------------------------------------------------


def apply_grey_values(images: Tensor, gamma: Tensor, contrast: Tensor, brightness: Tensor
                      ) -> Tensor:
    r"""Tile ``b`` of ``images (B, C, H, W)`` in [0, 1] becomes :math:`((x^g - m) c + m + b)`.

    ``gamma`` g, ``contrast`` c and ``brightness`` b are (B,) per tile; ``m`` is the tile's
    mean after the gamma (over all its channels and pixels); the result is clipped to [0, 1].
    The formula of :func:`~unet_lesson.data.augment.grey_values`. :math:`x^g` is computed as
    :math:`e^{g \ln x}` (faster than ``pow`` on a CPU; :math:`0^g = 0`).
    """
    g, c, b = (v.to(images).view(-1, 1, 1, 1) for v in (gamma, contrast, brightness))
    out = images.clamp(0.0, 1.0).log_().mul_(g).exp_()  # (B, C, H, W) x ** g
    mean = out.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return out.sub_(mean).mul_(c).add_(mean + b).clamp_(0.0, 1.0)


def draw_grey_values(generator: torch.Generator, batch: int, gamma: float = 0.3,
                     contrast: float = 0.2, brightness: float = 0.1, device=None
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Random ``(g, c, b)``, each (B,): ``g = exp(U(-gamma, gamma))``, ``c ~ U(1 - contrast,
    1 + contrast)``, ``b ~ U(-brightness, brightness)`` (image values in [0, 1]).
    """
    u = _uniform(generator, (3, batch), device)  # (3, B)
    return (torch.exp(gamma * (2 * u[0] - 1)), 1 + contrast * (2 * u[1] - 1),
            brightness * (2 * u[2] - 1))


# --------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------


class Draws(NamedTuple):
    """The random choices :class:`BatchAugment` makes for one batch of B tiles.
    """

    deform: Tensor  # bool (B,) on the host: which tiles are deformed
    coarse: Tensor | None  # (B, 2, g, g) grid displacements (px); None: no deformation
    turns: Tensor  # int64 (B,) on the host: turns by 90 degrees (np.rot90's direction)
    mirror: Tensor  # bool (B,) on the host: mirrored left-right after the turn
    grey: tuple[Tensor, Tensor, Tensor] | None  # gamma, contrast, brightness (B,); None: off


class BatchAugment:
    """The augmentations of :func:`~unet_lesson.data.augment.augment_window` on a batch.

    Args:
        augment: which augmentations and how strong (the same :class:`Augment` as the
            per-tile path; ``None`` for the defaults: the paper's deformation).
        generator: the source of every random draw (seed it for reproducible batches); it
            may live on another device than the batches.

    ``augment(images, labels, margin)`` takes windows ``images (B, C, s, s)`` float in [0, 1]
    and ``labels (B, s, s)`` int, cut ``margin`` px larger than the tile on every side
    (``s = tile + 2 margin``; :meth:`Augment.margin` is enough for the deformation) and
    returns ``(B, C, tile, tile)`` float32 and ``(B, tile, tile)`` labels of the input dtype.
    Order: elastic deformation (each tile with chance ``elastic_p``; the others just lose
    their margin), a symmetry of the square, grey values. Section 3.1 of the paper.

    It is :meth:`draw` (every random choice, a :class:`Draws`) then :meth:`apply`. A deformed
    tile is turned and mirrored by moving its sampling positions before the interpolation
    (2 planes moved instead of the C image channels and the labels): the same pixels as
    deforming first and turning after.
    """

    def __init__(self, augment: Augment | None = None,
                 generator: torch.Generator | None = None):
        self.augment = augment if augment is not None else Augment()
        self.generator = generator if generator is not None else torch.Generator()

    def __call__(self, images: Tensor, labels: Tensor, margin: int) -> tuple[Tensor, Tensor]:
        _check_windows(images, labels, margin)
        tile = (images.shape[-2] - 2 * margin, images.shape[-1] - 2 * margin)
        return self.apply(images, labels, margin, self.draw(images.shape[0], tile,
                                                            images.device))

    def draw(self, batch: int, tile: tuple[int, int], device=None) -> Draws:
        """Every random choice for ``batch`` tiles of ``tile`` px, in a fixed order."""
        a, gen = self.augment, self.generator
        deform, coarse, grey = torch.zeros(batch, dtype=torch.bool), None, None
        if a.elastic:
            deform = _uniform(gen, (batch,), "cpu") < a.elastic_p
            coarse = a.elastic_sigma * _normal(gen, (batch, 2, a.elastic_grid, a.elastic_grid),
                                               device)  # (B, 2, g, g) px
        turns, mirror = draw_symmetries(gen, batch, tile[0] == tile[1], a.flips, a.rot90)
        if a.grey:
            grey = draw_grey_values(gen, batch, a.gamma, a.contrast, a.brightness, device)
        return Draws(deform, coarse, turns, mirror, grey)

    @staticmethod
    def apply(images: Tensor, labels: Tensor, margin: int, draws: Draws
              ) -> tuple[Tensor, Tensor]:
        """The augmentations chosen in ``draws`` on windows ``(B, C, s, s)``, ``(B, s, s)``."""
        _check_windows(images, labels, margin)
        tile = (images.shape[-2] - 2 * margin, images.shape[-1] - 2 * margin)
        code = _symmetry_code(draws.turns, draws.mirror)  # (B,) 0..7 on the host
        images, deform = images.float(), draws.deform.cpu()
        if bool(deform.all()):
            out_images, out_labels = _deform(images, labels, draws.coarse, code, margin)
        else:  # the central crops first, then the deformed tiles over them
            crop = (..., slice(margin, margin + tile[0]), slice(margin, margin + tile[1]))
            out_images, out_labels = _symmetries([images[crop], labels[crop]], code)
            if deform.any():
                index = deform.nonzero()[:, 0].to(images.device)
                deformed = _deform(images[index], labels[index], draws.coarse[index],
                                   code[deform], margin)
                out_images[index], out_labels[index] = deformed
        if draws.grey is not None:
            out_images = apply_grey_values(out_images, *draws.grey)
        return out_images, out_labels


def _deform(images: Tensor, labels: Tensor, coarse: Tensor, code: Tensor, margin: int
            ) -> tuple[Tensor, Tensor]:
    """Deform windows (``coarse`` grids), cut the tiles from their middle, turn/mirror them
    (``code``, by moving the sampling positions)."""
    tile = (images.shape[-2] - 2 * margin, images.shape[-1] - 2 * margin)
    displacement = displacement_from_grid(coarse, tile)  # (B, 2, t, t) px
    positions = source_positions(displacement, (margin, margin))  # (B, 2, t, t)
    return sample_at(images, labels, _symmetries([positions], code)[0])


def _check_windows(images: Tensor, labels: Tensor, margin: int) -> None:
    """Clear errors for inputs that are not windows of tiles plus their margin."""
    if images.ndim != 4 or labels.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(f"BatchAugment wants images (B, C, s, s) and labels (B, s, s), got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    if margin < 0 or min(images.shape[-2:]) <= 2 * margin:
        raise ValueError(f"margin {margin} px does not fit windows of "
                         f"{tuple(images.shape[-2:])}: the windows must be the tile plus "
                         "margin px on every side (TileDataset with a margin)")
    if labels.is_floating_point():
        raise TypeError(f"labels must hold integer nucleus ids, got {labels.dtype}")
