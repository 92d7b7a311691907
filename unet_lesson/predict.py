r"""Overlap-tile prediction for images of any size (paper, section 2 and Figure 2).

"To predict the pixels in the border region of the image, the missing context is extrapolated by
mirroring the input image." The image is mirror-padded, cut into tiles the network accepts, and
each tile's output is written back where it belongs, so memory is bounded by the tile size,
never by the image size.

* ``valid`` padding: each input tile of size ``i`` yields the ``o = output_size(i)`` centre
  pixels. Tiles advance by a multiple of ``2**depth`` so every tile's max-pool grid lines up with
  the whole image's; the stitched result then *equals* a whole-image pass on the mirrored image.
* ``same`` padding: tiles overlap and are blended with a smooth window, which hides the
  zero-padding artefacts at tile borders.

:func:`predict_image` is what training's validation, the evaluation and the command line call:
the one preprocessing (:func:`unet_lesson.data.to_network_input`, as in training), then
:func:`predict_tiled` in the run's precision (:mod:`unet_lesson.precision`), at the image's own
scale or, with ``nucleus_size``, at the scale that gives its nuclei that size
(:mod:`unet_lesson.data.scale`). ``tta``: the mean over the 8 flips and quarter turns.

Built in notebook 08 (the overlap-tile geometry); notebook 11 predicts with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import env
from .data import to_network_input
from .data.scale import nucleus_diameter, rescale_image, scale_factor, to_size
from .instances import probabilities_to_labels
from .precision import autocast, autocast_dtype
from .sizes import input_size_for_output, output_size


def _blend_window(size: int, margin: int) -> np.ndarray:
    """A 1-D weight: a linear ramp over ``margin`` pixels at each end, 1 in the middle."""
    w = np.ones(size, dtype=np.float32)
    if margin > 0:
        ramp = (np.arange(margin, dtype=np.float32) + 1) / (margin + 1)
        w[:margin], w[-margin:] = ramp, ramp[::-1]
    return w


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering ``length`` pixels: every ``stride``, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


@torch.no_grad()
def predict_tiled(net: nn.Module, image: np.ndarray | torch.Tensor, tile_size: int | None = None,
                  batch_size: int = 4, device: torch.device | None = None,
                  amp_dtype: torch.dtype | None = None, tta: bool = False,
                  overlap: int | None = None) -> np.ndarray:
    """Class probabilities (num_classes, H, W) for a (C, H, W) image of any size.

    ``tile_size``: the output tile for ``valid`` padding (rounded up to a legal size; default
    388 as in the paper's Figure 2), or the input tile for ``same`` (rounded up to a multiple of
    ``2**depth``; default 256). ``amp_dtype``: the autocast type (``None``: float32; see
    :func:`unet_lesson.precision.autocast_dtype`). ``tta``: test-time augmentation, the mean
    of the predictions of the 8 flips and 90-degree rotations of the image
    (:data:`DIHEDRAL`), each mapped back; about 8 times the time of one prediction.

    Used in notebook 10.
    """
    cfg = net.config
    device = device or next(net.parameters()).device
    image = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if image.ndim != 3 or image.shape[0] != cfg.in_channels:
        raise ValueError(f"expected a ({cfg.in_channels}, H, W) image, got {tuple(image.shape)}")
    bad = int((~torch.isfinite(image)).sum())
    if bad:  # NaN would spread to every probability of its tiles, with no error
        raise ValueError(f"the image holds {bad} NaN or infinite value(s): predict_tiled needs "
                         f"finite inputs (check how the image was read and normalised)")
    was_training = net.training
    net.eval()
    try:
        transforms = DIHEDRAL if tta else DIHEDRAL[:1]
        probs = None
        for turns, flip in transforms:
            seen = dihedral(image, turns, flip)  # (C, H, W), or (C, W, H) after an odd turn
            p = _predict_once(net, seen, tile_size, batch_size, device, amp_dtype, overlap)
            p = dihedral_inverse(p, turns, flip)  # (K, H, W)
            probs = p if probs is None else probs + p
        return (probs / len(transforms)).numpy()
    finally:
        net.train(was_training)


# the 8 symmetries of a square (the dihedral group D4): (quarter turns, then a left-right flip)
DIHEDRAL = tuple((turns, flip) for turns in range(4) for flip in (False, True))


def dihedral(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """``x (..., H, W)`` turned by ``turns`` quarter turns (counter-clockwise), then flipped
    left-right if ``flip``: one of the 8 transforms of :data:`DIHEDRAL`.

    Not built in a notebook: :func:`predict_tiled`'s test-time augmentation.
    """
    x = torch.rot90(x, turns, dims=(-2, -1)) if turns % 4 else x
    return x.flip(-1) if flip else x


def dihedral_inverse(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Undo :func:`dihedral`: ``dihedral_inverse(dihedral(x, t, f), t, f)`` equals ``x``.

    Not built in a notebook: :func:`predict_tiled`'s test-time augmentation.
    """
    x = x.flip(-1) if flip else x
    return torch.rot90(x, -turns, dims=(-2, -1)) if turns % 4 else x


