"""Acquisition groups and group splits: features, clusters, whole-group splits, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from unet_lesson.charts import plot_groups, typical_images
from unet_lesson.data import load_dsb_folder, make_synthetic_dsb, modality_of
from unet_lesson.data.groups import acquisition_groups, clustering_matrix, image_features
from unet_lesson.data.split import group_split, split_summary

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_samples(tmp_path_factory):
    root = make_synthetic_dsb(tmp_path_factory.mktemp("groups") / "syn", n_images=18, seed=3,
                              image_size=64, progress=False)
    return load_dsb_folder(root, cache=False, progress=False)


def made_up_features(batches, seed=0):
    """A feature table with planted batches: ``batches`` lists (n, modality, (H, W), level,
    area); images of one batch share a background level and nucleus area, plus small noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for b, (n, modality, (height, width), level, area) in enumerate(batches):
        for i in range(n):
            jitter = np.exp(rng.normal(0, 0.05, size=4))
            grey = level * jitter[0]
            colour = modality == "stained"
            rows.append({
                "image_id": f"b{b:02d}-{i:03d}-{rng.integers(1 << 30):x}",
                "height": height, "width": width, "modality": modality,
                "grey_p01": grey * 0.8, "grey_p50": grey, "grey_p99": grey * 3 + 20,
                "share_r": 0.36 if colour else 1 / 3, "share_g": 0.28 if colour else 1 / 3,
                "share_b": 0.36 if colour else 1 / 3,
                "area_median": area * jitter[1], "n_nuclei": int(30 * jitter[2]),
                "grey_gradient": 1.0 * jitter[3], "coverage": 0.1,
            })
    return pd.DataFrame(rows)


def made_up_split_table(sizes_by_modality, seed=0):
    """``table`` and ``groups`` with the given group sizes per modality."""
    rows = []
    for modality, sizes in sizes_by_modality.items():
        for g, size in enumerate(sizes):
            rows += [{"image_id": f"{modality[:2]}-{g:02d}-{i:03d}", "modality": modality,
                      "group": f"{modality}-{g}"} for i in range(size)]
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=seed, ignore_index=True)
    return table[["image_id", "modality"]], table.set_index("image_id")["group"]


SIZES = {"fluorescence": [40, 12, 25, 30, 8, 17, 22, 35, 10, 19, 28, 14, 9, 21],
         "stained": [12, 9, 15, 7, 11],
         "brightfield": [10, 6]}


def assert_whole_groups(splits):
    sides = splits.groupby("group")["split"].nunique()
    assert (sides == 1).all(), f"groups on two sides: {list(sides[sides > 1].index)}"


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def test_features_match_the_images(synthetic_samples):
    features = image_features(synthetic_samples)
    assert list(features["image_id"]) == sorted(s.image_id for s in synthetic_samples)
    by_id = features.set_index("image_id")
    for sample in synthetic_samples:
        row = by_id.loc[sample.image_id]
        rgb = sample.image.astype(np.float64)
        grey = rgb.mean(axis=-1)
        assert row["modality"] == modality_of(sample.image)
        assert (row["height"], row["width"]) == sample.labels.shape
        assert row["mean_g"] == pytest.approx(rgb[..., 1].mean())
        assert row["std_b"] == pytest.approx(rgb[..., 2].std())
        assert row["grey_p50"] == pytest.approx(np.median(grey))
        assert row["share_r"] + row["share_g"] + row["share_b"] == pytest.approx(1.0)
        assert sum(row[f"grey_bin{b}"] for b in range(4)) == pytest.approx(1.0)
        ids, areas = np.unique(sample.labels[sample.labels > 0], return_counts=True)
        assert row["n_nuclei"] == ids.size
        assert row["area_median"] == pytest.approx(np.median(areas))
        assert row["coverage"] == pytest.approx((sample.labels > 0).mean())
        # fluorescence nuclei are brighter than their background, the others darker
        assert (row["nucleus_contrast"] > 0) == (row["modality"] == "fluorescence")


def test_features_are_deterministic_and_order_free(synthetic_samples):
    first = image_features(synthetic_samples)
    again = image_features(list(reversed(synthetic_samples)))
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(ValueError, match="no samples"):
        image_features([])


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


