r"""The losses: the paper's weighted pixel-wise softmax cross-entropy, soft Dice, and their sum.

Section 3 of Ronneberger et al. (2015): "The energy function is computed by a pixel-wise soft-max
over the final feature map combined with the cross entropy loss function",

.. math::

    p_k(x) = \frac{\exp(a_k(x))}{\sum_{k'} \exp(a_{k'}(x))}, \qquad
    E = -\sum_x w(x) \log p_{\ell(x)}(x)

with :math:`a_k(x)` the logits, :math:`\ell(x)` the true class of pixel x and :math:`w(x)` the
weight map (:mod:`unet_lesson.weights`). We divide E by the number of pixels (a mean, so the
learning rate does not depend on the tile size) and keep the weights' absolute scale: we do
*not* divide by the sum of the weights.

Soft Dice is not in the paper; it became popular for segmentation (Milletari et al. 2016,
V-Net) and many Data Science Bowl entries added it to the cross-entropy. Per class k, with
the softmax probabilities p and the one-hot targets g summed over the **whole batch**:

.. math::

    \mathrm{Dice}_k = \frac{2 \sum p_k g_k + s}{\sum p_k + \sum g_k + s}, \qquad
    L_\mathrm{Dice} = 1 - \mathrm{mean}_k\,\mathrm{Dice}_k

averaged over the **foreground classes 1..C-1** by default (``classes="foreground"``; the
background class would dominate and say little) or over all classes (``classes="all"``), with
smoothing s = 1 (a class absent from the batch and predicted absent scores about 1, not 0/0).

All losses take logits (B, C, h, w), integer targets (B, H, W) in 0..C-1 and optional weights
(B, H, W). With ``valid`` padding the network's output is smaller than its input tile, so
targets and weights larger than the logits are centre-cropped to (h, w) once, with
:func:`unet_lesson.networks.center_crop`. A size difference that is negative or odd cannot come
from a centre crop and raises an error; so does a class id outside 0..C-1 (nothing is ignored).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import instances, weights
from .networks.blocks import center_crop

REDUCTIONS = ("mean", "sum", "none")


def align_targets(logits: torch.Tensor, targets: torch.Tensor,
                  weights: torch.Tensor | None = None):
    """Check shapes and classes; centre-crop targets (and weights) to the logits' size.

    ``logits`` (B, C, h, w); ``targets`` (B, H, W) integers in 0..C-1; ``weights`` (B, H, W).
    Returns ``(targets as int64 (B, h, w), weights (B, h, w) or None)``.

    Used in notebook 07.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, C, h, w), got shape {tuple(logits.shape)}")
    if targets.ndim != 3:
        raise ValueError(f"targets must be (B, H, W) class ids, got shape {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    b, c, h, w = logits.shape
    if targets.shape[0] != b:
        raise ValueError(f"logits have batch size {b} but targets have {targets.shape[0]}")
    if weights is not None and tuple(weights.shape) != tuple(targets.shape):
        raise ValueError(f"weights {tuple(weights.shape)} must have the targets' shape "
                         f"{tuple(targets.shape)}")
    big_h, big_w = targets.shape[-2:]
    dh, dw = big_h - h, big_w - w
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(
            f"targets {big_h}x{big_w} cannot be centre-cropped to the logits' {h}x{w}: they "
            f"must be the same size or larger by an even number of pixels on each axis "
            f"(valid padding loses the same border on every side); check the tile sizes "
            f"(unet_lesson.sizes.output_size)"
        )
    if dh or dw:
        targets = center_crop(targets, h, w)  # (B, h, w)
        weights = None if weights is None else center_crop(weights, h, w)
    targets = targets.long()
    if targets.numel():
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= c:
            raise ValueError(f"targets hold class ids {lo}..{hi} but the logits have {c} "
                             f"classes (0..{c - 1}); nothing is ignored, fix the targets")
    return targets, weights


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor | None = None,
                           reduction: str = "mean") -> torch.Tensor:
    r"""The paper's energy: :math:`-w(x) \log p_{\ell(x)}(x)` per pixel.

    ``reduction``: ``"mean"`` (sum over pixels / number of pixels), ``"sum"`` (the paper's E) or
    ``"none"`` ((B, h, w) per-pixel losses). Without weights it is the plain cross-entropy.

    Built in notebook 07.
    """
    targets, weights = align_targets(logits, targets, weights)
    loss = F.cross_entropy(logits, targets, reduction="none")  # (B, h, w) = -log p_l(x)(x)
    if weights is not None:
        loss = loss * weights.to(loss.dtype)
    return _reduce(loss, reduction)


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, classes: str = "foreground",
                   smooth: float = 1.0) -> torch.Tensor:
    r"""1 - mean soft Dice over the foreground classes (or ``classes="all"``), batch-pooled.

    Built in notebook 07.
    """
    targets, _ = align_targets(logits, targets)
    num_classes = logits.shape[1]
    if classes not in ("foreground", "all"):
        raise ValueError(f"classes must be 'foreground' or 'all', got {classes!r}")
    if classes == "foreground" and num_classes < 2:
        raise ValueError("foreground Dice needs at least 2 classes (background is class 0)")
    dtype = torch.promote_types(logits.dtype, torch.float32)  # sums in float32 under AMP
    probs = logits.to(dtype).softmax(dim=1)  # (B, C, h, w)
    one_hot = F.one_hot(targets, num_classes).permute(0, 3, 1, 2).to(probs.dtype)  # (B, C, h, w)
    dims = (0, 2, 3)  # sum over the batch and the pixels: one Dice per class
    inter = (probs * one_hot).sum(dims)
    dice = (2 * inter + smooth) / (probs.sum(dims) + one_hot.sum(dims) + smooth)  # (C,)
    if classes == "foreground":
        dice = dice[1:]
    return 1.0 - dice.mean()


