"""The data set table, the modality rule and seeded stratified splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

from unet_lesson.data import (
    DSBSample,
    dataset_table,
    default_split_path,
    load_splits,
    make_splits,
    modality_of,
    save_splits,
    size_class,
    stratified_split,
    synthetic_sample,
)


def test_modality_rule_on_made_up_images():
    dark = np.full((20, 20, 3), 10, np.uint8)
    dark[5:10, 5:10] = 200
    assert modality_of(dark) == "fluorescence"
    bright_grey = np.full((20, 20, 3), 220, np.uint8)
    bright_grey[5:10, 5:10] = 90
    assert modality_of(bright_grey) == "brightfield"
    lilac = np.empty((20, 20, 3), np.uint8)
    lilac[:] = (179, 160, 207)
    lilac[5:10, 5:10] = (128, 71, 189)
    assert modality_of(lilac) == "stained"
    dark_colour = np.zeros((20, 20, 3), np.uint8)
    dark_colour[5:10, 5:10] = (200, 50, 50)
    assert modality_of(dark_colour) == "fluorescence"  # a dark background decides first
    barely = bright_grey.copy()
    barely[..., 0] += 4  # R up by d: mean |channel - grey| = (2d/3 + d/3 + d/3) / 3 = 4d/9
    assert modality_of(barely) == "brightfield"  # 1.78: not above the threshold 2
    barely[..., 0] += 1
    assert modality_of(barely) == "stained"
    assert modality_of(dark[..., 0]) == "fluorescence"  # (H, W) works too


def test_size_classes():
    assert size_class(256, 256) == "small"
    assert size_class(256, 390) == "small" and size_class(256, 391) == "medium"
    assert size_class(520, 696) == "medium"
    assert size_class(1024, 1024) == "large"


def test_table_values_match_regionprops():
    samples = []
    for i, modality in enumerate(("fluorescence", "brightfield", "stained")):
        image, labels = synthetic_sample(np.random.default_rng(i), modality, (96, 128))
        samples.append(DSBSample(f"id{i}", image, labels, folder=None))
    table = dataset_table(samples)
    assert list(table["image_id"]) == ["id0", "id1", "id2"]
    assert list(table["modality"]) == ["fluorescence", "brightfield", "stained"]
    for sample, row in zip(samples, table.itertuples(), strict=True):
        areas = np.array([r.area for r in regionprops(sample.labels)])
        assert (row.height, row.width) == (96, 128)
        assert row.n_nuclei == len(areas)
        assert row.area_mean == pytest.approx(areas.mean())
        assert row.area_median == pytest.approx(np.median(areas))
        assert (row.area_min, row.area_max) == (areas.min(), areas.max())
        assert row.coverage == pytest.approx(areas.sum() / (96 * 128))


def fake_table(n_per_stratum, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for (modality, size), n in n_per_stratum.items():
        for _ in range(n):
            rows.append({"image_id": rng.bytes(6).hex(), "modality": modality,
                         "size_class": size})
    return pd.DataFrame(rows)


STRATA = {("fluorescence", "small"): 41, ("fluorescence", "medium"): 17,
          ("brightfield", "large"): 3, ("stained", "small"): 12, ("stained", "large"): 1}


def test_split_is_disjoint_complete_and_stratified():
    table = fake_table(STRATA)
    splits = stratified_split(table, val_fraction=0.2, test_fraction=0.1, seed=0)
    assert sorted(splits["image_id"]) == sorted(table["image_id"])
    assert not splits["image_id"].duplicated().any()
    n = len(table)
    counts = splits["split"].value_counts()
    assert counts["val"] == round(0.2 * n) and counts["test"] == round(0.1 * n)
    for (modality, size), group in splits.groupby(["modality", "size_class"]):
        size_of = len(group)
        for name, fraction in (("val", 0.2), ("test", 0.1)):
            got = int((group["split"] == name).sum())
            assert np.floor(fraction * size_of) <= got <= np.ceil(fraction * size_of), \
                (modality, size, name, got, size_of)


def test_split_depends_on_the_seed_not_on_row_order():
    table = fake_table(STRATA)
    a = stratified_split(table, seed=1).set_index("image_id")["split"]
    shuffled = table.sample(frac=1.0, random_state=3)
    b = stratified_split(shuffled, seed=1).set_index("image_id")["split"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    c = stratified_split(table, seed=2).set_index("image_id")["split"]
    assert not a.sort_index().equals(c.sort_index())


def test_split_arguments_are_checked():
    table = fake_table(STRATA)
    with pytest.raises(ValueError, match="sum < 1"):
        stratified_split(table, val_fraction=0.6, test_fraction=0.4)
    with pytest.raises(ValueError, match="more than once"):
        stratified_split(pd.concat([table, table.iloc[:1]]))


def test_splits_are_saved_and_read_back(tmp_path, monkeypatch):
    table = fake_table(STRATA)
    path = tmp_path / "splits.csv"
    made = make_splits(table, path, val_fraction=0.25, seed=7)
    assert path.is_file()
    pd.testing.assert_frame_equal(load_splits(path), made)
    # a later call reads the file, whatever the arguments: the split never moves
    again = make_splits(table, path, val_fraction=0.5, seed=8)
    pd.testing.assert_frame_equal(again, made)
    with pytest.raises(ValueError, match=r"splits 74 images, but the data set has 73 .*delete"):
        make_splits(table.iloc[1:], path)
    bad = tmp_path / "bad.csv"
    save_splits(made.assign(split="holdout"), bad)
    with pytest.raises(ValueError, match="is not a splits file"):
        load_splits(bad)
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    default = default_split_path(tmp_path / "stage1_train", seed=3, val_fraction=0.2)
    assert default.parent == tmp_path / "data" / "splits"
    assert default.name.startswith("stage1_train-") and default.name.endswith(
        "-seed3-val0.2-test0.csv")
