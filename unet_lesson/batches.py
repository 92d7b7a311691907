r"""Training batches: the tiles of an epoch, their augmentation, and the targets.

What :func:`~unet_lesson.train.fit` trains on, made in one place:

* :func:`training_tiles` - the augmented random tiles of the training images
  (:class:`~unet_lesson.data.TileDataset`) with the configuration's targets
  (:func:`target_function`) and colour augmentations (:func:`colour_augmentation`);
* :func:`epoch_tiles` and :func:`train_loader` - which tiles an epoch draws, in a seeded order
  (the same on a resumed run as on an unbroken one; with several processes, each its share):
  as many from each training image, or (``tile_shares``) as many from each modality or
  acquisition group (:func:`tile_strata`), so that a kind of image with few images (stained
  tissue) gets its stated share of the batches;
* :class:`DeviceAugmentation` - with ``augment_on_device``, the paper's augmentations and the
  targets made on the batch once it reached the training device (for a GPU), where the
  targets that depend on the labels must be computed *after* the deformation:
  :func:`three_class_target_batch` on the device, any per-tile numpy target through
  :func:`targets_on_cpu`. The paper's weight map has no device version (distance
  transforms): a configuration with the weighted loss keeps the whole augmentation, weight
  map included, in the DataLoader's workers, where it runs in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from skimage.morphology import disk
from torch import Tensor
from torch.utils.data import DataLoader

from .config import TrainConfig
from .data import (
    Augment,
    ColourAugment,
    TileDataset,
    acquisition_groups,
    image_features,
    modality_of,
)
from .data.batch_augment import BatchAugment
from .data.scale import at_one_scale
from .instances import BACKGROUND, BORDER, BORDER_WIDTH, INTERIOR
from .losses import make_targets
from .networks import center_crop


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The seed of one random stream of one epoch: ``stream`` 0 orders the tiles, 1 draws the
    augmentations on the device. The same on a resumed run as on an unbroken one.

    Not built in a notebook: :func:`epoch_tiles` and :class:`DeviceAugmentation` seed with it.
    """
    return seed * 1_000_003 + epoch + 500_009 * stream


def colour_augmentation(cfg: TrainConfig) -> ColourAugment | None:
    """The colour and quality augmentations a config switches on (``None``: none).

    ``colour_augment``: stain jitter in HED space (half the tiles), hue and saturation (half),
    a grey tile (one in five). ``quality_augment``: contrast, blur and noise (a third each).

    Used in notebooks 08 and 10.
    """
    if not (cfg.colour_augment or cfg.quality_augment):
        return None
    colour = dict(hed_p=0.5, hue_p=0.5, grey_p=0.2) if cfg.colour_augment else {}
    quality = dict(contrast_p=0.3, blur_p=0.3, noise_p=0.3) if cfg.quality_augment else {}
    return ColourAugment(**colour, **quality)


def target_function(cfg: TrainConfig):
    """``labels_in -> {"target": ..., ("weight": ...)}`` for this config (picklable).

    Not built in a notebook: :func:`training_tiles` and :class:`DeviceAugmentation` use it.
    """
    return partial(make_targets, target=cfg.target, loss=cfg.loss, w0=cfg.w0, sigma=cfg.sigma)


def augments_on_device(cfg: TrainConfig) -> bool:
    """Whether the batches are augmented on the training device: ``augment_on_device``, unless
    the loss needs the paper's weight map, which the DataLoader's workers compute per tile
    after augmenting it there (in parallel; on the device it would run one tile at a time).

    Not built in a notebook: :func:`training_tiles` and :func:`~unet_lesson.train.fit` ask it.
    """
    return cfg.augment_on_device and cfg.loss != "weighted_ce"


def training_tiles(train_set, cfg: TrainConfig) -> TileDataset:
    """Augmented random tiles of the training images, with the config's targets; augmented on
    the device (:func:`augments_on_device`), plain windows with the margin the deformation
    needs and no targets yet. With ``nucleus_size``, the images are rescaled first, each so its
    median nucleus has that diameter (:func:`~unet_lesson.data.scale.at_one_scale`).

    Used in notebook 08.
    """
    augment = Augment(elastic=cfg.elastic)
    on_device = augments_on_device(cfg)
    scale = (1 / cfg.scale_augment, cfg.scale_augment) if cfg.scale_augment else None
    if cfg.nucleus_size:
        train_set = at_one_scale(train_set, cfg.nucleus_size)
    # shared by modality or group, an image may give up to all of an epoch's tiles
    per_image = math.ceil(cfg.tiles_per_epoch / len(train_set)) if cfg.tile_shares == "image" \
        else cfg.tiles_per_epoch
    return TileDataset(train_set, out_size=cfg.tile_size, padding=cfg.model.padding,
                       depth=cfg.model.depth, augment=None if on_device else augment,
                       target_fn=None if on_device else target_function(cfg),
                       tiles_per_image=per_image,
                       channels=cfg.model.in_channels, seed=cfg.seed,
                       input_mode=cfg.input_mode, colour=colour_augmentation(cfg), scale=scale,
                       margin=augment.margin() if on_device else 0)


