"""How sure a score is (unet_lesson.stats): bootstrap intervals against brute force, the
group bootstrap against the image bootstrap, and the spread rule over seeds."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from unet_lesson import stats

# --------------------------------------------------------------------------------------------
# Bootstrap intervals: images, and acquisition groups
# --------------------------------------------------------------------------------------------


def _exact_quantiles(means, level):
    """The interval's ends on the exact bootstrap distribution (every resample equally likely)."""
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2])


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    values = np.array([0.1, 0.35, 0.4, 0.8, 0.95])  # 5**5 = 3125 resamples, enumerated
    exact = np.array([values[list(idx)].mean()
                      for idx in itertools.product(range(5), repeat=5)])
    for level in (0.8, 0.95):
        got = stats.bootstrap_interval(values, level=level, n_resamples=200_000)
        np.testing.assert_allclose(got, _exact_quantiles(exact, level), atol=0.01)
    low, high = stats.bootstrap_interval(values)
    assert low < np.mean(values) < high


def test_bootstrap_interval_is_seeded_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few, many = rng.random(10), rng.random(1000)
    assert stats.bootstrap_interval(few, seed=3) == stats.bootstrap_interval(few, seed=3)
    assert np.diff(stats.bootstrap_interval(many)) < np.diff(stats.bootstrap_interval(few))
    assert stats.bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)  # no spread, no interval
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap_interval([])
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_interval(few, level=1.0)


def test_group_bootstrap_matches_the_exact_distribution_over_groups():
    """5 groups of 1 to 4 images: every one of the 5**5 draws of groups, enumerated; a draw's
    mean is over all the images of its groups, so a group of four weighs four times one of one
    (a mean of the group means would give another interval)."""
    values = np.array([0.9, 0.2, 0.25, 0.3, 0.5, 0.6, 0.1, 0.15, 0.05, 0.2, 0.7, 0.8])
    groups = np.array(list("abbbccddddee"))
    names = sorted(set(groups))
    sums = np.array([values[groups == g].sum() for g in names])
    counts = np.array([(groups == g).sum() for g in names])
    exact = np.array([sums[list(idx)].sum() / counts[list(idx)].sum()
                      for idx in itertools.product(range(5), repeat=5)])
    for level in (0.8, 0.95):
        got = stats.group_bootstrap_interval(values, groups, level=level, n_resamples=200_000)
        np.testing.assert_allclose(got, _exact_quantiles(exact, level), atol=0.01)
    assert stats.group_bootstrap_interval(values, groups, seed=2) == \
        stats.group_bootstrap_interval(values, groups, seed=2)
    with pytest.raises(ValueError, match="same length, got 12 values and 11 groups"):
        stats.group_bootstrap_interval(values, groups[1:])
    with pytest.raises(ValueError, match="no values"):
        stats.group_bootstrap_interval([], [])


