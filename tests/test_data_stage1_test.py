"""stage1_test images paired with the solution CSV's labels (through rle.read_solution_csv)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from unet_lesson.data import (
    DSBDataError,
    load_dsb_folder,
    load_labelled,
    load_labelled_test_set,
    make_synthetic_dsb,
)
from unet_lesson.metrics import dsb_score
from unet_lesson.rle import rle_encode


def make_stage1_test(tmp_path, n=3):
    """A stage1_test-like folder (images only) and its solution CSV, from synthetic samples."""
    source = make_synthetic_dsb(tmp_path / "src", n_images=n, seed=9, image_size=48,
                                progress=False)
    truth = load_dsb_folder(source, cache=False, progress=False)
    root = tmp_path / "dsb2018" / "stage1_test"
    rows = []
    for s in truth:
        shutil.copytree(s.folder / "images", root / s.image_id / "images")
        for k in range(1, s.n_nuclei + 1):
            rows.append({"ImageId": s.image_id, "EncodedPixels": rle_encode(s.labels == k),
                         "Height": s.labels.shape[0], "Width": s.labels.shape[1],
                         "Usage": "Public"})
    pd.DataFrame(rows).to_csv(root.parent / "stage1_solution.csv", index=False)
    return root, truth


def test_labels_come_from_the_solution_csv(tmp_path):
    root, truth = make_stage1_test(tmp_path)
    samples = load_labelled(root)  # finds ../stage1_solution.csv by itself
    assert [s.image_id for s in samples] == [s.image_id for s in truth]
    for got, want in zip(samples, truth, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
        assert got.n_nuclei == want.n_nuclei
        assert dsb_score(want.labels, got.labels) == 1.0  # the same nuclei, pixel for pixel


def test_mismatches_are_named(tmp_path):
    root, truth = make_stage1_test(tmp_path)
    csv = root.parent / "stage1_solution.csv"
    shutil.rmtree(root / truth[0].image_id)
    with pytest.raises(DSBDataError, match=r"1 image\(s\) of stage1_solution.csv are missing"):
        load_labelled_test_set(root, csv)
    shutil.copytree(tmp_path / "src" / truth[0].image_id / "images",
                    root / "stranger" / "images")
    (root / "stranger" / "images" / f"{truth[0].image_id}.png").rename(
        root / "stranger" / "images" / "stranger.png")
    table = pd.read_csv(csv)
    table[table["ImageId"] != truth[0].image_id].to_csv(csv, index=False)
    with pytest.raises(DSBDataError, match="stranger.*no labels for this image"):
        load_labelled_test_set(root, csv)


def test_no_masks_and_no_csv_says_how_to_get_it(tmp_path):
    root, _ = make_stage1_test(tmp_path)
    (root.parent / "stage1_solution.csv").unlink()
    with pytest.raises(FileNotFoundError, match="python -m unet_lesson download"):
        load_labelled(root)
