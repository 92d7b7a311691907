"""A few plotting helpers so every figure in the course has the same look.

Convention: **image, true mask, prediction**, always in that order, left to right.
Instance label images (0 = background, 1..N = nuclei) are drawn with one colour per nucleus
(scikit-image's ``label2rgb``) or as outlines over the image (``find_boundaries``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from skimage.color import label2rgb
from skimage.segmentation import find_boundaries

OUTLINE_TRUE = (0.0, 1.0, 0.3)  # green: true nuclei
OUTLINE_PRED = (1.0, 0.2, 0.8)  # magenta: predicted nuclei
ERROR_COLOURS = {  # for error_map: what each pixel of a prediction is
    "true positive": (0.85, 0.85, 0.85),
    "false positive": (0.95, 0.25, 0.2),
    "false negative": (0.2, 0.45, 1.0),
}


def use_style() -> None:
    """The course's figure look: modest resolution (light notebooks), clean axes."""
    plt.rcParams.update({
        "figure.dpi": 80,
        "savefig.dpi": 120,
        "image.interpolation": "nearest",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": False,
        "font.size": 10,
    })


def to_display(image: np.ndarray) -> np.ndarray:
    """Any image the course handles, as float RGB in [0, 1]: (H, W) or (H, W, 1/3/4), any dtype."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3, 4):
        img = np.moveaxis(img, 0, -1)  # (C, H, W) tensors -> (H, W, C)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    img = img.astype(np.float32)
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        img /= float(np.iinfo(np.asarray(image).dtype).max)
    else:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.clip(img, 0.0, 1.0)


def labels_to_rgb(labels: np.ndarray, image: np.ndarray | None = None, alpha: float = 0.4):
    """One colour per nucleus on black, or blended over ``image`` when given."""
    labels = np.asarray(labels)
    if image is None:
        return label2rgb(labels, bg_label=0, bg_color=(0, 0, 0))
    return label2rgb(labels, image=to_display(image), bg_label=0, alpha=alpha, image_alpha=1.0)


def overlay_outlines(image: np.ndarray, labels: np.ndarray, colour=OUTLINE_TRUE) -> np.ndarray:
    """The image with every nucleus's outline drawn in ``colour`` (float RGB)."""
    rgb = to_display(image).copy()
    rgb[find_boundaries(np.asarray(labels), mode="inner")] = colour
    return rgb


def error_map(true_mask: np.ndarray, pred_mask: np.ndarray) -> np.ndarray:
    """Pixels coloured by outcome: true positive grey, false positive red, false negative blue."""
    t, p = np.asarray(true_mask) > 0, np.asarray(pred_mask) > 0
    rgb = np.zeros(t.shape + (3,), dtype=np.float32)
    rgb[t & p] = ERROR_COLOURS["true positive"]
    rgb[~t & p] = ERROR_COLOURS["false positive"]
    rgb[t & ~p] = ERROR_COLOURS["false negative"]
    return rgb


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                ncols: int | None = None, size: float = 3.0, cmap: str = "gray",
                suptitle: str | None = None):
    """A grid of images without axes. Returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.asarray(img), cmap=cmap if np.asarray(img).ndim == 2 else None,
                  interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_comparison(images: Sequence[np.ndarray], true_labels: Sequence[np.ndarray],
                    pred_labels: Sequence[np.ndarray], row_titles: Sequence[str] | None = None,
                    size: float = 3.0, outlines: bool = True, errors: bool = False):
    """Rows of **image | true mask | prediction** (and optionally the error map).

    ``outlines=True`` draws true (green) and predicted (magenta) outlines over the image in the
    first column, so a reader sees both boundaries on the real pixels.
    """
    ncols = 4 if errors else 3
    nrows = len(images)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    headers = ["image", "true mask", "prediction", "errors (FP red, FN blue)"][:ncols]
    for r, (img, true, pred) in enumerate(zip(images, true_labels, pred_labels, strict=True)):
        shown = to_display(img)
        if outlines:
            shown = overlay_outlines(overlay_outlines(shown, true, OUTLINE_TRUE), pred,
                                     OUTLINE_PRED)
        panels = [shown, labels_to_rgb(true), labels_to_rgb(pred)]
        if errors:
            panels.append(error_map(true, pred))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(headers[c], fontsize=11)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history, title: str = "training"):
    """Training curves from a history table (pandas DataFrame or list of dicts): the training
    loss, and the validation Dice and DSB score per epoch. Returns the figure."""
    import pandas as pd

    df = pd.DataFrame(history)
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(df["epoch"], df["train_loss"], marker="o", ms=3, label="training loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title(f"{title}: loss")
    ax_loss.legend()
    for column, label in [("val_dice", "validation Dice"), ("val_dsb", "validation DSB score")]:
        if column in df and df[column].notna().any():
            rows = df[df[column].notna()]
            ax_score.plot(rows["epoch"], rows[column], marker="o", ms=3, label=label)
    ax_score.set_ylim(0, 1)
    ax_score.set_xlabel("epoch")
    ax_score.set_title(f"{title}: validation scores")
    ax_score.legend()
    fig.tight_layout()
    return fig