def test_groups_recover_planted_batches():
    batches = [(20, "fluorescence", (256, 256), 3.0, 150.0),  # dim camera, small nuclei
               (15, "fluorescence", (256, 256), 30.0, 150.0),  # other camera offset
               (12, "fluorescence", (256, 256), 3.0, 1500.0),  # higher magnification
               (10, "stained", (256, 320), 180.0, 400.0)]
    features = made_up_features(batches)
    groups = acquisition_groups(features)
    batch = features.set_index("image_id").index.str[:3]
    found = pd.crosstab(batch, groups.loc[features["image_id"]].to_numpy())
    # one group per planted batch, and every batch wholly in its group
    assert found.shape == (4, 4)
    assert ((found > 0).sum(axis=1) == 1).all() and ((found > 0).sum(axis=0) == 1).all()
    # names: modality-size-rank, rank 1 the biggest group of its block
    assert groups[features["image_id"][0]] == "fluorescence-256x256-1"
    assert set(groups) >= {"stained-256x320-1", "fluorescence-256x256-3"}


def test_groups_never_mix_modalities_or_sizes():
    rng = np.random.default_rng(1)
    batches = [(int(rng.integers(1, 12)), modality, size, float(rng.uniform(2, 200)),
                float(rng.uniform(50, 2000)))
               for modality in ("fluorescence", "brightfield", "stained")
               for size in ((256, 256), (360, 360), (520, 696))]
    features = made_up_features(batches, seed=2)
    # a huge threshold merges everything it is allowed to merge: exactly the blocks
    for threshold in (0.5, 4.3, 1e6):
        groups = acquisition_groups(features, threshold=threshold)
        table = features.assign(group=groups.loc[features["image_id"]].to_numpy())
        per_group = table.groupby("group")[["modality", "height", "width"]].nunique()
        assert (per_group == 1).all().all()
    blocks = features.groupby(["modality", "height", "width"]).ngroups
    assert groups.nunique() == blocks


def test_groups_on_synthetic_images(synthetic_samples):
    features = image_features(synthetic_samples)
    groups = acquisition_groups(features)
    assert set(groups.index) == set(features["image_id"])
    modalities = features.set_index("image_id")["modality"]
    for name, members in groups.groupby(groups):
        assert modalities[members.index].nunique() == 1
        assert name.startswith(modalities[members.index[0]] + "-64x64-")


def test_groups_do_not_depend_on_row_order():
    features = made_up_features([(25, "fluorescence", (256, 256), 5.0, 200.0),
                                 (18, "fluorescence", (256, 256), 8.0, 600.0),
                                 (9, "stained", (256, 320), 180.0, 300.0)], seed=4)
    groups = acquisition_groups(features, threshold=2.0)
    for seed in range(3):
        shuffled = features.sample(frac=1.0, random_state=seed)
        pd.testing.assert_series_equal(acquisition_groups(shuffled, threshold=2.0), groups)


def test_threshold_and_errors():
    features = made_up_features([(6, "fluorescence", (256, 256), 5.0, 200.0)])
    # a tiny threshold: every (distinct) image is its own group; a huge one: one group
    assert acquisition_groups(features, threshold=1e-9).nunique() == 6
    assert acquisition_groups(features, threshold=1e9).nunique() == 1
    with pytest.raises(ValueError, match="threshold"):
        acquisition_groups(features, threshold=0)
    with pytest.raises(ValueError, match="image_features"):
        acquisition_groups(features.drop(columns="grey_p01"))
    with pytest.raises(ValueError, match="more than once"):
        acquisition_groups(pd.concat([features, features.iloc[:1]]))