def test_with_a_group_effect_the_group_interval_is_the_wider():
    """6 groups of 15 images whose group means differ (0.2 to 0.7, images within 0.05 of
    theirs): the image bootstrap sees 90 nearly independent values, the group bootstrap 6."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(6), 15)
    values = np.linspace(0.2, 0.7, 6)[groups] + rng.normal(0, 0.05, groups.size)
    images = stats.bootstrap_interval(values)
    by_group = stats.group_bootstrap_interval(values, groups)
    assert by_group[0] < images[0] < values.mean() < images[1] < by_group[1]
    assert np.diff(by_group) > 3 * np.diff(images)  # about 3.7 times here


def test_without_a_group_effect_the_two_intervals_agree():
    """Values i.i.d. and 6 groups of 15 dealt at random, over 400 data sets: the two intervals
    have the same centre, and widths in the ratio the bootstrap's own small-sample shrinkage
    predicts. Resampling G = 6 groups scales the spread by sqrt((G - 1) / G) = 0.91 (90 images:
    0.99), and the standard deviation of 6 group means is on average c4(6) = 0.95 of the true
    one: 0.91 / 0.99 * 0.95 = 0.87. Tolerance: 0.06 (the mean ratio over 400 sets varies by
    about 0.015)."""
    rng = np.random.default_rng(0)
    image_widths, group_widths, shifts = [], [], []
    for seed in range(400):
        values = rng.random(90)
        groups = rng.permutation(np.repeat(np.arange(6), 15))
        images = stats.bootstrap_interval(values, n_resamples=1000, seed=seed)
        by_group = stats.group_bootstrap_interval(values, groups, n_resamples=1000, seed=seed)
        image_widths.append(images[1] - images[0])
        group_widths.append(by_group[1] - by_group[0])
        shifts.append(np.mean(by_group) - np.mean(images))
    expected = math.sqrt(5 / 6) / math.sqrt(89 / 90) * 0.9515
    assert np.mean(group_widths) / np.mean(image_widths) == pytest.approx(expected, abs=0.06)
    assert abs(np.mean(shifts)) < 0.005


def test_group_means_lists_each_group_from_lowest_mean():
    table = stats.group_means([0.2, 0.4, 0.9, 0.7, 0.6], ["a", "a", "b", "b", "c"])
    assert table["group"].tolist() == ["a", "c", "b"]
    assert table["images"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(table["mean"], [0.3, 0.6, 0.8])
    np.testing.assert_allclose(table["std"], [math.sqrt(0.02), math.nan, math.sqrt(0.02)])


# --------------------------------------------------------------------------------------------
# Spread over seeds, on hand-made tables
# --------------------------------------------------------------------------------------------


def hand_table(scores: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arch": a, "seed": s, "test_dsb": v}
                         for a, values in scores.items() for s, v in enumerate(values)])


def test_seed_summary_gives_mean_and_sample_std_per_network():
    summary = stats.seed_summary(hand_table({"unet": [0.40, 0.44], "unet++": [0.50, 0.50, 0.56]}))
    assert list(summary.index) == ["unet", "unet++"]
    assert summary.loc["unet", ("test_dsb", "mean")] == pytest.approx(0.42)
    assert summary.loc["unet", ("test_dsb", "std")] == pytest.approx(0.04 / math.sqrt(2))
    assert summary.loc["unet++", ("test_dsb", "std")] == pytest.approx(math.sqrt(0.0012))
    assert summary.loc["unet++", ("seeds", "n")] == 3


def test_the_spread_rule():
    table = hand_table({"unet": [0.40, 0.42], "far": [0.50, 0.52], "near": [0.41, 0.44],
                        "noisy": [0.30, 0.60]})
    verdict = stats.beyond_spread(table).set_index("arch")
    # far: 0.10 apart, both std 0.0141: 0.10 > 2 * 0.0141
    assert verdict.loc["far", "difference"] == pytest.approx(0.10)
    assert verdict.loc["far", "threshold"] == pytest.approx(2 * 0.02 / math.sqrt(2))
    # near: 0.015 < 2 * 0.0212; noisy: 0.04 < 2 * 0.212
    assert verdict["beyond_spread"].to_dict() == {"far": True, "near": False, "noisy": False}
    # two seeds each: the 6 ways to deal 4 values; the observed split and its mirror are the
    # most extreme, so p = 2/6 however far apart the networks are
    assert verdict.loc["far", "p"] == pytest.approx(1 / 3)
    assert verdict.loc["far", "p_min"] == pytest.approx(1 / 3)


def test_the_rule_cannot_tell_from_one_seed():
    verdict = stats.beyond_spread(hand_table({"unet": [0.40], "unet++": [0.90]}))
    assert verdict.loc[0, "beyond_spread"] is None and verdict.loc[0, "p_min"] == 1.0


def test_every_pair_without_a_reference():
    table = hand_table({"a": [0.1, 0.2], "b": [0.3, 0.4], "c": [0.5, 0.6]})
    pairs = stats.beyond_spread(table, reference=None)
    assert list(zip(pairs["arch"], pairs["reference"], strict=True)) == [
        ("a", "b"), ("a", "c"), ("b", "c")]
    with pytest.raises(ValueError, match="reference"):
        stats.beyond_spread(table, reference="unet")


def test_permutation_p():
    assert stats.permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert stats.permutation_p([1, 2, 3], [1, 2, 3]) == 1.0
    # 1, 3 vs 2, 4: |2 - 3| = 1; splits with |difference| >= 1: {1,2}|{3,4} (2), {1,3}|{2,4}
    # (1), {1,4}|{2,3} (0) and their mirrors: 4 of 6
    assert stats.permutation_p([1, 3], [2, 4]) == pytest.approx(4 / 6)
    assert stats.smallest_p(2, 2) == pytest.approx(1 / 3)
    assert stats.smallest_p(3, 3) == pytest.approx(1 / 10)
    assert stats.smallest_p(5, 5) == pytest.approx(2 / 252)