def _predict_once(net, image, tile_size, batch_size, device, dtype, overlap) -> torch.Tensor:
    if net.config.padding == "valid":
        return _predict_valid(net, image, tile_size or 388, batch_size, device, dtype)
    return _predict_same(net, image, tile_size or 256, batch_size, device, dtype, overlap)


def _run_tiles(net, tiles: list[torch.Tensor], batch_size, device, dtype) -> list[torch.Tensor]:
    """Softmax probabilities of each tile, computed ``batch_size`` tiles at a time."""
    out = []
    for i in range(0, len(tiles), batch_size):
        batch = torch.stack(tiles[i : i + batch_size]).to(device)
        if device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = net(batch)
        out.extend(torch.softmax(logits.float(), dim=1).cpu())
    return out


def _predict_valid(net, image, out_tile, batch_size, device, dtype) -> torch.Tensor:
    depth = net.config.depth
    in_tile = input_size_for_output(out_tile, depth)  # e.g. 572 for 388
    out_tile = output_size(in_tile, depth)
    margin = (in_tile - out_tile) // 2  # 92 px of mirrored context on each side
    stride = out_tile - out_tile % 2**depth  # keeps every tile's pooling grid aligned
    _, height, width = image.shape
    # tile origins at multiples of the stride (never flush with the end: that would break the
    # pooling-grid alignment); the last tile may reach past the image into the mirrored border
    rows = range(0, max(height - out_tile, 0) + stride, stride)
    cols = range(0, max(width - out_tile, 0) + stride, stride)
    pad_h, pad_w = rows[-1] + out_tile - height, cols[-1] + out_tile - width
    # mirror the borders (numpy reflects repeatedly when the image is smaller than the pad)
    padded = np.pad(image.numpy(), ((0, 0), (margin, margin + pad_h), (margin, margin + pad_w)),
                    mode="symmetric")
    padded = torch.from_numpy(padded)
    probs = torch.zeros(net.config.num_classes, height + pad_h, width + pad_w)
    origins = [(r, c) for r in rows for c in cols]
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        tiles = [padded[:, r : r + in_tile, c : c + in_tile] for r, c in chunk]
        for (r, c), p in zip(chunk, _run_tiles(net, tiles, batch_size, device, dtype), strict=True):
            probs[:, r : r + out_tile, c : c + out_tile] = p  # (K, o, o): the tile's valid centre
    return probs[:, :height, :width]


def _predict_same(net, image, in_tile, batch_size, device, dtype, overlap) -> torch.Tensor:
    step = 2**net.config.depth
    tile = step * math.ceil(in_tile / step)
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile size {tile}), got {overlap}")
    _, height, width = image.shape
    # a side shorter than the tile is taken whole (the network mirror-pads it itself), so an
    # image that fits in one tile gets exactly the whole-image prediction
    tile_h, tile_w = min(tile, height), min(tile, width)
    win_h = torch.from_numpy(_blend_window(tile_h, overlap if height > tile else 0))
    win_w = torch.from_numpy(_blend_window(tile_w, overlap if width > tile else 0))
    window = win_h[:, None] * win_w[None, :]
    probs = torch.zeros(net.config.num_classes, height, width)
    weight = torch.zeros(height, width)
    origins = [(r, c) for r in _tile_starts(height, tile_h, tile - overlap)
               for c in _tile_starts(width, tile_w, tile - overlap)]
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        tiles = [image[:, r : r + tile_h, c : c + tile_w] for r, c in chunk]
        for (r, c), p in zip(chunk, _run_tiles(net, tiles, batch_size, device, dtype), strict=True):
            probs[:, r : r + tile_h, c : c + tile_w] += p * window
            weight[r : r + tile_h, c : c + tile_w] += window
    return probs / weight


