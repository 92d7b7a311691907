"""The reader on every real DSB 2018 training image (skips where the data is absent).

Slow the first time only: merging the 25,721 mask PNGs takes ~20-35 s on two cores; the merged
labels then go to the label cache under ``env.data_dir()/cache`` (git-ignored), and later
runs read the whole set in a few seconds. Nothing is written into the real data folder.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unet_lesson.data import dataset_table, load_dsb_folder, stratified_split
from unet_lesson.data.dsb import mask_files


@pytest.fixture(scope="module")
def real_samples(real_dsb_root):
    return load_dsb_folder(real_dsb_root, cache=True, progress=False)


def test_every_real_image_reads(real_dsb_root, real_samples):
    folders = sorted(p for p in real_dsb_root.iterdir() if p.is_dir())
    assert [s.image_id for s in real_samples] == [f.name for f in folders]
    for sample in real_samples:
        n_masks = len(list((sample.folder / "masks").glob("*.png")))
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3
        assert sample.image.shape[2] == 3
        assert sample.labels.dtype == np.int32
        assert sample.labels.shape == sample.image.shape[:2]
        # no nucleus disappears: ids are exactly 1..number of mask files
        counts = np.bincount(sample.labels.ravel(), minlength=n_masks + 1)
        assert counts.size == n_masks + 1 and (counts[1:] > 0).all(), sample.image_id


def test_overlapping_real_masks_follow_the_rule(real_samples):
    overlapping = [s for s in real_samples if s.n_contested > 0]
    assert overlapping, "the real set has images with overlapping masks"
    for sample in overlapping:
        masks = [np.asarray(Image.open(p)) > 0 for p in mask_files(sample.folder)]
        areas = [m.sum() for m in masks]
        claims = np.sum(masks, axis=0)
        assert (claims > 1).sum() == sample.n_contested
        for y, x in zip(*np.nonzero(claims > 1), strict=True):
            owners = [i for i, m in enumerate(masks) if m[y, x]]
            smallest = min(owners, key=lambda i: (areas[i], i))
            assert sample.labels[y, x] == smallest + 1
        for k, mask in enumerate(masks, start=1):
            kept = sample.labels == k
            assert kept.any() and not (kept & ~mask).any()
            # losing the contested pixels never splits a nucleus into more pieces
            assert ndimage.label(kept)[1] <= ndimage.label(mask)[1], (sample.image_id, k)


def test_real_table_and_splits(real_samples):
    table = dataset_table(real_samples)
    counts = table["modality"].value_counts().to_dict()
    print(f"real stage1_train modalities: {counts}")
    assert set(counts) == {"fluorescence", "brightfield", "stained"}
    coloured = np.array([not (np.array_equal(s.image[..., 0], s.image[..., 1])
                              and np.array_equal(s.image[..., 1], s.image[..., 2]))
                         for s in real_samples])
    # in this set the colour images are exactly the stained ones
    np.testing.assert_array_equal(coloured, (table["modality"] == "stained").to_numpy())
    n_masks = [len(mask_files(s.folder)) for s in real_samples]
    np.testing.assert_array_equal(table["n_nuclei"], n_masks)
    splits = stratified_split(table, val_fraction=0.2, seed=0)
    val = splits[splits["split"] == "val"]
    assert len(val) == round(0.2 * len(table))
    assert set(val["modality"]) == set(counts)  # every modality is validated
