"""Splits that keep validation honest: whole acquisition groups held out, or images at random.

* :func:`group_split` - whole groups (:func:`~unet_lesson.data.groups.acquisition_groups`) to
  ``train``, ``val`` and ``test``, stratified by modality, the fractions met approximately;
  :func:`split_summary` reports them;
* :func:`training_split` - the split a training run uses: by group (``val_seen`` keeps a few
  images of the training groups aside) or at random by image.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from .groups import acquisition_groups, image_features
from .table import dataset_table, stratified_split

# held-out sizes within this fraction of the target (or 1 image) count as "on target"
SPLIT_TOLERANCE = 0.10
SPLIT_TRIALS = 1000  # random group orders tried per modality by group_split


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