@torch.no_grad()
def predict_whole(net: nn.Module, image: np.ndarray | torch.Tensor,
                  device: torch.device | None = None) -> np.ndarray:
    """Probabilities from one pass over the whole image (mirror-padded to a legal size for
    ``valid``). The reference that :func:`predict_tiled` must equal; needs memory for the whole
    image, so only for images that fit.

    Used in notebook 10.
    """
    cfg = net.config
    device = device or next(net.parameters()).device
    image = np.asarray(image, dtype=np.float32)
    _, height, width = image.shape
    net.eval()
    if cfg.padding == "same":
        x = torch.from_numpy(image)[None].to(device)
        return torch.softmax(net(x), dim=1)[0].cpu().numpy()
    # smallest legal input covering the image, its context mirrored exactly as the tiler does
    in_h = input_size_for_output(height, cfg.depth)
    in_w = input_size_for_output(width, cfg.depth)
    margin = (in_h - output_size(in_h, cfg.depth)) // 2
    padded = np.pad(image, ((0, 0), (margin, in_h - height - margin),
                            (margin, in_w - width - margin)), mode="symmetric")
    probs = torch.softmax(net(torch.from_numpy(padded)[None].to(device)), dim=1)[0]
    return probs[:, :height, :width].cpu().numpy()


def predict_image(net: nn.Module, image: np.ndarray, cfg, device: torch.device | None = None,
                  tta: bool = False, batch_size: int = 4) -> np.ndarray:
    """(num_classes, H, W) probabilities for a uint8 (H, W, 3) image of any size.

    The training preprocessing (``to_network_input`` in the run's ``input_mode``, measured on
    the whole image as the training tiles are), then overlap-tile prediction with the run's
    prediction tile (``cfg.predict_tile``) in the run's precision: what validation, evaluation
    and the command line use, so the network always sees what it was trained on.

    With ``cfg.nucleus_size`` (nuclei at one scale, :mod:`unet_lesson.data.scale`), the image is
    first predicted at its own scale (without ``tta``); the median diameter of the nuclei that
    prediction finds (default decoding) gives the zoom (:func:`scale_from_prediction`); the
    image is predicted again at that zoom and the probabilities mapped back to (H, W).

    Used in notebook 10.
    """
    device = device or next(net.parameters()).device

    def predict(picture: np.ndarray, augment: bool) -> np.ndarray:
        x = to_network_input(picture, cfg.input_mode, cfg.model.in_channels)  # (C, h, w)
        return predict_tiled(net, x, tile_size=cfg.predict_tile, batch_size=batch_size,
                             device=device, amp_dtype=autocast_dtype(device, cfg.amp,
                                                                     cfg.amp_cpu), tta=augment)

    if not cfg.nucleus_size:
        return predict(image, tta)
    native = predict(image, False)  # (K, H, W): to measure the nuclei
    factor = scale_from_prediction(native, cfg.nucleus_size)
    if factor == 1.0:
        return predict(image, True) if tta else native
    zoomed = predict(rescale_image(image, factor), tta)  # (K, h, w)
    return to_size(zoomed, image.shape[:2])  # (K, H, W)


def scale_from_prediction(probs: np.ndarray, nucleus_size: float) -> float:
    """The zoom that brings the nuclei of a prediction ``probs (K, H, W)``, decoded with the
    default post-processing, to ``nucleus_size`` pixels (:func:`~unet_lesson.data.scale.
    scale_factor`); 1 when it finds no nucleus.

    Not built in a notebook: :func:`predict_image` calls it.
    """
    labels = probabilities_to_labels(probs)  # the default decoding of 2 or 3 classes
    return scale_factor(nucleus_diameter(labels), nucleus_size)


def predict_samples(net: nn.Module, samples, cfg, device: torch.device | None = None,
                    tta: bool = False, desc: str = "predicting") -> list[np.ndarray]:
    """:func:`predict_image` for each sample (a list, in order), with a progress bar.

    Not built in a notebook: :meth:`Run.predict <unet_lesson.course.run.Run.predict>` and the
    command line.
    """
    return [predict_image(net, s.image, cfg, device, tta)
            for s in env.progress(samples, desc=desc, leave=False)]
