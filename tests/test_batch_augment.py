"""Batched augmentation on the device against the per-tile numpy reference (augment.py)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    elastic_deform_batch,
    flip_rotate_batch,
    grey_values_batch,
    symmetry_batch,
    warp_batch,
)
from scipy import ndimage, stats

from unet_lesson.batches import (
    augments_on_device,
    targets_on_cpu,
    three_class_target_batch,
    training_tiles,
)
from unet_lesson.data import Augment, TileDataset, augment, synthetic_sample
from unet_lesson.data.batch_augment import (
    BatchAugment,
    Draws,
    apply_grey_values,
    displacement_from_grid,
    draw_symmetries,
    elastic_displacement_batch,
    source_positions,
)
from unet_lesson.instances import three_class_target
from unet_lesson.losses import make_targets
from unet_lesson.networks import center_crop
from unet_lesson.toy import synthetic_nuclei


def windows(modalities, size, seed=0):
    """Images (B, 3, size, size) float32 in [0, 1] and labels (B, size, size) int32."""
    rng = np.random.default_rng(seed)
    pairs = [synthetic_sample(rng, m, (size, size)) for m in modalities]
    images = np.stack([np.moveaxis(im, -1, 0).astype(np.float32) / 255 for im, _ in pairs])
    labels = np.stack([lb for _, lb in pairs]).astype(np.int32)
    return torch.from_numpy(images), torch.from_numpy(labels)


def deep_inside(ids, steps=4):
    """Pixels at least ``steps`` px inside their nucleus (or the background): there the
    bicubic taps (2 px each way, stretched a little by the deformation) see one label only."""
    deep = np.zeros(ids.shape, bool)
    for k in np.unique(ids):
        deep |= ndimage.binary_erosion(ids == k, iterations=steps)
    return deep


def coded(labels):
    """An image (B, 1, H, W) that is its labels / 100: image and labels must move together."""
    return labels[:, None].float() / 100.0


# --------------------------------------------------------------------------------------------
# The displacement field
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(33, 33), (64, 48), (256, 256)])
def test_field_is_the_bicubic_interpolation_of_the_grid(shape):
    coarse = 10.0 * torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    field = displacement_from_grid(coarse, shape)
    assert field.shape == (5, 2) + shape and field.dtype == torch.float32
    for b in range(5):  # the numpy path interpolates one tile's grid with F.interpolate
        reference = F.interpolate(coarse[b : b + 1], size=shape, mode="bicubic",
                                  align_corners=True)[0]
        torch.testing.assert_close(field[b], reference, rtol=1e-5, atol=1e-5)
    # the corners of the grid sit on the corner pixels: the field passes through the draws
    torch.testing.assert_close(field[..., 0, 0], coarse[..., 0, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(field[..., -1, -1], coarse[..., -1, -1], rtol=1e-5, atol=1e-5)


def test_displacements_have_the_numpy_paths_distribution():
    """Grid values and interpolated values: mean 0, std sigma, and the same law (KS test)."""
    n, sigma, shape = 400, 10.0, (33, 33)  # grid points at pixels 0, 16 and 32
    rng = np.random.default_rng(12)
    numpy_fields = np.stack([augment.elastic_displacement(rng, shape, 3, sigma)
                             for _ in range(n)])  # (n, 2, 33, 33)
    torch_fields = elastic_displacement_batch(torch.Generator().manual_seed(12), n, shape, 3,
                                              sigma).numpy()
    assert torch_fields.shape == numpy_fields.shape
    for where in (np.s_[..., ::16, ::16], np.s_[..., 8, 24]):  # grid points, between them
        a, b = numpy_fields[where].ravel(), torch_fields[where].ravel()
        for values in (a, b):
            assert abs(values.mean()) < 4 * values.std() / np.sqrt(values.size)
        if where == np.s_[..., ::16, ::16]:  # the grid points are the draws themselves
            assert a.size == b.size == n * 2 * 9
            for values in (a, b):
                assert abs(values.std() - sigma) < 0.4
        assert stats.ks_2samp(a, b).pvalue > 0.01, "the two paths draw different fields"


def test_random_draws_move_to_the_batchs_device_and_are_seeded():
    one = elastic_displacement_batch(torch.Generator().manual_seed(3), 2, (16, 16), device="cpu")
    two = elastic_displacement_batch(torch.Generator().manual_seed(3), 2, (16, 16))
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    other = elastic_displacement_batch(torch.Generator().manual_seed(4), 2, (16, 16))
    assert not torch.allclose(one, other)


# --------------------------------------------------------------------------------------------
# The warp: the same displacement field gives the same pixels as augment.warp
# --------------------------------------------------------------------------------------------


MIXED = ["fluorescence", "stained", "brightfield", "stained"]  # grey and colour tiles


@pytest.mark.parametrize("sigma, margin, modalities", [
    (10.0, 40, MIXED), (10.0, 12, MIXED), (25.0, 0, MIXED), (3.0, 8, MIXED),
    (10.0, 12, ["fluorescence", "brightfield"] * 2), (10.0, 12, ["stained"] * 4)])
def test_warp_batch_equals_the_numpy_warp_tile_by_tile(sigma, margin, modalities):
    # a grey tile (R = G = B) is interpolated once: it must give the same pixels
    images, labels = windows(modalities, 96)
    tile = (96 - 2 * margin, 96 - 2 * margin)
    coarse = sigma * torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    displacement = displacement_from_grid(coarse, tile)
    warped, moved = warp_batch(images, labels, displacement, offset=(margin, margin))
    assert warped.shape == (4, 3) + tile and moved.shape == (4,) + tile
    assert moved.dtype == labels.dtype
    for b in range(4):
        ref_image, ref_labels = augment.warp(images[b].numpy(), labels[b].numpy(),
                                             displacement[b].numpy(), offset=(margin, margin))
        np.testing.assert_allclose(warped[b].numpy(), ref_image, atol=1e-5)
        np.testing.assert_array_equal(moved[b].numpy(), ref_labels)  # everywhere, borders too


def test_warp_batch_mirrors_outside_the_source_like_numpy():
    labels = torch.arange(2 * 40 * 40, dtype=torch.int32).reshape(2, 40, 40)  # one id a pixel
    images = coded(labels) / 100.0
    shift = torch.full((2, 2, 40, 40), -5.0)  # everything pulled 5 px up and left
    shift[1] = 4.0  # and the second tile 4 px down and right
    _, moved = warp_batch(images, labels, shift)
    np.testing.assert_array_equal(moved[0].numpy(),
                                  np.pad(labels[0].numpy(), 5, mode="reflect")[:40, :40])
    np.testing.assert_array_equal(moved[1].numpy(),
                                  np.pad(labels[1].numpy(), 4, mode="reflect")[8:, 8:])


def test_warp_batch_with_zero_displacement_is_the_central_crop():
    images, labels = windows(["stained", "fluorescence"], 64)
    warped, moved = warp_batch(images, labels, torch.zeros(2, 2, 48, 48), offset=(8, 8))
    torch.testing.assert_close(warped, images[..., 8:56, 8:56], rtol=0, atol=1e-5)
    torch.testing.assert_close(moved, labels[..., 8:56, 8:56], rtol=0, atol=0)


def test_elastic_deform_batch_keeps_ids_and_image_label_alignment():
    _, labels = windows(["fluorescence"] * 3, 96, seed=5)
    generator = torch.Generator().manual_seed(0)
    deformed, deformed_labels = elastic_deform_batch(coded(labels), labels, generator,
                                                     margin=16)
    assert deformed.shape == (3, 1, 64, 64) and deformed_labels.shape == (3, 64, 64)
    # the same draws again: where each output pixel sampled its window
    field = elastic_displacement_batch(torch.Generator().manual_seed(0), 3, (64, 64))
    positions = source_positions(field, (16, 16)).numpy()  # (3, 2, 64, 64)
    for b in range(3):
        ids, source = deformed_labels[b].numpy(), labels[b].numpy()
        assert set(np.unique(ids)) <= set(np.unique(source))
        # where the 4x4 bicubic taps all see one label, image and labels both show it
        top = np.floor(positions[b]).astype(int) - 1  # (2, 64, 64) first tap
        taps = [source[np.clip(top[0] + i, 0, 95), np.clip(top[1] + j, 0, 95)]
                for i in range(4) for j in range(4)]
        one = np.all([t == taps[0] for t in taps], axis=0)
        assert one.sum() > 2000
        np.testing.assert_array_equal(ids[one], taps[0][one])
        np.testing.assert_allclose(deformed[b, 0].numpy()[one] * 100, ids[one], atol=1e-3)


# --------------------------------------------------------------------------------------------
# Flips and rotations
# --------------------------------------------------------------------------------------------


def numpy_symmetry(array, turns, mirror):
    out = np.rot90(array, turns, axes=(-2, -1))
    return np.ascontiguousarray(out[..., ::-1] if mirror else out)


def test_each_symmetry_is_numpys_rot90_then_mirror():
    images, labels = windows(["stained"] * 8, 32)
    turns, mirror = torch.arange(8) % 4, torch.arange(8) >= 4
    out_images, out_labels = symmetry_batch(images, labels, turns, mirror)
    for b in range(8):
        np.testing.assert_array_equal(out_images[b].numpy(), numpy_symmetry(
            images[b].numpy(), int(turns[b]), bool(mirror[b])))
        np.testing.assert_array_equal(out_labels[b].numpy(), numpy_symmetry(
            labels[b].numpy(), int(turns[b]), bool(mirror[b])))
    with pytest.raises(ValueError, match="square"):
        symmetry_batch(images[..., :20], labels[..., :20], turns, mirror)


def test_flips_and_rotations_keep_labels_aligned_and_draw_all_eight_independently():
    _, labels = windows(["fluorescence"] * 4, 40)
    labels = labels.repeat(16, 1, 1)  # 64 tiles, 16 copies of each
    generator = torch.Generator().manual_seed(0)
    seen = []
    for _ in range(4):
        out_images, out_labels = flip_rotate_batch(coded(labels), labels, generator)
        torch.testing.assert_close(out_images, coded(out_labels), rtol=0, atol=0)
        for b in range(len(labels)):
            candidates = [numpy_symmetry(labels[b].numpy(), k % 4, k >= 4) for k in range(8)]
            seen.append(next(k for k, c in enumerate(candidates)
                             if np.array_equal(c, out_labels[b].numpy())))
        assert len(set(seen[-64:])) > 1, "tiles of one batch must get their own symmetry"
    counts = np.bincount(seen, minlength=8)
    assert (counts > 0).all(), "all eight symmetries of the square should be drawn"
    assert stats.chisquare(counts).pvalue > 0.01, f"symmetries not uniform: {counts}"
    # independence of neighbours in a batch: the symmetry of tile b says nothing of b + 1
    pairs = np.zeros((2, 2))
    for a, b in zip(seen[:-1], seen[1:], strict=True):
        pairs[a % 2, b % 2] += 1  # odd turn or not, for two neighbouring tiles
    assert stats.chi2_contingency(pairs).pvalue > 0.01


def test_non_square_tiles_turn_by_0_or_180_degrees_only():
    turns, _ = draw_symmetries(torch.Generator().manual_seed(0), 200, square=False)
    assert set(turns.tolist()) == {0, 2}
    turns, mirror = draw_symmetries(torch.Generator().manual_seed(0), 50, flips=False,
                                    rot90=False)
    assert not turns.any() and not mirror.any()


# --------------------------------------------------------------------------------------------
# Grey values
# --------------------------------------------------------------------------------------------


def test_grey_values_follow_the_numpy_formula_for_the_same_draws():
    images, _ = windows(["stained", "fluorescence", "brightfield"], 48)
    draws = []
    for seed in range(3):  # the draws of augment.grey_values(image, default_rng(seed))
        rng = np.random.default_rng(seed)
        draws.append((np.exp(rng.uniform(-0.3, 0.3)), rng.uniform(0.8, 1.2),
                      rng.uniform(-0.1, 0.1)))
    g, c, b = (torch.tensor([d[i] for d in draws], dtype=torch.float32) for i in range(3))
    out = apply_grey_values(images, g, c, b)
    for k in range(3):
        reference = augment.grey_values(images[k].numpy(), np.random.default_rng(k))
        np.testing.assert_allclose(out[k].numpy(), reference, atol=2e-6)
    assert not torch.allclose(out, images)
    same = apply_grey_values(images, torch.ones(3), torch.ones(3), torch.zeros(3))
    torch.testing.assert_close(same, images, rtol=0, atol=1e-6)


def test_grey_values_batch_stays_in_range_keeps_order_and_leaves_labels_alone():
    images, labels = windows(["stained"] * 4, 32)
    before = labels.clone()
    out = grey_values_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    for b in range(4):  # monotone per tile: the order of the grey values is kept
        order = torch.argsort(images[b].ravel(), stable=True)
        assert (torch.diff(out[b].ravel()[order]) >= -1e-6).all()
    out, out_labels = BatchAugment(Augment(elastic=False, flips=False, rot90=False),
                                   torch.Generator().manual_seed(0))(images, labels, 0)
    torch.testing.assert_close(out_labels, before, rtol=0, atol=0)
    assert not torch.allclose(out, images)


# --------------------------------------------------------------------------------------------
# BatchAugment: all together
# --------------------------------------------------------------------------------------------


def test_batch_augment_is_deform_then_symmetry_then_grey_values():
    margin = 16
    images, labels = windows(["stained", "fluorescence", "stained", "brightfield"], 96)
    run = BatchAugment(Augment(elastic_p=0.5), torch.Generator().manual_seed(2))
    draws = run.draw(4, (64, 64))
    draws = draws._replace(deform=torch.tensor([True, False, True, False]))
    out, out_labels = BatchAugment.apply(images, labels, margin, draws)
    assert out.shape == (4, 3, 64, 64) and out_labels.shape == (4, 64, 64)
    for b in range(4):
        image, ids = images[b].numpy(), labels[b].numpy()
        if draws.deform[b]:  # the numpy path, with the same displacement field
            field = displacement_from_grid(draws.coarse[b : b + 1], (64, 64))[0].numpy()
            image, ids = augment.warp(image, ids, field, offset=(margin, margin))
        else:
            inner = slice(margin, -margin)
            image, ids = image[:, inner, inner], ids[inner, inner]
        turns, mirror = int(draws.turns[b]), bool(draws.mirror[b])
        image, ids = numpy_symmetry(image, turns, mirror), numpy_symmetry(ids, turns, mirror)
        g, c, bright = (float(v[b]) for v in draws.grey)
        image = np.clip(image, 0, 1) ** g
        image = np.clip((image - image.mean()) * c + image.mean() + bright, 0, 1)
        np.testing.assert_allclose(out[b].numpy(), image, atol=1e-5)
        np.testing.assert_array_equal(out_labels[b].numpy(), ids)


@pytest.mark.parametrize("margin", [0, 5, 40])
def test_batch_augment_keeps_ids_alignment_and_shapes(margin):
    _, labels = windows(["fluorescence"] * 3, 64 + 2 * margin, seed=1)
    run = BatchAugment(Augment(grey=False), torch.Generator().manual_seed(0))
    out, out_labels = run(coded(labels), labels, margin)
    assert out.shape == (3, 1, 64, 64) and out_labels.shape == (3, 64, 64)
    assert out_labels.dtype == labels.dtype
    for b in range(3):
        ids = out_labels[b].numpy()
        assert set(np.unique(ids)) <= set(np.unique(labels[b].numpy()))
        deep = deep_inside(ids)
        np.testing.assert_allclose(out[b, 0].numpy()[deep] * 100, ids[deep], atol=1e-3)


def test_batch_augment_is_deterministic_for_a_seed():
    images, labels = windows(["stained", "fluorescence"], 80)

    def run(seed):
        return BatchAugment(Augment(), torch.Generator().manual_seed(seed))(images, labels, 8)

    (a, a_labels), (b, b_labels), (c, _) = run(0), run(0), run(1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a_labels, b_labels, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_elastic_p_deforms_a_random_subset_the_others_get_the_central_crop():
    _, labels = windows(["fluorescence"] * 4, 72)
    labels = labels.repeat(8, 1, 1)  # 32 tiles
    run = BatchAugment(Augment(elastic_p=0.5, flips=False, rot90=False, grey=False),
                       torch.Generator().manual_seed(0))
    _, out_labels = run(coded(labels), labels, 8)
    crops = labels[:, 8:-8, 8:-8]
    plain = [bool(torch.equal(out_labels[b], crops[b])) for b in range(32)]
    assert 4 < sum(plain) < 28, "about half of the tiles should be deformed"
    none = BatchAugment(Augment(elastic_p=0.0, grey=False), torch.Generator().manual_seed(0))
    out, out_labels = none(coded(labels), labels, 8)
    torch.testing.assert_close(out, coded(out_labels), rtol=0, atol=0)  # exact moves only
    assert all(any(torch.equal(out_labels[b], torch.from_numpy(numpy_symmetry(
        crops[b].numpy(), k % 4, k >= 4))) for k in range(8)) for b in range(32))


def test_batch_augment_says_what_it_wants():
    images, labels = windows(["fluorescence"], 32)
    run = BatchAugment()
    with pytest.raises(ValueError, match="margin"):
        run(images, labels, 16)
    with pytest.raises(ValueError, match=r"labels \(B, s, s\)"):
        run(images, labels[:, :-1], 4)
    with pytest.raises(TypeError, match="integer"):
        run(images, labels.float(), 4)


# --------------------------------------------------------------------------------------------
# Targets after the deformation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("border_width", [1, 2, 3])
def test_three_class_target_batch_equals_the_numpy_target(border_width):
    # touching nuclei in clusters, crossing the image edge; a non-square size
    tiles = [synthetic_nuclei((70, 90), 25, seed=seed, cluster_size=4) for seed in range(4)]
    assert all((t[0] > 0).any() or (t[:, 0] > 0).any() for t in tiles)  # nuclei on the edge
    labels = torch.from_numpy(np.stack(tiles))
    target = three_class_target_batch(labels, border_width)
    assert target.dtype == torch.int64 and target.shape == labels.shape
    for b, tile in enumerate(tiles):
        np.testing.assert_array_equal(target[b].numpy(), three_class_target(tile, border_width))


def test_three_class_target_batch_on_tiny_and_int64_labels():
    rng = np.random.default_rng(0)
    for shape in [(2, 3), (1, 5), (4, 4)]:  # smaller than the disk: mirrored again and again
        tiles = rng.integers(0, 3, size=(3,) + shape)
        target = three_class_target_batch(torch.from_numpy(tiles), 3)
        for b in range(3):
            np.testing.assert_array_equal(target[b].numpy(), three_class_target(tiles[b], 3))


def test_targets_on_cpu_equal_make_targets_per_tile():
    labels = torch.from_numpy(np.stack([synthetic_nuclei((48, 48), 8, seed=s)
                                        for s in range(3)]))
    out = targets_on_cpu(labels, partial(make_targets, target="binary", loss="weighted_ce",
                                         w0=10.0, sigma=5.0))
    assert out["weight"].dtype == torch.float32 and out["target"].dtype == torch.int64
    for b in range(3):
        ref = make_targets(labels[b].numpy(), target="binary", loss="weighted_ce", w0=10.0,
                           sigma=5.0)
        np.testing.assert_array_equal(out["target"][b].numpy(), ref["target"])
        np.testing.assert_array_equal(out["weight"][b].numpy(), ref["weight"])
    three = targets_on_cpu(labels, partial(make_targets, target="three_class", loss="ce",
                                           w0=10.0, sigma=5.0))
    torch.testing.assert_close(three["target"], three_class_target_batch(labels))


def test_with_the_weight_map_the_workers_augment_and_make_the_targets():
    """augment_on_device with the paper's weighted loss: the weight maps (distance transforms,
    no device version) are made per tile where the DataLoader's workers run, after the tile
    is augmented there; the three-class target keeps the device path."""
    from tiny import tiny_config

    samples = [synthetic_sample(np.random.default_rng(s), shape=(64, 64)) for s in range(2)]
    paper = tiny_config("paper", padding="same", augment_on_device=True, tile_size=32)
    practical = tiny_config("practical", augment_on_device=True, tile_size=32)
    assert not augments_on_device(paper) and augments_on_device(practical)
    item = training_tiles(samples, paper)[0]
    assert {"image", "labels", "target", "weight"} <= set(item)
    assert item["image"].shape[-1] == 32 and item["weight"].shape == (32, 32)
    ref = make_targets(item["labels"].numpy(), target="binary", loss="weighted_ce",
                       w0=paper.w0, sigma=paper.sigma)
    np.testing.assert_array_equal(item["weight"].numpy(), ref["weight"])
    window = training_tiles(samples, practical)[0]  # a plain window, with the margin
    assert set(window) == {"image", "labels"} and window["image"].shape[-1] > 32


# --------------------------------------------------------------------------------------------
# The DataLoader side and the valid-padding geometry
# --------------------------------------------------------------------------------------------


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    return [synthetic_sample(rng, "fluorescence", shape) for shape in [(100, 120), (64, 64)]]


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_windows_are_tiledatasets_crops_with_a_margin(samples, padding):
    tiles = TileDataset(samples, out_size=36, padding=padding, depth=2, tiles_per_image=3)
    plain = TileDataset(samples, out_size=36, padding=padding, depth=2, margin=0,
                          tiles_per_image=3)
    wide = TileDataset(samples, out_size=36, padding=padding, depth=2, margin=10,
                         tiles_per_image=3)
    assert len(plain) == len(tiles) and (wide.in_size, wide.out_size) == (tiles.in_size,
                                                                         tiles.out_size)
    for index in range(len(tiles)):
        item, window = tiles[index], wide[index]
        size = tiles.in_size + 20
        assert window["image"].shape == (3, size, size) and window["labels"].shape == (size,
                                                                                      size)
        torch.testing.assert_close(plain[index]["image"], item["image"], rtol=0, atol=0)
        torch.testing.assert_close(window["image"][:, 10:-10, 10:-10], item["image"], rtol=0,
                                   atol=0)
        labels_out = center_crop(window["labels"][10:-10, 10:-10], tiles.out_size,
                                 tiles.out_size)
        torch.testing.assert_close(labels_out.long(), item["labels"], rtol=0, atol=0)


def test_valid_padding_windows_keep_image_and_labels_aligned_after_augmentation(samples):
    """in_size + 2 margin windows, augmented; labels cropped to the output size after."""
    margin = Augment().margin()
    windows_ = TileDataset(samples, out_size=36, padding="valid", depth=2, margin=margin,
                             tiles_per_image=2)
    assert windows_.in_size > windows_.out_size  # context around the output
    batch = torch.utils.data.default_collate([windows_[i] for i in range(len(windows_))])
    labels = batch["labels"]
    run = BatchAugment(Augment(grey=False), torch.Generator().manual_seed(0))
    out, out_labels = run(coded(labels), labels, margin)
    assert out.shape[-1] == windows_.in_size and out_labels.shape[-1] == windows_.in_size
    target = center_crop(three_class_target_batch(out_labels), windows_.out_size,
                         windows_.out_size)
    image_out = center_crop(out, windows_.out_size, windows_.out_size)[:, 0]  # (B, out, out)
    labels_out = center_crop(out_labels, windows_.out_size, windows_.out_size)
    assert target.shape == labels_out.shape == (len(windows_), 36, 36)
    np.testing.assert_array_equal((target > 0).numpy(), (labels_out > 0).numpy())
    for b in range(len(windows_)):
        ids = labels_out[b].numpy()
        deep = deep_inside(ids)
        np.testing.assert_allclose(image_out[b].numpy()[deep] * 100, ids[deep], atol=1e-3)


def test_source_positions_and_draws_are_plain_records():
    positions = source_positions(torch.zeros(1, 2, 3, 4), offset=(2, 5))
    rows, cols = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    np.testing.assert_array_equal(positions[0, 0].numpy(), rows + 2)
    np.testing.assert_array_equal(positions[0, 1].numpy(), cols + 5)
    draws = BatchAugment(Augment(elastic=False, grey=False)).draw(3, (8, 8))
    assert isinstance(draws, Draws) and draws.coarse is None and draws.grey is None
    assert not draws.deform.any()