def test_clustering_matrix_units():
    features = made_up_features([(2, "fluorescence", (256, 256), 5.0, 200.0)])
    brighter = features.assign(grey_p50=features["grey_p50"] * np.e + (np.e - 1),
                               area_median=features["area_median"] * np.e)
    diff = clustering_matrix(brighter) - clustering_matrix(features)
    # ln(1 + p50) grows by exactly 1 when 1 + p50 grows e-fold; so does ln(area)
    np.testing.assert_allclose(diff["log_p50"], 1.0)
    np.testing.assert_allclose(diff["log_area"], 1.0)
    np.testing.assert_allclose(diff.drop(columns=["log_p50", "log_area"]), 0.0)


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def test_split_holds_out_whole_groups_per_modality():
    table, groups = made_up_split_table(SIZES)
    splits = group_split(table, groups, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert sorted(splits["image_id"]) == sorted(table["image_id"])
    assert list(splits["image_id"]) == sorted(splits["image_id"])
    assert_whole_groups(splits)
    for modality, sizes in SIZES.items():
        part = splits[splits["modality"] == modality]
        if len(sizes) >= 3:
            assert {"train", "val", "test"} <= set(part["split"]), modality
            assert (part["note"] == "").all()
        else:  # too few groups: all in training, and the split says why
            assert set(part["split"]) == {"train"}
            assert part["note"].str.contains("kept in train").all()


def test_split_fractions_are_approximately_met():
    table, groups = made_up_split_table(SIZES)
    for seed in range(5):
        splits = group_split(table, groups, 0.2, 0.1, seed=seed)
        summary = split_summary(splits).set_index(["modality", "split"])["fraction"]
        # fluorescence has many small groups: within 10% of each target (SPLIT_TOLERANCE)
        assert summary["fluorescence", "val"] == pytest.approx(0.2, rel=0.1)
        assert summary["fluorescence", "test"] == pytest.approx(0.1, rel=0.1)
        # stained has five lumpy groups: within one group of the target
        n_stained = sum(SIZES["stained"])
        for split, fraction in (("val", 0.2), ("test", 0.1)):
            assert abs(summary["stained", split] - fraction) * n_stained <= \
                max(SIZES["stained"])
        for modality in ("fluorescence", "stained", "brightfield", "all"):
            assert summary[modality].sum() == pytest.approx(1.0)


def test_split_is_deterministic_by_seed_and_order_free():
    table, groups = made_up_split_table(SIZES)
    first = group_split(table, groups, 0.15, 0.15, seed=7)
    shuffled_table, shuffled_groups = made_up_split_table(SIZES, seed=99)
    pd.testing.assert_frame_equal(group_split(shuffled_table, shuffled_groups, 0.15, 0.15, 7),
                                  first)
    others = [group_split(table, groups, 0.15, 0.15, seed=s) for s in range(1, 6)]
    assert any(not o["split"].equals(first["split"]) for o in others)


def test_split_with_one_held_out_split():
    table, groups = made_up_split_table({"fluorescence": [10, 20, 30], "stained": [5, 5]})
    splits = group_split(table, groups, val_fraction=0.0, test_fraction=0.2, seed=0)
    assert_whole_groups(splits)
    assert "val" not in set(splits["split"])
    # two groups are enough to hold one out when there is no validation split
    assert set(splits.loc[splits["modality"] == "stained", "split"]) == {"train", "test"}


def test_split_errors_say_what_to_do():
    table, groups = made_up_split_table(SIZES)
    for bad in (-0.1, 1.0, float("nan"), "0.2", None):
        with pytest.raises(ValueError, match="val_fraction"):
            group_split(table, groups, val_fraction=bad, test_fraction=0.1)
        with pytest.raises(ValueError, match="test_fraction"):
            group_split(table, groups, val_fraction=0.1, test_fraction=bad)
    with pytest.raises(ValueError, match="below 1"):
        group_split(table, groups, 0.6, 0.4)
    few_table, few_groups = made_up_split_table({"fluorescence": [10, 20], "stained": [4]})
    with pytest.raises(ValueError, match="too few groups.*threshold"):
        group_split(few_table, few_groups, 0.15, 0.15)
    with pytest.raises(ValueError, match="no group for 1 image"):
        group_split(table, groups.iloc[1:], 0.15, 0.15)
    with pytest.raises(ValueError, match="modality"):
        group_split(table.drop(columns="modality"), groups)
    with pytest.raises(ValueError, match="seed"):
        group_split(table, groups, 0.15, 0.15, seed=-1)


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------


def test_plot_groups_draws_every_group(synthetic_samples):
    features = image_features(synthetic_samples)
    groups = acquisition_groups(features)
    fig = plot_groups(features, groups)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = plot_groups(features, groups, samples=synthetic_samples)
    assert len(fig.axes) == 1 + groups.nunique()
    typical = typical_images(features, groups)
    assert all(groups[image_id] == name for name, image_id in typical.items())


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------


def test_groups_and_split_on_real_data(real_dsb_root):
    samples = load_dsb_folder(real_dsb_root, cache=True, progress=False)
    features = image_features(samples)
    groups = acquisition_groups(features)
    table = features.assign(group=groups.loc[features["image_id"]].to_numpy())
    per_group = table.groupby("group").agg(modality=("modality", "first"),
                                           height=("height", "first"), width=("width", "first"),
                                           images=("image_id", "size"))
    print(per_group.sort_values(["modality", "height", "width"]).to_string())
    assert (table.groupby("group")[["modality", "height", "width"]].nunique() == 1).all().all()
    # batch-like: more than one group per big block, but far fewer groups than images
    assert 10 <= len(per_group) <= 60
    splits = group_split(features, groups, 0.15, 0.15, seed=0)
    assert_whole_groups(splits)
    summary = split_summary(splits).set_index(["modality", "split"])
    print(summary.to_string())
    counts = per_group.groupby("modality").size()
    for modality, n_groups in counts.items():
        held_out = set(splits.loc[splits["modality"] == modality, "split"])
        assert held_out == ({"train", "val", "test"} if n_groups >= 3 else {"train"})
    for split in ("val", "test"):
        assert summary.loc[("all", split), "fraction"] == pytest.approx(0.15, abs=0.03)
