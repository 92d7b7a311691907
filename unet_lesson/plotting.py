"""A few plotting helpers so every figure in the course has the same look.

Convention: **image, true mask, prediction**, always in that order, left to right.
Instance label images (0 = background, 1..N = nuclei) are drawn with one colour per nucleus
(scikit-image's ``label2rgb``) or as outlines over the image (``find_boundaries``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from skimage.segmentation import find_boundaries

from .data.table import modality_of

OUTLINE_TRUE = (0.0, 1.0, 0.3)  # green: true nuclei
OUTLINE_PRED = (1.0, 0.2, 0.8)  # magenta: predicted nuclei
ERROR_COLOURS = {  # for error_map: what each pixel of a prediction is
    "true positive": (0.85, 0.85, 0.85),
    "false positive": (0.95, 0.25, 0.2),
    "false negative": (0.2, 0.45, 1.0),
}


def use_style() -> None:
    """The course's figure look: modest resolution (light notebooks), clean axes.

    Not built in a notebook: the notebooks' setup cell (:func:`unet_lesson.course.notebook.setup`)
    applies it.
    """
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
    """Any image the course handles, as float RGB in [0, 1]: (H, W) or (H, W, 1/3/4), any dtype.

    Used in notebooks 09, 10 and 12.
    """
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


def nucleus_colour(ids) -> np.ndarray:
    """A colour (float RGB) for each nucleus id, far apart for neighbouring ids.

    Hues step by the golden ratio of the colour circle and saturation and brightness alternate,
    so any two ids up to 50 apart get clearly different colours (a palette of ten repeats
    every tenth id, and touching nuclei then look merged). Id 0 (background) is black.

    Used in notebook 09.
    """
    from matplotlib.colors import hsv_to_rgb

    ids = np.asarray(ids, dtype=np.int64)
    hsv = np.stack([(ids * 0.6180339887) % 1.0, 0.55 + 0.4 * (ids % 2),
                    1.0 - 0.25 * ((ids // 2) % 2)], axis=-1)
    rgb = hsv_to_rgb(hsv)
    rgb[ids == 0] = 0.0
    return rgb


def labels_to_rgb(labels: np.ndarray, image: np.ndarray | None = None, alpha: float = 0.4,
                  colour_of: np.ndarray | None = None):
    """One colour per nucleus (:func:`nucleus_colour`) on black, or blended over ``image``.

    ``colour_of``: the id whose colour each label id gets (``colour_of[k]`` for id ``k``), e.g.
    a prediction coloured like the true nucleus it matches (:func:`paired_colours`).

    Used in notebooks 01, 02, 03, 07, 08, 09, 10 and 11.
    """
    labels = np.asarray(labels)
    keys = labels if colour_of is None else np.asarray(colour_of)[labels]
    rgb = nucleus_colour(keys)  # (H, W, 3)
    if image is None:
        return rgb
    shown = to_display(image)
    inside = (labels > 0)[..., None]
    return np.where(inside, (1 - alpha) * shown + alpha * rgb, shown)


def paired_colours(true_labels: np.ndarray, pred_labels: np.ndarray):
    """``(true_rgb, pred_rgb)``: each predicted nucleus in the colour of the true nucleus it
    matches, merges or splits (:func:`unet_lesson.metrics.object_errors`), so pairs can be
    matched by eye; a false positive is white.

    Built in notebook 09.
    """
    from .metrics import object_errors

    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    errors = object_errors(true_labels, pred_labels)
    colour_of = np.zeros(int(pred_labels.max(initial=0)) + 1, dtype=np.int64)
    colour_of[errors.pred_ids] = errors.partner_of_pred
    pred_rgb = labels_to_rgb(pred_labels, colour_of=colour_of)
    false = np.isin(pred_labels, errors.pred_ids[errors.partner_of_pred == 0])
    pred_rgb[false] = 1.0
    return labels_to_rgb(true_labels), pred_rgb


def overlay_outlines(image: np.ndarray, labels: np.ndarray, colour=OUTLINE_TRUE) -> np.ndarray:
    """The image with every nucleus's outline drawn in ``colour`` (float RGB).

    Used in notebooks 01, 08, 09, 10, 11 and 12.
    """
    rgb = to_display(image).copy()
    rgb[find_boundaries(np.asarray(labels), mode="inner")] = colour
    return rgb


def error_map(true_mask: np.ndarray, pred_mask: np.ndarray) -> np.ndarray:
    """Pixels coloured by outcome: true positive grey, false positive red, false negative blue.

    Used in notebook 09.
    """
    t, p = np.asarray(true_mask) > 0, np.asarray(pred_mask) > 0
    rgb = np.zeros(t.shape + (3,), dtype=np.float32)
    rgb[t & p] = ERROR_COLOURS["true positive"]
    rgb[~t & p] = ERROR_COLOURS["false positive"]
    rgb[t & ~p] = ERROR_COLOURS["false negative"]
    return rgb


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                ncols: int | None = None, size: float = 3.0, cmap: str = "gray",
                suptitle: str | None = None):
    """A grid of images without axes. Returns the figure.

    Used in notebooks 01, 02, 03, 04, 05, 07, 08, 09, 10, 11 and 12.
    """
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
                    size: float = 3.0, outlines: bool = True, errors: bool = False,
                    paired: bool = True):
    """Rows of **image | true mask | prediction** (and optionally the error map).

    ``outlines=True`` draws true (green) and predicted (magenta) outlines over the image in the
    first column, so a reader sees both boundaries on the real pixels. ``paired=True`` colours
    each predicted nucleus like the true nucleus it matches (:func:`paired_colours`; false
    positives white), so nuclei can be matched by eye and merges show as one colour over two.

    Used in notebook 09.
    """
    ncols = 4 if errors else 3
    nrows = len(images)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    headers = ["image", "true mask", "prediction", "errors (grey TP, red FP, blue FN)"][:ncols]
    for r, (img, true, pred) in enumerate(zip(images, true_labels, pred_labels, strict=True)):
        shown = to_display(img)
        if outlines:
            shown = overlay_outlines(overlay_outlines(shown, true, OUTLINE_TRUE), pred,
                                     OUTLINE_PRED)
        coloured = paired_colours(true, pred) if paired else (labels_to_rgb(true),
                                                                labels_to_rgb(pred))
        panels = [shown, *coloured]
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
    loss, and the validation Dice and DSB score per epoch. Returns the figure.

    Used in notebook 10.
    """
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


