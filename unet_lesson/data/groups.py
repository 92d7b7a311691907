r"""Acquisition groups, and splits that hold out whole groups (notebook 01; notebook 11 shows
the distribution shift they expose).

**Why.** The DSB 2018 images come in *acquisition batches*: many crops of the same
experiment, same microscope, same stain, same magnification. A random split by image puts
crops of one batch on both sides, so validation measures how well the network knows a batch
it has seen (0.54 mean AP on real data), not how it does on the competition's ``stage1_test``
(0.36), whose images come from acquisitions the training set does not have. To see that
shift before the test does, validation must hold out **whole acquisition groups**.

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
3. :func:`group_split` - whole groups to ``train``, ``val`` and ``test``, stratified by
   modality, with the fractions met approximately; :func:`split_summary` reports them.
4. :func:`plot_groups` - a figure of the clusters, with a typical image of each group.

On the real ``stage1_train`` (586 images) this gives 24 groups: the twelve 1024x1024
brightfield images form one group (so brightfield cannot be held out: it stays in training),
the 95 stained 256x320 tissue images four (pale background with round nuclei, high
magnification, spindle nuclei, dense epithelium), and the 479 fluorescence images 19 across
their seven sizes (nine of them 256x256, which differ mainly by camera offset, exposure and
nucleus size).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .dsb import DSBSample
from .table import dataset_table, modality_of, stratified_split

GREY_PERCENTILES = (1, 50, 99)  # grey-level percentiles in the feature table
GREY_BINS = 4  # grey histogram summary: fractions of pixels in 4 equal bins of 0..255
# Ward height at which each block's tree is cut (see acquisition_groups; chosen on the real data)
WARD_THRESHOLD = 4.3
# held-out sizes within this fraction of the target (or 1 image) count as "on target"
SPLIT_TOLERANCE = 0.10
SPLIT_TRIALS = 1000  # random group orders tried per modality by group_split


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


# --------------------------------------------------------------------------------------------
# 3. Splits by group
# --------------------------------------------------------------------------------------------


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer) \
            or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _group_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group: its name, modality (the most common one) and size."""
    rows = []
    for name, part in table.groupby("group", sort=True):
        counts = part["modality"].value_counts()
        modality = sorted(counts.index[counts == counts.max()])[0]
        rows.append({"group": name, "modality": modality, "size": len(part)})
    return pd.DataFrame(rows)


def _walk(sizes: np.ndarray, order: np.ndarray, targets: dict[str, float]) -> list[str]:
    """One candidate: groups in ``order`` go to the held-out split that needs most, if they fit.

    A group "fits" a split when adding it brings the split closer to its target.
    """
    counts = dict.fromkeys(targets, 0)
    side_of = ["train"] * len(sizes)
    for g in order:
        for side in sorted(targets, key=lambda s: -(targets[s] - counts[s])):
            if abs(counts[side] + sizes[g] - targets[side]) < abs(counts[side] - targets[side]):
                side_of[g] = side
                counts[side] += sizes[g]
                break
    return side_of


def _repair(sizes: np.ndarray, side_of: list[str], sides: list[str]) -> list[str]:
    """Make sure every held-out split has a group and training keeps one."""
    side_of = list(side_of)
    for side in sides:
        if side not in side_of:  # the smallest training group moves there
            train = [g for g, s in enumerate(side_of) if s == "train"]
            side_of[min(train, key=lambda g: (sizes[g], g))] = side
    if "train" not in side_of:  # the largest group of the fullest held-out split comes back
        fullest = max(sides, key=lambda s: sum(sizes[g] for g, t in enumerate(side_of) if t == s))
        mine = [g for g, s in enumerate(side_of) if s == fullest]
        if len(mine) > 1:
            side_of[max(mine, key=lambda g: (sizes[g], -g))] = "train"
    return side_of


def _assign_modality(sizes: np.ndarray, fractions: dict[str, float], rng: np.random.Generator,
                     ) -> list[str]:
    """The split of each group of one modality (sizes in images)."""
    total = sizes.sum()
    targets = {side: f * total for side, f in fractions.items()}
    sides = list(targets)
    best, best_cost = None, np.inf
    for _ in range(SPLIT_TRIALS):
        side_of = _repair(sizes, _walk(sizes, rng.permutation(len(sizes)), targets), sides)
        errors = {s: abs(sum(sizes[g] for g, t in enumerate(side_of) if t == s) - targets[s])
                  for s in sides}
        if all(errors[s] <= max(SPLIT_TOLERANCE * targets[s], 1.0) for s in sides):
            return side_of  # the first random order that is on target: random by seed
        cost = sum(e ** 2 for e in errors.values())
        if cost < best_cost:
            best, best_cost = side_of, cost
    return best


