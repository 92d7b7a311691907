"""Test-only helpers: per-operation wrappers over the package's internals, so each batched
augmentation can be checked on its own against its per-tile numpy version, and a list of a
network's convolutions. Training never calls these; it goes through ``BatchAugment``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unet_lesson.data.batch_augment import (
    _symmetries,
    _symmetry_code,
    apply_grey_values,
    draw_grey_values,
    draw_symmetries,
    elastic_displacement_batch,
    sample_at,
    source_positions,
)


def conv_layers(module: nn.Module) -> list[nn.Module]:
    """All convolution layers (3x3, 2x2 up-convolutions and 1x1), in order."""
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def warp_batch(images: Tensor, labels: Tensor | None, displacement: Tensor,
               offset: tuple[int, int] = (0, 0)) -> tuple[Tensor, Tensor | None]:
    r"""Sample ``images (B, C, Hs, Ws)`` and ``labels (B, Hs, Ws)`` at :math:`x + o + d(x)`.

    The batched :func:`~unet_lesson.data.augment.warp`: the output has the displacement's
    size ``(B, ·, H, W)``; pixel ``(y, x)`` of tile ``b`` comes from its source at ``(y +
    offset[0] + d[b, 0, y, x], x + offset[1] + d[b, 1, y, x])`` (px). Bicubic for the images
    (each tile clipped to its own input range), nearest for the labels, mirrored outside the
    source (see :func:`sample_at`). One ``grid_sample`` for the images, one for the labels.
    """
    if images.ndim != 4 or displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"warp_batch wants images (B, C, Hs, Ws) and a displacement "
                         f"(B, 2, H, W), got {tuple(images.shape)} and "
                         f"{tuple(displacement.shape)}")
    if labels is not None and labels.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(f"labels must be (B, Hs, Ws) = "
                         f"{tuple(images.shape[:1] + images.shape[2:])}, got "
                         f"{tuple(labels.shape)}")
    return sample_at(images, labels, source_positions(displacement.float(), offset))


def elastic_deform_batch(images: Tensor, labels: Tensor | None, generator: torch.Generator,
                         margin: int = 0, sigma: float = 10.0, grid: int = 3
                         ) -> tuple[Tensor, Tensor | None]:
    """The paper's elastic deformation of windows ``margin`` px larger than the tiles.

    The deformed ``(B, ·, Hs - 2 margin, Ws - 2 margin)`` tiles are cut from the middle of the
    windows, so displaced pixels near a tile's edge come from real neighbours, not mirroring
    (the batched :func:`~unet_lesson.data.augment.elastic_deform`).
    """
    shape = (images.shape[-2] - 2 * margin, images.shape[-1] - 2 * margin)
    displacement = elastic_displacement_batch(generator, images.shape[0], shape, grid, sigma,
                                              images.device)  # (B, 2, H, W)
    return warp_batch(images, labels, displacement, offset=(margin, margin))



def symmetry_batch(images: Tensor, labels: Tensor, turns: Tensor, flips: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """Tile ``b`` turned by ``turns[b]`` x 90 degrees, then mirrored left-right if ``flips[b]``.

    ``images (B, C, H, W)``, ``labels (B, H, W)``, ``turns`` int (B,), ``flips`` bool (B,):
    the convention of :func:`~unet_lesson.data.augment.flip_rotate` (``np.rot90``, then
    ``[..., ::-1]``). Odd turns need square tiles.
    """
    code = _symmetry_code(turns, flips)
    if (code % 2).any() and images.shape[-1] != images.shape[-2]:
        raise ValueError(f"90-degree turns need square tiles, got {tuple(images.shape[-2:])}; "
                         "use turns of 0 or 2")
    images, labels = _symmetries([images, labels], code)
    return images, labels



def flip_rotate_batch(images: Tensor, labels: Tensor, generator: torch.Generator,
                      flips: bool = True, rot90: bool = True) -> tuple[Tensor, Tensor]:
    """A random mirror image and/or 90-degree turn per tile (the batched ``flip_rotate``).
    """
    square = images.shape[-1] == images.shape[-2]
    turns, mirror = draw_symmetries(generator, images.shape[0], square, flips, rot90)
    return symmetry_batch(images, labels, turns, mirror)



def grey_values_batch(images: Tensor, generator: torch.Generator, gamma: float = 0.3,
                      contrast: float = 0.2, brightness: float = 0.1) -> Tensor:
    """Random "gray value variations" (section 3.1) per tile, the same for all its channels.
    """
    g, c, b = draw_grey_values(generator, images.shape[0], gamma, contrast, brightness,
                               images.device)
    return apply_grey_values(images, g, c, b)
