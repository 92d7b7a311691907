r"""Acquisition groups: images of one experiment, microscope and stain, recovered from the
pixels (notebook 01; the splits that hold them out are :mod:`.split`).

**Why.** The DSB 2018 images come in *acquisition batches*: many crops of the same
experiment, same microscope, same stain, same magnification. A random split by image puts
crops of one batch on both sides, so validation measures how well the network knows a batch
it has seen, not how it does on the competition's ``stage1_test``, whose images come from
acquisitions the training set does not have. To see that shift before the test does,
validation must hold out **whole acquisition groups**.

The images carry no batch metadata, so we recover batch-like groups from the pixels:

1. :func:`image_features` - one row of simple statistics per image: size, modality
   (:func:`~unet_lesson.data.table.modality_of`), mean and standard deviation of R, G, B,
   grey-level percentiles, colourfulness, each channel's share of the intensity, a 4-bin
   grey histogram, nucleus count, median nucleus area, coverage, nucleus contrast and the
   mean grey gradient (noise and focus).
2. :func:`acquisition_groups` - Ward hierarchical clustering
   (:func:`scipy.cluster.hierarchy.linkage`) of a few of those statistics
   (:func:`clustering_matrix`), **inside each modality x image-size block**, so a group never
   mixes modalities or image sizes. The tree of each block is cut at the Ward height
   :data:`WARD_THRESHOLD` (the rule is spelled out there).
3. :func:`~unet_lesson.data.split.group_split` - whole groups to ``train``, ``val`` and
   ``test`` (:mod:`.split`); :func:`unet_lesson.charts.plot_groups` draws the groups.

On the real ``stage1_train`` (586 images) this gives 24 groups: the twelve 1024x1024
brightfield images form one group (so brightfield cannot be held out: it stays in training),
the 95 stained 256x320 tissue images four (pale background with round nuclei, high
magnification, spindle nuclei, dense epithelium), and the 479 fluorescence images 19 across
their seven sizes (nine of them 256x256, which differ mainly by camera offset, exposure and
nucleus size).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .dsb import DSBSample
from .table import modality_of

GREY_PERCENTILES = (1, 50, 99)  # grey-level percentiles in the feature table
GREY_BINS = 4  # grey histogram summary: fractions of pixels in 4 equal bins of 0..255
# Ward height at which each block's tree is cut (see acquisition_groups; chosen on the real data)
WARD_THRESHOLD = 4.3


# --------------------------------------------------------------------------------------------
# 1. Features
# --------------------------------------------------------------------------------------------


def _features_of(sample: DSBSample) -> dict:
    """The statistics of one image (see :func:`image_features`)."""
    image, labels = np.asarray(sample.image), np.asarray(sample.labels)
    height, width = labels.shape
    rgb = image[..., :3].astype(np.float64)  # (H, W, 3), 0..255
    grey = rgb.mean(axis=-1)  # (H, W)
    row: dict = {"image_id": str(sample.image_id), "height": int(height), "width": int(width),
                 "modality": modality_of(image)}
    means = rgb.reshape(-1, 3).mean(axis=0)
    for c, name in enumerate("rgb"):
        row[f"mean_{name}"] = float(means[c])
        row[f"std_{name}"] = float(rgb[..., c].std())
    for q, value in zip(GREY_PERCENTILES, np.percentile(grey, GREY_PERCENTILES), strict=True):
        row[f"grey_p{q:02d}"] = float(value)
    row["colourfulness"] = float(np.abs(rgb - grey[..., None]).mean())  # as in modality_of
    shares = means / means.sum() if means.sum() > 0 else np.full(3, 1 / 3)
    for c, name in enumerate("rgb"):
        row[f"share_{name}"] = float(shares[c])  # each channel's share of the intensity
    bins = np.minimum((grey * GREY_BINS / 256).astype(np.int64), GREY_BINS - 1)
    for b, fraction in enumerate(np.bincount(bins.ravel(), minlength=GREY_BINS) / grey.size):
        row[f"grey_bin{b}"] = float(fraction)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    inside = labels > 0
    row["n_nuclei"] = int(areas.size)
    row["area_median"] = float(np.median(areas)) if areas.size else 0.0  # pixels
    row["coverage"] = float(inside.mean())
    # mean grey level inside nuclei minus outside: > 0 for bright nuclei on a dark background
    row["nucleus_contrast"] = (float(grey[inside].mean() - grey[~inside].mean())
                               if inside.any() and not inside.all() else 0.0)
    # mean absolute difference of horizontal neighbours: noise, texture and focus
    row["grey_gradient"] = float(np.abs(np.diff(grey, axis=1)).mean()) if width > 1 else 0.0
    return row


def image_features(samples: Iterable[DSBSample]) -> pd.DataFrame:
    """One row per image of simple statistics, sorted by ``image_id``.

    ``samples`` are :class:`~unet_lesson.data.DSBSample` (anything with ``image_id``, a
    ``uint8 (H, W, 3)`` ``image`` and ``int (H, W)`` ``labels``). Columns: ``image_id``,
    ``height``, ``width`` (pixels), ``modality``; ``mean_r/g/b`` and ``std_r/g/b`` (0..255);
    ``grey_p01/p50/p99`` (percentiles of the grey level, the mean of R, G, B);
    ``colourfulness`` (mean |channel - grey|, the rule of ``modality_of``); ``share_r/g/b``
    (each channel's share of the mean intensity, 1/3 for grey images); ``grey_bin0..3``
    (fractions of pixels with grey level in 0-63, 64-127, 128-191, 192-255); ``n_nuclei``,
    ``area_median`` (pixels), ``coverage`` (fraction of pixels in nuclei);
    ``nucleus_contrast`` (mean grey inside nuclei minus outside) and ``grey_gradient`` (mean
    |difference| of horizontal neighbours). Deterministic.

    Used in notebook 01.
    """
    rows = [_features_of(sample) for sample in samples]
    if not rows:
        raise ValueError("image_features got no samples; pass a list of DSBSample, e.g. "
                         "load_dsb_folder(path)")
    features = pd.DataFrame(rows)
    if features["image_id"].duplicated().any():
        raise ValueError("image_features got the same image_id more than once")
    return features.sort_values("image_id", ignore_index=True)


# --------------------------------------------------------------------------------------------
# 2. Groups
# --------------------------------------------------------------------------------------------


def clustering_matrix(features: pd.DataFrame) -> pd.DataFrame:
    r"""The statistics the clustering compares, on fixed scales where 1 unit is a big change.

    * ``log_p01``, ``log_p50``, ``log_p99``: :math:`\ln(1 + \text{grey percentile})`:
      background level (camera offset, illumination), typical and brightest grey levels
      (exposure); 1 unit is a factor of e = 2.7.
    * ``red``, ``blue``: 10 x the red and blue shares of the intensity: the stain's colour
      (1 unit is a change of 0.1 in a share; 3.33 for every grey image).
    * ``log_area``: :math:`\ln` median nucleus area (pixels): magnification and cell type.
    * ``log_density``: :math:`\ln(1 + \text{nuclei per 100,000 pixels})`: confluence.
    * ``log_gradient``: :math:`\ln(0.1 + \text{grey gradient})`: noise, texture, focus.

    Fixed units, not z-scores over the set: with z-scores, how far apart two fluorescence
    images are would depend on how many stained images the set holds; here an image's group
    depends only on the images of its own modality x size block.

    Used in notebook 01.
    """
    density = features["n_nuclei"] / (features["height"] * features["width"]) * 1e5
    return pd.DataFrame({
        "log_p01": np.log1p(features["grey_p01"]),
        "log_p50": np.log1p(features["grey_p50"]),
        "log_p99": np.log1p(features["grey_p99"]),
        "red": 10 * features["share_r"],
        "blue": 10 * features["share_b"],
        "log_area": np.log(features["area_median"].clip(lower=1.0)),
        "log_density": np.log1p(density),
        "log_gradient": np.log(0.1 + features["grey_gradient"]),
    }, index=features.index)


def _cluster_block(points: np.ndarray, threshold: float) -> np.ndarray:
    """Ward clusters (0-based) of the rows of one block; one row is one cluster."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(points) == 1:
        return np.zeros(1, dtype=int)
    tree = linkage(points, method="ward")
    return fcluster(tree, t=threshold, criterion="distance") - 1


def acquisition_groups(features: pd.DataFrame, threshold: float = WARD_THRESHOLD,
                       by: tuple[str, ...] = ("modality", "height", "width")) -> pd.Series:
    r"""An acquisition-like group for each image: a ``pd.Series`` of group names by image_id.

    ``features`` is the table of :func:`image_features`. The images are first split into
    blocks by the hard keys ``by`` (modality and image size: a group never mixes them), then
    each block is clustered with Ward's method on :func:`clustering_matrix` and its tree cut
    at the Ward height ``threshold``.

    **The cut rule.** Ward's height for merging clusters A and B (sizes :math:`a`, :math:`b`)
    is :math:`\sqrt{2ab/(a+b)}\,\lVert c_A - c_B\rVert` (:math:`c` the centroids): for two
    single images, their distance. Two clusters stay apart when that height exceeds
    ``threshold``: two groups of 10 images when their centroids differ by more than
    :math:`4.3/\sqrt{10} \approx 1.4` units (e.g. a factor 4 in nucleus area or background
    level), while a single odd image needs 4.3 units to stand alone, so stray one-image groups
    are rare.

    The default 4.3 was chosen on the real ``stage1_train`` by putting the images of each
    group side by side (:func:`plot_groups`): between 3.94 and 4.62 the stained tissue splits
    into its four visible kinds while the 80 alike 360x360 fluorescence images (last merge
    at 3.88) stay one group. Any threshold from 4.21 to 4.47 (the nearest merge heights)
    gives the same 24 groups; 4.3 sits inside that range.

    Group names are ``"<modality>-<H>x<W>-<k>"``, ``k`` = 1, 2, ... by decreasing group size
    (ties: the smallest image_id first). Deterministic, and independent of the row order
    (the rows are sorted by image_id first).

    Used in notebook 01.
    """
    missing = [c for c in ("image_id", *by, "grey_p01") if c not in features]
    if missing:
        raise ValueError(f"features lacks the columns {missing}; make it with "
                         f"image_features(samples)")
    if not threshold > 0:
        raise ValueError(f"threshold must be a positive Ward height, got {threshold}")
    if features["image_id"].duplicated().any():
        raise ValueError("features lists some image_id more than once")
    features = features.sort_values("image_id", ignore_index=True)
    points = clustering_matrix(features)
    if not np.isfinite(points.to_numpy()).all():
        raise ValueError("features hold NaN or infinite values; make them with image_features")
    names = pd.Series("", index=features["image_id"].to_numpy(), name="group")
    for key, rows in features.groupby(list(by), sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        labels = _cluster_block(points.iloc[rows].to_numpy(), threshold)
        ids = features["image_id"].to_numpy()[rows]
        # rank clusters: biggest first, ties by their smallest image_id
        order = sorted(set(labels), key=lambda c: (-(labels == c).sum(), ids[labels == c].min()))
        prefix = _block_name(dict(zip(by, key, strict=True)))
        for rank, cluster in enumerate(order, start=1):
            names[ids[labels == cluster]] = f"{prefix}-{rank}"
    names.index.name = "image_id"
    return names


def _block_name(key: dict) -> str:
    """``fluorescence-256x256`` for the default keys, else the key values joined by '-'."""
    if {"modality", "height", "width"} <= set(key):
        rest = [str(v) for k, v in key.items() if k not in ("modality", "height", "width")]
        return "-".join([str(key["modality"]), f"{key['height']}x{key['width']}", *rest])
    return "-".join(str(v) for v in key.values())
