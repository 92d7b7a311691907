r"""Targets made from labels after the deformation, for the batches of :mod:`.batch_augment`.

A target that depends on the labels (the three classes' border, the paper's weight map) must
be computed after the labels are deformed, or it would describe other nuclei:

* :func:`three_class_target_batch` - :func:`unet_lesson.instances.three_class_target` on the
  device, for a whole batch (a few shifted comparisons instead of min/max filters);
* :func:`targets_on_cpu` - any per-tile numpy target (e.g. ``losses.make_targets``) on a
  batch: to the CPU, tile by tile, back to the device;
* :func:`weight_map_batch` - the paper's weight map (distance transforms have no device
  version), through :func:`targets_on_cpu`.

Not built in a notebook: training with ``augment_on_device`` uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from skimage.morphology import disk
from torch import Tensor

from .. import weights
from ..instances import BACKGROUND, BORDER, BORDER_WIDTH, INTERIOR
from ..losses import make_targets


def _mirror_pad(labels: Tensor, pad: int) -> Tensor:
    """``labels (B, H, W)`` grown by ``pad`` px per side, mirrored as scipy's ``reflect``
    (``d c b a | a b c d | d c b a``: the edge pixel is repeated)."""
    height, width = labels.shape[-2:]
    if pad <= min(height, width):  # one reflection is enough: flipped strips
        labels = torch.cat([labels[:, :pad].flip(1), labels, labels[:, -pad:].flip(1)], 1)
        return torch.cat([labels[..., :pad].flip(2), labels, labels[..., -pad:].flip(2)], 2)
    for axis, length in ((1, height), (2, width)):  # tiny images: mirror again and again
        index = torch.arange(-pad, length + pad, device=labels.device) % (2 * length)
        labels = labels.index_select(axis, torch.where(index < length, index,
                                                       2 * length - 1 - index))
    return labels


def _steps_inside(footprint: np.ndarray) -> tuple[list, list]:
    """The steps between 4-neighbours that lie inside ``footprint``, as offsets of their top
    (vertical) or left (horizontal) pixel from the centre: ``(vertical, horizontal)``."""
    r = footprint.shape[0] // 2
    vertical = np.argwhere(footprint[:-1] & footprint[1:]) - r
    horizontal = np.argwhere(footprint[:, :-1] & footprint[:, 1:]) - r
    return vertical.tolist(), horizontal.tolist()


def three_class_target_batch(labels: Tensor, border_width: int = BORDER_WIDTH) -> Tensor:
    """Class per pixel of ``labels (B, H, W)``: 0 background, 1 nucleus interior, 2 border.

    A nucleus pixel is *border* when another label (background or a different nucleus) lies
    within ``border_width`` px (the disk of ``skimage.morphology.disk``); the image edge is
    not a border (the labels are mirrored as scipy's filters do). Equal to
    :func:`unet_lesson.instances.three_class_target` per tile. Returns int64 (B, H, W).

    How: some pixel of the disk differs from the centre exactly when some step between two
    4-neighbours inside the disk changes label (walk from the centre to the differing pixel
    inside the disk: one step changes it). So two comparisons (each pixel with its right and
    its lower neighbour) and a few shifted ORs of their boolean maps do the job.

    Not built in a notebook: training with augment_on_device uses it.
    """
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be integer ids (B, H, W), got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if border_width < 1:
        raise ValueError(f"border_width must be >= 1 pixel, got {border_width}")
    r, (height, width) = border_width, labels.shape[-2:]
    padded = _mirror_pad(labels, r)  # (B, H+2r, W+2r)
    down = padded[:, :-1] != padded[:, 1:]  # (B, H+2r-1, W+2r): label changes going down
    right = padded[:, :, :-1] != padded[:, :, 1:]  # (B, H+2r, W+2r-1): going right
    differs = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    vertical, horizontal = _steps_inside(disk(border_width).astype(bool))
    for steps, change in ((vertical, down), (horizontal, right)):
        for dy, dx in steps:
            differs |= change[:, r + dy : r + dy + height, r + dx : r + dx + width]
    nucleus = labels > 0
    target = torch.full(labels.shape, BACKGROUND, dtype=torch.int64, device=labels.device)
    target.masked_fill_(nucleus, INTERIOR)
    return target.masked_fill_(nucleus & differs, BORDER)  # (B, H, W)


def targets_on_cpu(labels: Tensor, target_fn: Callable[[np.ndarray], dict[str, np.ndarray]]
                   ) -> dict[str, Tensor]:
    """``target_fn`` (numpy, one ``(H, W)`` label tile) on every tile, stacked on the device.

    For targets with no device version, e.g. ``functools.partial(train.make_targets, ...)``:
    the labels go to the CPU, each tile is processed there, the results come back as
    ``(B, ...)`` tensors on ``labels.device``. Costs a host round trip and a Python loop.

    Not built in a notebook: training with augment_on_device uses it.
    """
    tiles = labels.cpu().numpy()  # (B, H, W)
    results = [target_fn(tile) for tile in tiles]
    return {name: torch.from_numpy(np.stack([r[name] for r in results])).to(labels.device)
            for name in results[0]}


def weight_map_batch(labels: Tensor, w0: float = weights.W0, sigma: float = weights.SIGMA
                     ) -> dict[str, Tensor]:
    r"""The paper's weight map (section 3, eq. 2) of deformed ``labels (B, H, W)``, on the CPU.

    Distance transforms have no device version: each tile goes through
    :func:`weights.open_gaps` and :func:`weights.weight_map` on the CPU, as
    ``train.make_targets(target="binary", loss="weighted_ce")`` does. Returns ``{"target":
    int64 (B, H, W) 0/1, "weight": float32 (B, H, W)}`` on ``labels.device``.

    Not built in a notebook: training with augment_on_device uses it.
    """
    return targets_on_cpu(labels, partial(make_targets, target="binary", loss="weighted_ce",
                                          w0=w0, sigma=sigma))
