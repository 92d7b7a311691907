"""Training tiles: overlap-tile geometry, mirrored context, targets, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unet_lesson.data import (
    Augment,
    DSBSample,
    TileDataset,
    extract_window,
    mirror_indices,
    synthetic_sample,
    tile_sizes,
)
from unet_lesson.networks import UNet
from unet_lesson.sizes import is_legal_size, output_size


def coordinate_sample(height, width):
    """An image whose R, G channels are row, column (mod 256) and labels = 1 + flat index."""
    rows, cols = np.mgrid[:height, :width]
    image = np.stack([rows % 256, cols % 256, (rows + cols) % 256], -1).astype(np.uint8)
    labels = (1 + rows * width + cols).astype(np.int32)
    return image, labels


@pytest.mark.parametrize("out_size", [1, 100, 256, 388, 500])
def test_valid_tiles_are_legal_and_the_smallest(out_size):
    in_size, out = tile_sizes(out_size, "valid", depth=4)
    assert is_legal_size(in_size, 4, "valid")
    assert out == output_size(in_size, 4) >= out_size
    smaller = [s for s in range(in_size - 1, 0, -1) if is_legal_size(s, 4, "valid")]
    assert not smaller or output_size(smaller[0], 4) < out_size
    assert (in_size - out) % 2 == 0


def test_paper_tile_and_same_padding():
    assert tile_sizes(388, "valid") == (572, 388)
    assert tile_sizes(256, "valid") == (444, 260)
    assert tile_sizes(256, "same") == (256, 256)
    assert tile_sizes(30, "valid", depth=2)[1] == output_size(tile_sizes(30, "valid", 2)[0], 2)
    with pytest.raises(ValueError, match="padding must be"):
        tile_sizes(256, "full")


def test_mirror_indices_match_numpy_reflect_for_any_window():
    for size in (1, 2, 5, 17):
        base = np.arange(size)
        for start in range(-40, 40, 7):
            for length in (1, 9, 60):
                pad_before, pad_after = max(0, -start), max(0, start + length - size)
                padded = np.pad(base, (pad_before, pad_after), mode="reflect" if size > 1
                                else "edge")
                expected = padded[start + pad_before : start + pad_before + length]
                np.testing.assert_array_equal(mirror_indices(start, length, size), expected)


def test_extract_window_is_a_mirrored_crop():
    image, labels = coordinate_sample(30, 40)
    window = extract_window(image, -12, 25, 50, 30)
    padded = np.pad(image, ((12, 8), (0, 15), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(window, padded[:50, 25:55])
    np.testing.assert_array_equal(extract_window(labels, 3, 4, 10, 10), labels[3:13, 4:14])


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_plain_tiles_have_the_overlap_tile_geometry(padding):
    image, labels = coordinate_sample(300, 340)
    ds = TileDataset([(image, labels)], out_size=128, padding=padding, tiles_per_image=6,
                     seed=1)
    context = (ds.in_size - ds.out_size) // 2
    assert context == (92 if padding == "valid" else 0)
    for index in range(len(ds)):
        item = ds[index]
        _, top, left = ds.output_window(index)
        assert item["image"].shape == (3, ds.in_size, ds.in_size)
        assert item["image"].dtype == torch.float32
        assert set(item) == {"image", "labels"}
        assert item["labels"].shape == (ds.out_size, ds.out_size)
        assert item["labels"].dtype == torch.int64
        # the targets are the image's labels at the output window...
        np.testing.assert_array_equal(item["labels"].numpy(),
                                      labels[top : top + ds.out_size, left : left + ds.out_size])
        # ...and the input is that window plus `context` mirrored pixels on every side
        expected = extract_window(image, top - context, left - context, ds.in_size, ds.in_size)
        np.testing.assert_allclose(item["image"].numpy(),
                                   np.moveaxis(expected, -1, 0) / 255.0, rtol=1e-6)
        centre = item["image"][:2, context : context + ds.out_size, context : context + ds.out_size]
        rows = (item["labels"].numpy() - 1) // 340
        cols = (item["labels"].numpy() - 1) % 340
        np.testing.assert_allclose(centre[0].numpy() * 255, rows % 256, atol=1e-3)
        np.testing.assert_allclose(centre[1].numpy() * 255, cols % 256, atol=1e-3)


def test_the_network_output_lines_up_with_the_targets():
    image, labels = coordinate_sample(200, 220)
    ds = TileDataset([(image, labels)], out_size=60, padding="valid", depth=2, seed=0)
    net = UNet(in_channels=3, num_classes=2, base_channels=4, depth=2)
    with torch.no_grad():
        logits = net(ds[0]["image"][None])
    assert logits.shape[-2:] == ds[0]["labels"].shape


def test_small_images_are_mirrored_up_to_the_tile():
    image, labels = coordinate_sample(70, 90)
    ds = TileDataset([(image, labels)], out_size=128, padding="valid", seed=0)
    item = ds[0]
    _, top, left = ds.output_window(0)
    assert ds.out_size == 132
    assert (top, left) == (-31, -21)  # centred: (132 - 70) / 2 and (132 - 90) / 2 outside
    expected = extract_window(labels, top, left, ds.out_size, ds.out_size)
    np.testing.assert_array_equal(item["labels"].numpy(), expected)
    assert set(np.unique(expected)) <= set(np.unique(labels))


def test_target_fn_sees_the_input_labels_and_its_outputs_are_cropped():
    image, labels = coordinate_sample(200, 200)
    seen = []

    def target_fn(labels_in):
        seen.append(labels_in.shape)
        return {"weights": (2 * labels_in).astype(np.float32),
                "stack": np.stack([labels_in, -labels_in])}

    ds = TileDataset([(image, labels)], out_size=64, padding="valid", target_fn=target_fn)
    item = ds[0]
    assert seen == [(ds.in_size, ds.in_size)]
    np.testing.assert_array_equal(item["weights"].numpy(), 2 * item["labels"].numpy())
    assert item["stack"].shape == (2, ds.out_size, ds.out_size)
    np.testing.assert_array_equal(item["stack"][1].numpy(), -item["labels"].numpy())
    bad = TileDataset([(image, labels)], out_size=64, padding="valid",
                      target_fn=lambda lab: {"w": lab[:10]})
    with pytest.raises(ValueError, match="'w' has shape .*the input size"):
        bad[0]
    clash = TileDataset([(image, labels)], out_size=64, target_fn=lambda lab: {"labels": lab})
    with pytest.raises(ValueError, match="'labels', which the dataset sets"):
        clash[0]


@pytest.fixture(scope="module")
def samples():
    out = []
    for i, modality in enumerate(("fluorescence", "stained", "brightfield")):
        image, labels = synthetic_sample(np.random.default_rng(i), modality, (160, 200))
        out.append(DSBSample(f"id{i}", image, labels, folder=None))
    return out


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_augmented_tiles_keep_labels_intact(samples, padding):
    ds = TileDataset(samples, out_size=96, padding=padding, augment=True, tiles_per_image=4,
                     seed=3)
    for index in range(len(ds)):
        item = ds[index]
        ids = set(np.unique(item["labels"].numpy()))
        assert ids <= set(np.unique(samples[index % 3].labels))
        assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
        assert item["image"].shape == (3, ds.in_size, ds.in_size)


def test_items_are_deterministic_and_epochs_differ(samples):
    ds = TileDataset(samples, out_size=64, augment=Augment(), tiles_per_image=2, seed=0)
    a, b = ds[4], ds[4]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["image"], a["image"])
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    assert batches[0]["image"].shape == (3, 3, 64, 64)
    torch.testing.assert_close(batches[1]["labels"][1], ds[4]["labels"])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_grey_input_and_empty_sample_lists(samples):
    ds = TileDataset(samples, out_size=32, channels=1)
    assert ds[0]["image"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="at least one sample"):
        TileDataset([], out_size=32)


@pytest.mark.parametrize("mode", ["raw", "percentile", "invert"])
@pytest.mark.parametrize("channels", [1, 3])
def test_training_tiles_see_what_prediction_sees(samples, mode, channels):
    """The normalisation is measured on the whole image for tiles and for prediction alike."""
    from unet_lesson.data import to_network_input

    ds = TileDataset(samples, out_size=64, padding="same", tiles_per_image=2, seed=5,
                     input_mode=mode, channels=channels)
    for index in range(len(ds)):
        which, top, left = ds.output_window(index)
        whole = to_network_input(samples[which].image, mode, channels)  # what predict sees
        expected = whole[:, top : top + 64, left : left + 64]
        np.testing.assert_allclose(ds[index]["image"].numpy(), expected, rtol=0, atol=1e-6)


def test_bright_background_tiles_are_inverted(samples):
    stained = next(s for s in samples if s.image_id == "id1")
    ds = TileDataset([stained], out_size=96, input_mode="invert", tiles_per_image=3)
    for item in (ds[i] for i in range(len(ds))):
        image, labels = item["image"].numpy().mean(0), item["labels"].numpy()
        assert image[labels > 0].mean() > image[labels == 0].mean()  # nuclei bright now


def test_scale_augmentation_keeps_image_and_labels_aligned():
    """A zoomed tile still shows each nucleus where its label is (interior pixels exact)."""
    from scipy import ndimage

    labels = np.zeros((200, 240), dtype=np.int32)
    for k, (r, c) in enumerate(np.ndindex(5, 6), start=1):  # 20x20 squares on a 40-px grid
        labels[40 * r + 10 : 40 * r + 30, 40 * c + 10 : 40 * c + 30] = k
    image = np.repeat((labels * 8 % 256).astype(np.uint8)[..., None], 3, axis=-1)
    ds = TileDataset([(image, labels)], out_size=96, scale=(0.5, 2.0), tiles_per_image=12,
                     seed=2)
    areas = []
    for index in range(len(ds)):
        item = ds[index]
        x, lab = item["image"].numpy()[0], item["labels"].numpy()
        interior = (ndimage.minimum_filter(lab, 5) == ndimage.maximum_filter(lab, 5))
        np.testing.assert_allclose(x[interior], (lab[interior] * 8 % 256) / 255, atol=1e-5)
        inside = set(np.unique(lab)) - set(lab[0]) - set(lab[-1]) - set(lab[:, 0]) - set(
            lab[:, -1]) - {0}
        areas += [int((lab == k).sum()) for k in inside]
    assert min(areas) < 250 and max(areas) > 650  # 400 px squares, zoomed by 0.5 to 2


def test_colour_augmentation_changes_colours_only(samples):
    from unet_lesson.data import ColourAugment

    plain = TileDataset(samples, out_size=64, tiles_per_image=3, seed=4)
    coloured = TileDataset(samples, out_size=64, tiles_per_image=3, seed=4,
                           colour=ColourAugment(hed_p=1.0, hue_p=1.0, grey_p=0.5))
    changed = 0
    for index in range(len(plain)):
        a, b = plain[index], coloured[index]
        assert torch.equal(a["labels"], b["labels"])  # the same place, the same nuclei
        changed += not torch.allclose(a["image"], b["image"])
        assert 0.0 <= float(b["image"].min()) and float(b["image"].max()) <= 1.0
    assert changed >= len(plain) - 1