def pick_examples(scores, n: int = 6) -> list[str]:
    """Image ids for a comparison figure: every modality in turn, each spanning its scores.

    ``scores``: a table with ``image_id``, ``modality`` and ``dsb`` columns (one row per image,
    as :func:`unet_lesson.evaluate.score_samples` gives). Rows go round-robin over the
    modalities; within one modality the picks are spread evenly over its images ranked by DSB
    score (best, ..., worst), so a figure shows typical and bad cases too, not only the best.

    Used in notebooks 11 and 12.
    """
    groups = [list(g.sort_values("dsb", ascending=False)["image_id"])
              for _, g in scores.groupby("modality")]
    counts = [0] * len(groups)
    while sum(counts) < min(n, len(scores)):
        for i, g in enumerate(groups):
            if counts[i] < len(g) and sum(counts) < n:
                counts[i] += 1
    spread = [[g[round(j)] for j in np.linspace(0, len(g) - 1, k)] if k > 1 else g[:k]
              for g, k in zip(groups, counts, strict=True)]
    return [ids[r] for r in range(max(counts, default=0)) for ids in spread if r < len(ids)]


def comparison_figure(samples, probabilities, post, ids: list[str], title: str,
                      counts: bool = False):
    """Rows of image | true mask | prediction | errors for the samples with the chosen ids,
    each row titled with its image's id and DSB score.

    ``probabilities``: the network's output for each sample (in order); ``post`` turns them
    into nuclei (a :class:`unet_lesson.evaluate.PostProcess`, or one per modality).
    ``counts=True`` adds the image's object errors to its row title (:func:`row_title`:
    matched of true nuclei, merged, split, missed, false positives).

    Used in notebook 11.
    """
    by_id = {s.image_id: (s, p) for s, p in zip(samples, probabilities, strict=True)}
    chosen = [by_id[i] for i in ids]
    preds = [post(p, modality_of(s.image)) for s, p in chosen]
    titles = [row_title(name, s.labels, pred, counts)
              for name, (s, _), pred in zip(short_ids(ids), chosen, preds, strict=True)]
    fig = show_comparison([s.image for s, _ in chosen], [s.labels for s, _ in chosen],
                          preds, row_titles=titles, errors=True)
    fig.suptitle(title, y=1.0)
    return fig


