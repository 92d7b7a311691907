r"""The data set as a table, the imaging modality of each image, and seeded stratified splits.

**Modality.** The DSB 2018 images come from three kinds of microscopy, and a U-Net trained on
one kind does poorly on another, so we look at results per kind. :func:`modality_of` uses one
documented rule on the pixels alone (no metadata needed):

1. ``fluorescence`` if the background is dark: more than half of the pixels have a grey level
   (mean of R, G, B) below 128, i.e. the median grey level is below 128. Nuclei glow on
   black; most of the image is background, so the median is the background's.
2. otherwise ``stained`` if the image is coloured: the mean absolute difference between each
   channel and the grey level exceeds 2 (grey images have 0 exactly).
3. otherwise ``brightfield``: a grey image with a bright background and dark nuclei.

On the real ``stage1_train`` (586 images) this gives 479 fluorescence, 12 brightfield and
95 stained images; the medians of the two groups are far from the threshold (at most 44 for
fluorescence, at least 131 for the others), so the rule is not fragile there.

**Splits.** Validation images must never be seen in training (the Kaggle starter kernel we
learn from validated on its own training images). :func:`stratified_split` draws, with a seed,
the same fraction of every stratum (modality x size class): a random split by image, which
puts images of one acquisition batch on both sides. The course's runs split with
:func:`~unet_lesson.data.groups.training_split` instead (whole acquisition groups held out;
notebook 01), and each run saves its copy; :func:`make_splits` saves a split to a CSV and reads
it back on later calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .. import env
from ..files import folder_key, write_csv
from .dsb import DSBSample, read_dsb_folder

DARK_BACKGROUND = 128  # median grey level below which the background counts as dark
COLOUR_THRESHOLD = 2.0  # mean |channel - grey| above which an image counts as coloured
# image area (pixels) below which an image is "small", then "medium"; above, "large"
SIZE_CLASSES = ((100_000, "small"), (400_000, "medium"), (float("inf"), "large"))
SPLITS = ("train", "val", "test", "val_seen")  # val_seen: see groups.training_split


def modality_of(image: np.ndarray) -> str:
    """``"fluorescence"``, ``"brightfield"`` or ``"stained"`` for a ``uint8 (H, W, 3)`` image.

    Built in notebook 01; used in notebook 08.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None].repeat(3, axis=-1)
    rgb = image[..., :3]
    # median grey level < 128  <=>  more than half of the pixels have R + G + B < 3 * 128
    dark = (rgb.sum(axis=-1, dtype=np.int32) < 3 * DARK_BACKGROUND).mean() > 0.5
    if dark:
        return "fluorescence"
    rgb = rgb.astype(np.float32)
    colourfulness = np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean()
    return "stained" if colourfulness > COLOUR_THRESHOLD else "brightfield"


def size_class(height: int, width: int) -> str:
    """``"small"`` (< 100,000 pixels, e.g. 256x256), ``"medium"`` (< 400,000) or ``"large"``.

    Not built in a notebook: :func:`sample_row` uses it (the split is stratified by it).
    """
    return next(name for limit, name in SIZE_CLASSES if height * width < limit)


def sample_row(sample: DSBSample) -> dict:
    """One row of the data set table for one sample.

    Not built in a notebook: :func:`dataset_table` calls it.
    """
    height, width = sample.labels.shape
    areas = np.bincount(sample.labels.ravel())[1:]
    areas = areas[areas > 0]
    stats = (areas.mean(), np.median(areas), areas.min(), areas.max()) if areas.size else (0,) * 4
    return {
        "image_id": sample.image_id,
        "height": height,
        "width": width,
        "modality": modality_of(sample.image),
        "size_class": size_class(height, width),
        "n_nuclei": int(areas.size),
        "area_mean": float(stats[0]),
        "area_median": float(stats[1]),
        "area_min": int(stats[2]),
        "area_max": int(stats[3]),
        "coverage": float((sample.labels > 0).mean()),  # fraction of pixels inside nuclei
        "n_contested": int(sample.n_contested),  # overlapping mask pixels (see dsb.py)
    }