def ce_dice_loss(logits: torch.Tensor, targets: torch.Tensor,
                 weights: torch.Tensor | None = None, dice_weight: float = 1.0,
                 classes: str = "foreground", smooth: float = 1.0, return_parts: bool = False):
    r"""Weighted cross-entropy + ``dice_weight`` x soft Dice (``dice_weight=0``: the paper's loss).

    With ``return_parts=True`` returns ``(total, {"ce": ..., "dice": ...})`` (detached parts,
    for logging).

    Built in notebook 07.
    """
    targets, weights = align_targets(logits, targets, weights)  # crop once, reused below
    ce = weighted_cross_entropy(logits, targets, weights)
    dice = soft_dice_loss(logits, targets, classes, smooth) if dice_weight else ce.new_zeros(())
    total = ce + dice_weight * dice
    if return_parts:
        return total, {"ce": ce.detach(), "dice": dice.detach()}
    return total


# --------------------------------------------------------------------------------------------
# What a training configuration compares: targets from a tile's nuclei, and the loss
# --------------------------------------------------------------------------------------------


def make_targets(labels_in: np.ndarray, target: str, loss: str, w0: float,
                 sigma: float) -> dict[str, np.ndarray]:
    """The training target (and the paper's weight map) from a tile's input-sized labels.

    ``three_class``: background / interior / border (:func:`instances.three_class_target`).
    ``binary``: nucleus or not, after :func:`weights.open_gaps` has opened a line of background
    between touching nuclei (the DSB masks have none; the paper's membranes do), so the network
    can learn to separate them, and the weight map (for ``weighted_ce``) has gaps to weigh.
    Module level, so DataLoader workers can pickle it.

    Used in notebook 10.
    """
    if target == "three_class":
        out = {"target": instances.three_class_target(labels_in)}  # (H, W) 0/1/2
    else:
        labels_in = weights.open_gaps(labels_in)
        out = {"target": (labels_in > 0).astype(np.int64)}  # (H, W) 0/1
    if loss == "weighted_ce":
        out["weight"] = weights.weight_map(labels_in, w0=w0, sigma=sigma)  # (H, W) float32
    return out


def loss_function(cfg):
    """``loss(logits, batch)`` for a :class:`~unet_lesson.config.TrainConfig`; targets are
    cropped to the logits' size.

    Used in notebook 10.
    """

    def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        if cfg.loss == "weighted_ce":
            return weighted_cross_entropy(logits, batch["target"], batch["weight"])
        if cfg.loss == "ce":
            return weighted_cross_entropy(logits, batch["target"])
        return ce_dice_loss(logits, batch["target"], dice_weight=cfg.dice_weight)

    return loss