def group_split(table: pd.DataFrame, groups: pd.Series, val_fraction: float = 0.15,
                test_fraction: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """Assign WHOLE groups to ``train``, ``val`` and ``test``, stratified by modality.

    ``table`` has ``image_id`` and ``modality`` (:func:`image_features` or
    :func:`~unet_lesson.data.dataset_table`); ``groups`` maps image_id to a group
    (:func:`acquisition_groups`). No group is on two sides. Within each modality, groups are
    drawn in a random order (``seed``) and each goes to the held-out split that needs images
    most if it brings that split closer to ``fraction x the modality's images``, else to
    training; the first of up to :data:`SPLIT_TRIALS` orders whose held-out splits are each
    within 10% (or one image) of their targets is kept, else the closest. Group sizes are
    lumpy, so fractions are met approximately: check them with :func:`split_summary`.

    **Few groups.** A modality is held out only if it has at least one group per held-out
    split plus one for training (3 groups with both fractions > 0). A modality with fewer
    groups (1 or 2) stays entirely in training and its rows say so in ``note``: its validation
    score would be the score of one batch, and removing it from training would leave the
    network without that modality. A group of mixed modalities (possible with groups made
    elsewhere) counts as its most common modality.

    Returns ``image_id``, ``split``, ``group``, ``modality`` (and ``height``, ``width`` when
    ``table`` has them), ``note``; sorted by image_id. Deterministic by seed, and independent
    of the row order of ``table`` and ``groups``.

    Used in notebook 01.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be below 1 (training needs "
                         f"images), got {val_fraction} + {test_fraction}")
    for column in ("image_id", "modality"):
        if column not in table:
            raise ValueError(f"table lacks the column {column!r}; pass image_features(samples)"
                             f" or dataset_table(samples)")
    if table["image_id"].duplicated().any():
        raise ValueError("table lists some image_id more than once")
    groups = pd.Series(groups)
    if groups.index.duplicated().any():
        raise ValueError("groups lists some image_id more than once")
    missing = sorted(set(table["image_id"]) - set(groups.index))
    if missing:
        raise ValueError(f"groups has no group for {len(missing)} image(s) of table, e.g. "
                         f"{missing[0]}; compute them from the same samples with "
                         f"acquisition_groups(image_features(samples))")
    keep = [c for c in ("image_id", "modality", "height", "width") if c in table]
    result = table[keep].sort_values("image_id", ignore_index=True)
    result.insert(1, "group", groups.loc[result["image_id"]].astype(str).to_numpy())
    fractions = {s: f for s, f in (("val", val_fraction), ("test", test_fraction)) if f > 0}
    needed = len(fractions) + 1
    per_group = _group_table(result)
    counts = per_group.groupby("modality")["group"].count()
    if fractions and (counts < needed).all():
        raise ValueError(
            f"too few groups to hold any out: every modality needs at least {needed} groups "
            f"(one per held-out split, one for training), but they have "
            f"{counts.to_dict()}. Cut finer groups (a lower threshold in "
            f"acquisition_groups), lower the number of held-out splits (val_fraction or "
            f"test_fraction = 0), or split by image with stratified_split")
    split_of, note_of = {}, {}
    for modality, part in per_group.groupby("modality", sort=True):
        names, sizes = part["group"].to_numpy(), part["size"].to_numpy()
        if len(part) < needed or not fractions:
            sides = ["train"] * len(part)
            if fractions:
                note = (f"kept in train: {modality} has {len(part)} group(s), holding it out "
                        f"needs {needed}")
                note_of.update(dict.fromkeys(names, note))
        else:  # one generator per modality: a modality's split ignores the others
            rng = np.random.default_rng([seed, zlib.crc32(str(modality).encode())])
            sides = _assign_modality(sizes, fractions, rng)
        split_of.update(zip(names, sides, strict=True))
    result.insert(1, "split", result["group"].map(split_of))
    result["note"] = [note_of.get(g, "") for g in result["group"]]
    return result


def split_summary(splits: pd.DataFrame) -> pd.DataFrame:
    """Images and groups per modality and split, and the fraction of each modality's images.

    ``splits`` is the result of :func:`group_split`; the ``all`` rows are the whole set.

    Not built in a notebook: a summary for the tests and the README.
    """
    rows = []
    for modality, part in [*splits.groupby("modality", sort=True), ("all", splits)]:
        for split in ("train", "val", "test"):
            chosen = part[part["split"] == split]
            rows.append({"modality": modality, "split": split, "images": len(chosen),
                         "groups": chosen["group"].nunique(),
                         "fraction": len(chosen) / len(part)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 4. A figure of the groups
# --------------------------------------------------------------------------------------------


def typical_images(features: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """For each group, the image_id nearest its centroid in :func:`clustering_matrix`.

    Not built in a notebook: plot_groups uses it.
    """
    features = features.sort_values("image_id", ignore_index=True)
    points = clustering_matrix(features).to_numpy()
    names = groups.loc[features["image_id"]].to_numpy()
    typical = {}
    for name in sorted(set(names)):
        rows = np.flatnonzero(names == name)
        centre = points[rows].mean(axis=0)
        typical[name] = features["image_id"].iloc[
            rows[np.argmin(((points[rows] - centre) ** 2).sum(axis=1))]]
    return pd.Series(typical, name="image_id")


def plot_groups(features: pd.DataFrame, groups: pd.Series, samples=None,
                x: str = "grey_p50", y: str = "area_median", max_thumbnails: int = 32):
    """A scatter of two statistics coloured by group, and a typical image of each group.

    ``x``, ``y``: columns of ``features`` (log axes; by default the median grey level, which
    separates dark from bright backgrounds, and the median nucleus area in pixels, the
    magnification). Groups are numbered 1, 2, ... in name order; each number sits at its
    group's median. With ``samples`` (the DSBSample list, or a mapping image_id -> image), a
    strip below shows, per group, the image nearest the group's centroid
    (:func:`typical_images`, at most ``max_thumbnails``) titled with its number, name and
    size. Returns the figure.

    Used in notebook 01.
    """
    import matplotlib.pyplot as plt

    names = groups.loc[features["image_id"]].to_numpy()
    order = sorted(set(names))
    images = {}
    if samples is not None:
        images = dict(samples) if isinstance(samples, dict) else \
            {s.image_id: s.image for s in samples}
    typical = typical_images(features, groups)
    shown = [g for g in order if typical[g] in images][:max_thumbnails]
    ncols = min(max(len(shown), 1), 8)
    nrows = -(-len(shown) // ncols) if shown else 0
    fig = plt.figure(figsize=(12, 5 + 1.8 * nrows))
    grid = fig.add_gridspec(1 + nrows, ncols, height_ratios=[5] + [1.8] * nrows)
    ax = fig.add_subplot(grid[0, :])
    cmap = plt.get_cmap("tab20")
    markers = {"fluorescence": "o", "brightfield": "s", "stained": "^"}
    for i, name in enumerate(order):
        part = features[names == name]
        xs, ys = part[x].clip(lower=0.5), part[y].clip(lower=0.5)  # log axes: no zeros
        ax.scatter(xs, ys, s=14, color=cmap(i % 20), alpha=0.6,
                   marker=markers.get(part["modality"].iloc[0], "o"))
        ax.annotate(str(i + 1), (float(np.median(xs)), float(np.median(ys))), fontsize=9,
                    ha="center", va="center", weight="bold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{len(order)} acquisition groups of {len(features)} images\n(numbers: "
                 f"groups; markers: o fluorescence, s brightfield, ^ stained; thumbnails "
                 f"stretched to their 99.5th percentile)")
    for k, name in enumerate(shown):
        thumb = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        image = np.asarray(images[typical[name]], dtype=np.float32)
        thumb.imshow(np.clip(image / max(np.percentile(image, 99.5), 1.0), 0, 1))
        modality, rest = name.split("-", 1)
        thumb.set_title(f"{order.index(name) + 1}. {modality}\n{rest} "
                        f"({int((names == name).sum())} images)", fontsize=7)
        thumb.axis("off")
    fig.tight_layout()
    return fig


def training_split(samples, kind: str = "group", val_fraction: float = 0.15,
                   test_fraction: float = 0.15, seen_fraction: float = 0.1,
                   seed: int = 0) -> pd.DataFrame:
    """The split a training run uses, checked before anything is written anywhere.

    ``kind="group"`` (the default of the course's configurations): validation and test hold
    out whole acquisition groups (:func:`acquisition_groups`, :func:`group_split`), so their
    scores see the shift to kinds of images the network has not trained on, as the
    competition's test set does. ``seen_fraction`` of the training groups' images (drawn per
    modality) are kept out of training as ``val_seen``: a validation of the *same* groups, what
    a random split measures. The gap between ``val_seen`` and ``val`` is how much a random split
    overestimates. ``kind="random"``: :func:`~unet_lesson.data.table.stratified_split` by
    image (train / val / test), stratified by modality and size.

    Deterministic for the same images, fractions and seed. Raises ``ValueError`` naming the
    problem when the images are too few for a training and a validation split.

    Used in notebook 01.
    """
    if kind not in ("group", "random"):
        raise ValueError(f"kind must be 'group' or 'random', got {kind!r}")
    samples = list(samples)
    if kind == "random":
        splits = stratified_split(dataset_table(samples), val_fraction, test_fraction, seed)
    else:
        features = image_features(samples)
        splits = group_split(features, acquisition_groups(features), val_fraction,
                             test_fraction, seed)
        if seen_fraction:
            splits = _keep_seen(splits, seen_fraction, seed)
    counts = splits["split"].value_counts()
    if counts.get("train", 0) == 0 or counts.get("val", 0) == 0:
        raise ValueError(
            f"{len(samples)} image(s) are too few for a training and a validation split "
            f"({kind} split, val_fraction {val_fraction}, test_fraction {test_fraction}: "
            f"{counts.get('train', 0)} training and {counts.get('val', 0)} validation images); "
            f"add images or change the fractions")
    return splits


def _keep_seen(splits: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Mark ``fraction`` of each modality's training images (sorted by id) as ``val_seen``."""
    splits = splits.copy()
    rng = np.random.default_rng([seed, 7])
    for _, part in splits[splits["split"] == "train"].groupby("modality", sort=True):
        ids = part.sort_values("image_id").index.to_numpy()
        n = int(round(fraction * len(ids)))
        if 0 < n < len(ids):
            splits.loc[rng.choice(ids, size=n, replace=False), "split"] = "val_seen"
    return splits
