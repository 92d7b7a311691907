"""The DSB reader: image formats, mask merging (the overlap rule), errors, the label cache."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from unet_lesson.data import (
    DSBDataError,
    dsb,
    load_dsb_folder,
    merge_masks,
    read_dsb_folder,
    read_dsb_image,
    read_dsb_sample,
    read_image,
    to_input,
)
from unet_lesson.data import cache as label_cache


def write_sample(root, image_id, image, labels, mode=None):
    """A sample in the competition layout: the image and one 0/255 PNG per label id."""
    folder = root / image_id
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.fromarray(image, mode=mode).save(folder / "images" / f"{image_id}.png")
    for k in range(1, int(labels.max()) + 1):
        Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(
            folder / "masks" / f"m{k:03d}.png")
    return folder


def disc_labels(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


@pytest.fixture
def rgb_image():
    return np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def test_read_image_handles_every_png_kind(tmp_path, rgb_image):
    grey = rgb_image[..., 0]
    cases = {
        "rgba": (np.dstack([rgb_image, np.full(grey.shape, 255, np.uint8)]), rgb_image),
        "rgb": (rgb_image, rgb_image),
        "grey": (grey, np.repeat(grey[..., None], 3, -1)),
        "grey_alpha": (np.dstack([grey, np.full(grey.shape, 255, np.uint8)]),
                       np.repeat(grey[..., None], 3, -1)),
    }
    for name, (stored, expected) in cases.items():
        Image.fromarray(stored).save(tmp_path / f"{name}.png")
        out = read_image(tmp_path / f"{name}.png")
        assert out.dtype == np.uint8 and out.shape == (40, 50, 3), name
        np.testing.assert_array_equal(out, expected, err_msg=name)
    # a palette image reads as its colours
    Image.fromarray(rgb_image).convert("P").save(tmp_path / "palette.png")
    palette = Image.open(tmp_path / "palette.png").convert("RGB")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), np.asarray(palette))


def test_16_bit_images_are_stretched_to_uint8(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[..., 0], np.round(values * 255.0 / 4000).astype(np.uint8))


def test_to_input_is_the_image_over_255_channels_first(rgb_image):
    x = to_input(rgb_image)
    assert x.dtype == np.float32 and x.shape == (3, 40, 50)
    np.testing.assert_allclose(x, np.moveaxis(rgb_image, -1, 0) / 255.0, rtol=1e-6)
    grey = to_input(rgb_image, channels=1)
    np.testing.assert_allclose(grey[0], rgb_image.mean(-1) / 255.0, rtol=1e-5)
    assert to_input(rgb_image[..., 0]).shape == (3, 40, 50)
    with pytest.raises(TypeError, match="uint8"):
        to_input(rgb_image.astype(np.float32))
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        to_input(rgb_image, channels=2)


# --------------------------------------------------------------------------------------------
# Merging masks
# --------------------------------------------------------------------------------------------


def brute_force_merge(masks):
    """Per pixel: the smallest mask claiming it (ties: the first)."""
    areas = [m.sum() for m in masks]
    labels = np.zeros(masks[0].shape, dtype=np.int32)
    for y, x in np.ndindex(labels.shape):
        claims = [i for i, m in enumerate(masks) if m[y, x]]
        if claims:
            labels[y, x] = 1 + min(claims, key=lambda i: (areas[i], i))
    return labels


def test_merge_gives_contested_pixels_to_the_smaller_nucleus():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:30, :30]
    masks = []
    for _ in range(7):
        cy, cx, r = rng.uniform(5, 25), rng.uniform(5, 25), rng.uniform(3, 7)
        masks.append((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2)
    labels, n_contested = merge_masks(masks, (30, 30))
    np.testing.assert_array_equal(labels, brute_force_merge(masks))
    assert n_contested == int((np.sum(masks, axis=0) > 1).sum()) > 0
    # flat pixel indices give the same result as boolean masks
    flat, _ = merge_masks([np.flatnonzero(m) for m in masks], (30, 30))
    np.testing.assert_array_equal(flat, labels)


def test_equal_sized_overlap_goes_to_the_first_mask():
    a = np.zeros((5, 5), bool)
    a[1:3, 1:3] = True
    b = np.zeros((5, 5), bool)
    b[2:4, 2:4] = True
    labels, n = merge_masks([a, b], (5, 5))
    assert labels[2, 2] == 1 and n == 1
    assert (labels == 2).sum() == 3


def test_a_nucleus_that_would_vanish_is_an_error_naming_it():
    big = np.zeros((6, 6), bool)
    big[1:5, 1:5] = True
    left, right = big.copy(), big.copy()
    left[:, 3:] = False
    right[:, :3] = False
    right[1:5, 2] = True  # left and right overlap and together cover `big`
    with pytest.raises(DSBDataError, match=r"lie entirely under smaller masks.*big\.png"):
        merge_masks([big, left, right], (6, 6), names=["big.png", "left.png", "right.png"])
    with pytest.raises(DSBDataError, match="copy.png"):  # an exact duplicate
        merge_masks([left, left], (6, 6), names=["orig.png", "copy.png"])


# --------------------------------------------------------------------------------------------
# Samples and folders
# --------------------------------------------------------------------------------------------


def test_read_sample_round_trips_the_labels(tmp_path, rgb_image):
    labels = disc_labels((40, 50), [(10, 10), (20, 30), (30, 12)], 5)
    folder = write_sample(tmp_path, "abc", np.dstack([rgb_image, np.full((40, 50), 255,
                                                                          np.uint8)]), labels)
    image, merged = read_dsb_sample(folder)
    assert image.dtype == np.uint8 and image.shape == (40, 50, 3)
    np.testing.assert_array_equal(image, rgb_image)
    assert merged.dtype == np.int32
    np.testing.assert_array_equal(merged, labels)
    np.testing.assert_array_equal(read_dsb_image(folder), rgb_image)


@pytest.mark.parametrize("problem", ["wrong size", "empty", "no image", "unreadable", "no masks"])
def test_bad_samples_raise_an_error_naming_the_file(tmp_path, rgb_image, problem):
    labels = disc_labels((40, 50), [(10, 10), (25, 30)], 5)
    folder = write_sample(tmp_path, "bad", rgb_image, labels)
    mask = folder / "masks" / "m002.png"
    if problem == "wrong size":
        Image.fromarray(np.zeros((40, 49), np.uint8) + 255).save(mask)
        expected = r"m002\.png: mask has size 40x49 but its image has size 40x50"
    elif problem == "empty":
        Image.fromarray(np.zeros((40, 50), np.uint8)).save(mask)
        expected = r"m002\.png: empty mask"
    elif problem == "no image":
        (folder / "images" / "bad.png").unlink()
        expected = r"images/bad\.png: missing image file"
    elif problem == "unreadable":
        mask.write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
        expected = r"m002\.png: unreadable PNG"
    else:
        for p in (folder / "masks").iterdir():
            p.unlink()
        (folder / "masks").rmdir()
        expected = "no masks/ folder"
    with pytest.raises(DSBDataError, match=expected) as info:
        read_dsb_sample(folder)
    assert info.value.path.name in {"m002.png", "bad.png", "masks"}


def test_skip_mode_reports_bad_samples_and_keeps_the_good(tmp_path, rgb_image):
    labels = disc_labels((40, 50), [(10, 10)], 4)
    for name in ("a", "b", "c"):
        write_sample(tmp_path, name, rgb_image, labels)
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "b" / "masks" / "m001.png")
    with pytest.raises(DSBDataError, match="empty mask"):
        load_dsb_folder(tmp_path, cache=False)
    skipped = []
    with pytest.warns(UserWarning, match="skipped sample b"):
        samples = load_dsb_folder(tmp_path, cache=False, on_error="skip", skipped=skipped)
    assert [s.image_id for s in samples] == ["a", "c"]
    assert len(skipped) == 1 and skipped[0].path == tmp_path / "b" / "masks" / "m001.png"
    with pytest.raises(ValueError, match="on_error must be"):
        next(read_dsb_folder(tmp_path, on_error="ignore"))


def test_folder_listing_ids_and_missing_roots(tmp_path, rgb_image):
    labels = disc_labels((40, 50), [(10, 10)], 4)
    for name in ("b", "a"):
        write_sample(tmp_path, name, rgb_image, labels)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "notes.txt").write_text("not a sample")
    assert [s.image_id for s in load_dsb_folder(tmp_path, cache=False)] == ["a", "b"]
    assert [s.image_id for s in load_dsb_folder(tmp_path, ids=["b"], cache=False)] == ["b"]
    with pytest.raises(FileNotFoundError, match=r"no sample folder for the ids \['zz'\]"):
        load_dsb_folder(tmp_path, ids=["zz"])
    with pytest.raises(FileNotFoundError, match="download_dsb2018"):
        load_dsb_folder(tmp_path / "absent")


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def tree(path):
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


@pytest.fixture
def small_set(tmp_path, rgb_image):
    source = tmp_path / "stage1_train"
    for i, centres in enumerate([[(10, 10), (25, 30)], [(20, 20)], [(8, 8), (30, 40), (12, 40)]]):
        write_sample(source, f"img{i}", rgb_image, disc_labels((40, 50), centres, 5))
    return source


def test_cache_lives_outside_the_source_and_is_used(small_set, tmp_path, monkeypatch):
    before = tree(small_set)
    cache = tmp_path / "cache"
    first = load_dsb_folder(small_set, cache=cache)
    assert tree(small_set) == before, "the reader wrote into the source folder"
    entries = sorted(p.name for p in label_cache.cache_folder(small_set, cache).iterdir())
    assert entries == ["img0.npz", "img1.npz", "img2.npz"]

    def no_mask_reading(*args, **kwargs):
        raise AssertionError("a cached read must not decode mask PNGs")

    monkeypatch.setattr(dsb, "read_mask", no_mask_reading)
    second = load_dsb_folder(small_set, cache=cache)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.labels.dtype == np.int32


def test_cache_is_invalidated_when_a_source_file_changes(small_set, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    load_dsb_folder(small_set, cache=cache)
    mask = small_set / "img1" / "masks" / "m001.png"
    labels = np.zeros((40, 50), np.uint8)
    labels[2:9, 3:7] = 255
    Image.fromarray(labels).save(mask)
    stat = mask.stat()
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = []
    original = dsb.read_mask
    monkeypatch.setattr(dsb, "read_mask", lambda *a: calls.append(a[0]) or original(*a))
    sample = load_dsb_folder(small_set, ids=["img1"], cache=cache)[0]
    assert calls == [mask]
    np.testing.assert_array_equal(sample.labels, labels // 255)
    # a corrupt entry is a miss, and gets rewritten
    entry = label_cache.cache_folder(small_set, cache) / "img0.npz"
    entry.write_bytes(b"garbage")
    again = load_dsb_folder(small_set, ids=["img0"], cache=cache)[0]
    assert again.n_nuclei == 2
    assert label_cache.load_labels(entry, label_cache.fingerprint(
        small_set / "img0" / "images" / "img0.png",
        sorted((small_set / "img0" / "masks").iterdir()))) is not None
    assert not list(label_cache.cache_folder(small_set, cache).glob("*.tmp"))


def test_default_cache_goes_under_the_data_dir(small_set, tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    load_dsb_folder(small_set)
    folders = list((tmp_path / "data" / "cache" / "labels").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("stage1_train-")
    assert folders[0] == label_cache.cache_folder(small_set)


def test_an_unwritable_cache_warns_and_reading_goes_on(small_set, tmp_path):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = load_dsb_folder(small_set, cache=blocker)
    assert len(samples) == 3
    assert any("could not write the label cache" in str(w.message) for w in caught)