def dataset_table(source: str | Path | Iterable[DSBSample], **read_kwargs) -> pd.DataFrame:
    """A pandas table with one row per image: size, modality, nuclei count, area statistics.

    ``source`` is a data set folder (read with :func:`read_dsb_folder` and ``read_kwargs``,
    using the label cache) or an iterable of samples already read.

    Used in notebook 01.
    """
    samples = read_dsb_folder(source, **read_kwargs) if isinstance(source, str | Path) else source
    return pd.DataFrame([sample_row(s) for s in samples])


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def _largest_remainder(counts: np.ndarray, fraction: float, caps: np.ndarray) -> np.ndarray:
    """Integer quotas close to ``fraction * counts`` per stratum, summing to the rounded total."""
    exact = fraction * counts
    quota = np.minimum(np.floor(exact).astype(int), caps)
    total = min(int(round(fraction * counts.sum())), int(caps.sum()))
    for i in np.argsort(-(exact - quota), kind="stable"):  # largest remainders first
        if quota.sum() >= total:
            break
        if quota[i] < caps[i]:
            quota[i] += 1
    return quota


def stratified_split(table: pd.DataFrame, val_fraction: float = 0.2, test_fraction: float = 0.0,
                     seed: int = 0, by: tuple[str, ...] = ("modality", "size_class")
                     ) -> pd.DataFrame:
    """Assign each image to ``train``, ``val`` (and ``test``), stratified by the ``by`` columns.

    Every stratum contributes its share of each split (within one image: quotas by the largest
    remainder, so the totals are the rounded fractions of the whole set). Deterministic for a
    seed, and independent of the table's row order. Returns ``image_id``, ``split`` and ``by``.

    Used in notebook 01.
    ``training_split(kind="random")`` call it).
    """
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1, got "
                         f"{val_fraction} and {test_fraction}")
    if table["image_id"].duplicated().any():
        raise ValueError("the table lists some image_id more than once")
    table = table.sort_values("image_id", ignore_index=True)
    strata = table.groupby(list(by), sort=True)
    groups = [group["image_id"].to_numpy() for _, group in strata]
    counts = np.array([len(g) for g in groups])
    n_val = _largest_remainder(counts, val_fraction, counts)
    n_test = _largest_remainder(counts, test_fraction, counts - n_val)
    rng = np.random.default_rng(seed)
    split_of: dict[str, str] = {}
    for ids, v, t in zip(groups, n_val, n_test, strict=True):
        order = rng.permutation(ids)
        for position, image_id in enumerate(order):
            split_of[str(image_id)] = "val" if position < v else "test" if position < v + t \
                else "train"
    result = table[["image_id", *by]].copy()
    result.insert(1, "split", [split_of[str(i)] for i in result["image_id"]])
    return result


def default_split_path(root: str | Path, seed: int = 0, val_fraction: float = 0.2,
                       test_fraction: float = 0.0) -> Path:
    """``env.data_dir()/splits/<set>-<hash of its path>-seed<seed>-val<..>-test<..>.csv``.

    Not built in a notebook: a place for :func:`make_splits` files (the course's runs save
    their split in the run folder instead).
    """
    root = Path(root).resolve()
    name = (f"{root.name}-{folder_key(root)}-seed{seed}-val{val_fraction:g}"
            f"-test{test_fraction:g}.csv")
    return env.data_dir() / "splits" / name


def save_splits(splits: pd.DataFrame, path: str | Path) -> Path:
    """Write the splits CSV (atomically: a temporary file, then a rename).

    Not built in a notebook: :func:`make_splits` calls it.
    """
    return write_csv(path, splits)


def load_splits(path: str | Path) -> pd.DataFrame:
    """Read a splits CSV written by :func:`save_splits`.

    Not built in a notebook: :func:`make_splits` and the run folder read splits with it.
    """
    splits = pd.read_csv(path, dtype={"image_id": str, "split": str})
    bad = set(splits["split"]) - set(SPLITS)
    if bad or "image_id" not in splits:
        raise ValueError(f"{path} is not a splits file (columns image_id, split in {SPLITS})")
    return splits


def make_splits(table: pd.DataFrame, path: str | Path, val_fraction: float = 0.2,
                test_fraction: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """The splits saved at ``path``, made (and saved) on the first call.

    Later calls read the file, so training and evaluation always use the same split. If the
    file lists other images than ``table`` (the data set changed), raises ``ValueError``.

    Not built in a notebook: a saved random split for your own scripts (the course's runs use
    :func:`~unet_lesson.data.groups.training_split` and save it as ``splits.csv``).
    """
    path = Path(path)
    if path.is_file():
        splits = load_splits(path)
        have, want = set(splits["image_id"]), set(table["image_id"])
        if have != want:
            raise ValueError(
                f"{path} splits {len(have)} images, but the data set has {len(want)} "
                f"({len(want - have)} new, {len(have - want)} gone); delete the file to split "
                f"again, or point to another path"
            )
        return splits
    splits = stratified_split(table, val_fraction, test_fraction, seed)
    save_splits(splits, path)
    return splits