def short_ids(ids: Sequence[str], length: int = 10) -> list[str]:
    """Image ids cut to ``length`` characters (``…`` marks a cut), or to as many more as keep
    them apart: ``syn-s0-0001`` and ``syn-s0-0008`` stay whole, a DSB hash is cut at 10.

    Not built in a notebook: :func:`comparison_figure` names its rows with it.
    """
    ids = [str(i) for i in ids]
    while len({i[:length] for i in ids}) < len(set(ids)):
        length += 1
    return [i if len(i) <= length else i[:length] + "…" for i in ids]


def row_title(image_id: str, true_labels: np.ndarray, pred_labels: np.ndarray,
              counts: bool = False) -> str:
    """A comparison row's title: the image's id (as given: :func:`short_ids` shortens a
    figure's ids), its DSB score and, with ``counts``, its object errors
    (:func:`unet_lesson.metrics.object_errors`): matched of true nuclei, then merged (true
    nuclei inside one prediction), split, missed and false positive (FP) counts.

    Not built in a notebook: :func:`comparison_figure` titles its rows with it.
    """
    from .metrics import dsb_score, object_errors

    title = f"{image_id}\nDSB {dsb_score(true_labels, pred_labels):.2f}"
    if counts:
        c = object_errors(true_labels, pred_labels).counts()
        title += (f"\n{c['matched']}/{c['true']} matched\n{c['merged']} merged, "
                  f"{c['split']} split\n{c['missed']} missed, {c['false positives']} FP")
    return title


def show_predictions(images: Sequence[np.ndarray], true_labels: Sequence[np.ndarray],
                     predictions: dict[str, Sequence[np.ndarray]],
                     row_titles: Sequence[str] | None = None, size: float = 3.0):
    """Rows of **image | true mask | one column per network's prediction**, so several
    networks can be compared on the same images. Each prediction is coloured like the true
    nuclei it matches (:func:`paired_colours`; false positives white) and its column title
    carries its DSB score on that image.

    ``predictions``: ``{name: [label image per row]}``.

    Used in notebook 12.
    """
    from .metrics import dsb_score

    names = list(predictions)
    ncols = 2 + len(names)
    fig, axes = plt.subplots(len(images), ncols, figsize=(size * ncols, size * len(images)),
                             squeeze=False)
    for r, (img, true) in enumerate(zip(images, true_labels, strict=True)):
        panels = [overlay_outlines(img, true, OUTLINE_TRUE), labels_to_rgb(true)]
        titles = ["image (true outlines)", "true mask"]
        for name in names:
            pred = predictions[name][r]
            panels.append(paired_colours(true, pred)[1])
            titles.append(f"{name}: DSB {dsb_score(true, pred):.2f}")
        for c, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=9)
    fig.tight_layout()
    return fig


def probability_maps(image: np.ndarray, probabilities: np.ndarray,
                     class_names: Sequence[str] | None = None, title: str | None = None,
                     size: float = 3.0):
    """The image, then the network's probability of each class, one panel each (0 to 1).

    ``probabilities``: (num_classes, H, W), e.g. background, nucleus interior, nucleus border
    for a three-class network. Default names: those of the course's targets.

    Used in notebook 11.
    """
    probs = np.asarray(probabilities)
    k = probs.shape[0]
    if class_names is None:
        class_names = (["background", "nucleus interior", "nucleus border"] if k == 3 else
                       ["background", "nucleus"] if k == 2 else [f"class {i}" for i in range(k)])
    fig, axes = plt.subplots(1, k + 1, figsize=(size * (k + 1) + 0.6, size), squeeze=False)
    axes = axes[0]
    axes[0].imshow(to_display(image))
    axes[0].set_title("image", fontsize=10)
    for i in range(k):
        shown = axes[i + 1].imshow(probs[i], vmin=0, vmax=1, cmap="magma")
        axes[i + 1].set_title(f"p({class_names[i]})", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes), fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title)
    return fig
