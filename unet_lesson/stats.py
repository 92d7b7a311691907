r"""How sure a score is: intervals, spreads over seeds, and which differences are real.

A mean over a few dozen images, or over two or three seeds, moves for reasons that have
nothing to do with the method. This module says by how much, at the level where the data
varies:

* :func:`bootstrap_interval` - resample **images**: how far a mean could move had other images
  *of the same acquisition groups* been drawn;
* :func:`group_bootstrap_interval` - resample **acquisition groups** (each with its images):
  how far it could move had other groups been held out. Images of one group resemble each
  other, so this interval is the wider one, and the one that speaks for new kinds of image;
* :func:`seed_summary`, :func:`beyond_spread`, :func:`permutation_p` - the spread over seeds
  and one stated rule for a difference between two methods.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_interval(values, level: float = 0.95, n_resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``values`` (e.g. per-image DSB scores),
    resampling **images**.

    Draw ``n_resamples`` samples of the same size with replacement, take each one's mean, and
    return the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means. It shows
    how far the mean could move had other images *of the same kind* been drawn; it does not
    cover a change of kind of image (another acquisition group): for that,
    :func:`group_bootstrap_interval`.

    Built in notebook 11.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no values to resample")
    _check_level(level)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[picks].mean(axis=1)  # (n_resamples,)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def group_bootstrap_interval(values, groups, level: float = 0.95, n_resamples: int = 10_000,
                             seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``values`` over images, resampling
    whole **groups** (e.g. acquisition groups) instead of images.

    Each resample draws as many groups as there are, with replacement, and takes the mean over
    all the images of the drawn groups (a group drawn twice counts twice), as the score of a
    split is a mean over its images. Where images of one group resemble each other (the same
    experiment, microscope and stain), this interval is wider than :func:`bootstrap_interval`,
    and it is the one that says how a score could move on other groups. With a handful of
    groups it is coarse (few distinct resamples): read it with the number of groups.

    Built in notebook 11.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if values.size == 0:
        raise ValueError("no values to resample")
    if groups.size != values.size:
        raise ValueError(f"values and groups must have the same length, got {values.size} "
                         f"values and {groups.size} groups")
    _check_level(level)
    names, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=values)  # per group: sum of its images' values
    counts = np.bincount(index).astype(np.float64)  # per group: its number of images
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(n_resamples, len(names)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)  # (n_resamples,)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def group_means(values, groups) -> pd.DataFrame:
    """One row per group: its number of images, mean and standard deviation of ``values``;
    then the spread of the group means (what a split of other groups would vary by).

    Used in notebook 11.
    """
    table = pd.DataFrame({"group": np.asarray(groups).ravel(),
                          "value": np.asarray(values, dtype=np.float64).ravel()})
    return (table.groupby("group")["value"].agg(images="size", mean="mean", std="std")
            .reset_index().sort_values("mean", ignore_index=True))


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every numeric column, one row per network
    (in the table's order); columns ``(measure, "mean")`` and ``(measure, "std")``, and
    ``("seeds", "n")``. The standard deviation is the sample one (n - 1); NaN for one seed.

    Used in notebooks 12 and 12b.
    """
    numeric = [c for c in table.select_dtypes("number").columns if c != "seed"]
    grouped = table.groupby("arch", sort=False)
    summary = grouped[numeric].agg(["mean", "std"])
    summary[("seeds", "n")] = grouped["seed"].nunique()
    return summary


def permutation_p(a, b) -> float:
    """Two-sided exact permutation test of the difference of means of ``a`` and ``b``: the
    share of all ways to deal the pooled values into groups of ``len(a)`` and ``len(b)``
    whose difference of means is at least as large (in absolute value) as the observed one.

    With two values per group there are 6 ways, so p is never below 2/6 = 1/3; with three,
    20 ways and p >= 1/10. Few seeds cannot make a difference significant, however large.

    Not built in a notebook: the claims' tests (:mod:`unet_lesson.course.experiments`) call it.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        total += 1
        count += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
    return count / total


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value :func:`permutation_p` can give for groups of these sizes:
    2 / C(n_a + n_b, n_a) (1 when the groups are equal and one value each: 2 / 2).

    Not built in a notebook: the claims' tests (:mod:`unet_lesson.course.experiments`) call it.
    """
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def beyond_spread(table: pd.DataFrame, metric: str = "test_dsb", reference: str | None = "unet",
                  factor: float = 2.0) -> pd.DataFrame:
    r"""Which differences of ``metric`` between networks exceed the seed-to-seed spread.

    **The rule**: networks a and b differ when the difference of their means over seeds is
    larger than ``factor`` (2) times the larger of their two standard deviations over seeds:
    :math:`|m_a - m_b| > 2 \max(s_a, s_b)`. Where a network has fewer than two seeds there
    is no spread to compare with, and the verdict is ``None`` (cannot tell). Beside it,
    ``p``: the exact permutation test over the seeds (:func:`permutation_p`), and ``p_min``,
    the smallest p those seeds allow.

    ``reference``: compare every other network with this one; ``None``: every pair. One row
    per pair: ``arch``, ``reference``, both means and standard deviations, ``difference``
    (arch - reference), ``threshold``, ``beyond_spread``, ``p``, ``p_min``.

    Used in notebooks 11, 12 and 12b.
    """
    values = {arch: group[metric].dropna().to_numpy(dtype=float)
              for arch, group in table.groupby("arch", sort=False)}
    names = list(values)
    if reference is not None and reference not in values:
        raise ValueError(f"reference {reference!r} is not in the table's archs {names}")
    pairs = ([(a, reference) for a in names if a != reference] if reference is not None
             else list(itertools.combinations(names, 2)))
    rows = []
    for a, b in pairs:
        va, vb = values[a], values[b]
        sa = float(va.std(ddof=1)) if len(va) > 1 else math.nan
        sb = float(vb.std(ddof=1)) if len(vb) > 1 else math.nan
        difference = float(va.mean() - vb.mean()) if len(va) and len(vb) else math.nan
        threshold = factor * max(sa, sb)
        verdict = None if math.isnan(threshold) or math.isnan(difference) else bool(
            abs(difference) > threshold)
        p = permutation_p(va, vb) if len(va) and len(vb) else math.nan
        rows.append({"arch": a, "reference": b, "mean": float(va.mean()) if len(va) else
                     math.nan, "std": sa, "reference_mean": float(vb.mean()) if len(vb) else
                     math.nan, "reference_std": sb, "difference": difference,
                     "threshold": threshold, "beyond_spread": verdict, "p": p,
                     "p_min": smallest_p(len(va), len(vb)) if len(va) and len(vb) else
                     math.nan})
    return pd.DataFrame(rows)