class DeviceAugmentation:
    """The paper's augmentations and the targets, made on the batch after it reached the
    training device, from the windows of :func:`training_tiles` (when
    :func:`augments_on_device`). Seeded per epoch (:func:`epoch_seed`), so a resumed run
    draws what an unbroken one draws.

    Not built in a notebook: :func:`~unet_lesson.train.fit` uses it.
    """

    def __init__(self, cfg: TrainConfig, tiles: TileDataset):
        self.cfg, self.margin, self.out_size = cfg, tiles.margin, tiles.out_size
        self.augment = BatchAugment(Augment(elastic=cfg.elastic), torch.Generator())
        self.target_fn = target_function(cfg)

    def set_epoch(self, epoch: int) -> None:
        self.augment.generator.manual_seed(epoch_seed(self.cfg.seed, epoch, stream=1))

    def __call__(self, batch: dict) -> dict:
        images, labels = self.augment(batch["image"], batch["labels"], self.margin)
        if self.cfg.target == "three_class":
            targets = {"target": three_class_target_batch(labels)}  # (B, in, in)
        else:
            targets = targets_on_cpu(labels, self.target_fn)  # binary: labels > 0

        def crop(t):  # input size -> output size (valid padding); same padding: unchanged
            return center_crop(t, self.out_size, self.out_size)

        return {"image": images, "labels": crop(labels),
                **{name: crop(value) for name, value in targets.items()}}


def tile_strata(samples, cfg: TrainConfig) -> list[str] | None:
    """What each training image's share of an epoch's tiles follows (``cfg.tile_shares``):
    ``None`` for ``"image"`` (as many tiles from each image), else each image's modality
    (:func:`~unet_lesson.data.modality_of`) or acquisition group
    (:func:`~unet_lesson.data.acquisition_groups` of the training images), computed once
    per run.

    Not built in a notebook: :func:`~unet_lesson.train.fit` passes it to :func:`train_loader`.
    """
    if cfg.tile_shares == "image":
        return None
    if cfg.tile_shares == "modality":
        return [modality_of(s.image) for s in samples]
    return [str(g) for g in acquisition_groups(image_features(samples))]


def epoch_tiles(n: int, cfg: TrainConfig, epoch: int, rank: int = 0, world_size: int = 1,
                strata: list[str] | None = None) -> list[int]:
    """The indices of this epoch's ``tiles_per_epoch`` tiles (of ``n``) in a seeded order, the
    same on a resumed run as on an unbroken one; with several processes, this one's share
    (every ``world_size``-th, from its ``rank``: no tile twice).

    ``strata`` (one name per training image, :func:`tile_strata`): every name gets an equal
    share of the epoch's tiles (one more for some when they do not divide evenly), shared
    equally by its images; the tiles are then shuffled together. ``None``: an equal share for
    every image.

    Used in notebook 10.
    """
    order = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    if strata is None:
        rounds = -(-cfg.tiles_per_epoch // n)
        chosen = torch.cat([torch.randperm(n, generator=order) for _ in range(rounds)])
        return chosen[: cfg.tiles_per_epoch][rank::world_size].tolist()
    chosen = _shared_tiles(list(strata), cfg.tiles_per_epoch, order, n)
    return chosen[rank::world_size]


def _shared_tiles(strata: list[str], total: int, order: torch.Generator, n: int) -> list[int]:
    """``total`` tile indices (of ``n``), an equal share for each name of ``strata``."""
    if not strata or n % len(strata):
        raise ValueError(f"strata must name each of the dataset's images: {len(strata)} names "
                         f"for {n} tiles")
    names = sorted(set(strata))
    base, extra = divmod(total, len(names))
    lucky = set(torch.randperm(len(names), generator=order)[:extra].tolist())  # one more
    picks = []
    for j, name in enumerate(names):
        count = base + (j in lucky)
        images = torch.tensor([i for i, s in enumerate(strata) if s == name])
        rounds = -(-count // len(images))  # each image once per round, in a random order
        picks += torch.cat([images[torch.randperm(len(images), generator=order)]
                            for _ in range(rounds)])[:count].tolist()
    picks = [picks[k] for k in torch.randperm(total, generator=order).tolist()]
    # the k-th tile of image i in an epoch is item i + k * (number of images): its own crop
    seen = [0] * len(strata)
    chosen = []
    for i in picks:
        chosen.append(i + seen[i] * len(strata))
        seen[i] += 1
    if max(chosen) >= n:
        raise ValueError(f"an image gives {max(seen)} tiles this epoch, more than the dataset's "
                         f"{n // len(strata)} per image (training_tiles sizes it)")
    return chosen


def train_loader(dataset: TileDataset, cfg: TrainConfig, epoch: int, device, rank: int = 0,
                 world_size: int = 1, strata: list[str] | None = None) -> DataLoader:
    """This epoch's tiles (:func:`epoch_tiles`, shared by ``strata`` when given) in batches.

    Not built in a notebook: :func:`~unet_lesson.train.fit` calls it.
    """
    dataset.set_epoch(epoch)
    tiles = epoch_tiles(len(dataset), cfg, epoch, rank, world_size, strata)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=tiles,
                      num_workers=cfg.num_workers, drop_last=len(tiles) >= cfg.batch_size,
                      pin_memory=torch.device(device).type == "cuda")


# --------------------------------------------------------------------------------------------
# Targets made on the device, after the deformation
# --------------------------------------------------------------------------------------------


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

    Not built in a notebook: :class:`DeviceAugmentation` uses it.
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

    Not built in a notebook: :class:`DeviceAugmentation` uses it.
    """
    tiles = labels.cpu().numpy()  # (B, H, W)
    results = [target_fn(tile) for tile in tiles]
    return {name: torch.from_numpy(np.stack([r[name] for r in results])).to(labels.device)
            for name in results[0]}
