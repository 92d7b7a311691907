"""The synthetic generator: layout, determinism, safety of concurrent generation, modalities."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unet_lesson.course.datasets import find_or_make_dataset
from unet_lesson.data import (
    MODALITIES,
    load_dsb_folder,
    make_synthetic_dsb,
    modality_of,
    read_synthetic_manifest,
    synthetic,
    synthetic_sample,
)

SMALL = {"n_images": 6, "seed": 3, "image_size": 96}


def digest(root):
    """Hash of every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return make_synthetic_dsb(tmp_path_factory.mktemp("syn") / "set", **SMALL)


def test_layout_is_the_competition_layout(small_set):
    manifest = read_synthetic_manifest(small_set)
    ids = [im["image_id"] for im in manifest["images"]]
    assert sorted(p.name for p in small_set.iterdir() if p.is_dir()) == sorted(ids)
    assert len(ids) == SMALL["n_images"]
    for entry in manifest["images"]:
        folder = small_set / entry["image_id"]
        assert [p.name for p in (folder / "images").iterdir()] == [f"{folder.name}.png"]
        image = Image.open(folder / "images" / f"{folder.name}.png")
        assert image.mode == "RGBA" and image.size == (96, 96)  # like the real files
        assert np.all(np.asarray(image)[..., 3] == 255)
        masks = [np.asarray(Image.open(p)) for p in sorted((folder / "masks").iterdir())]
        assert len(masks) == entry["n_nuclei"] >= 1
        stack = np.stack(masks)
        assert stack.dtype == np.uint8 and set(np.unique(stack)) <= {0, 255}
        assert stack.max(axis=(1, 2)).min() == 255, "an empty mask"
        assert ((stack > 0).sum(axis=0) <= 1).all(), "synthetic masks must not overlap"
        for mask in stack:
            assert ndimage.label(mask > 0)[1] == 1, "each nucleus is one connected piece"
        assert entry["modality"] in MODALITIES


def test_reader_reads_what_the_generator_made(small_set, tmp_path):
    samples = load_dsb_folder(small_set, cache=tmp_path / "cache")
    for index, sample in enumerate(samples):
        modality, image, labels = synthetic.make_synthetic_image(SMALL["seed"], index,
                                                                 image_size=96)
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)
        assert sample.n_contested == 0


def test_same_arguments_same_bytes_and_other_seeds_differ(small_set, tmp_path):
    again = make_synthetic_dsb(tmp_path / "again", **SMALL)
    assert digest(again) == digest(small_set)
    other = make_synthetic_dsb(tmp_path / "other", **{**SMALL, "seed": 4})
    assert digest(other) != digest(small_set)
    # image i depends on (seed, i) only: a bigger set starts with the same images
    bigger = make_synthetic_dsb(tmp_path / "bigger", **{**SMALL, "n_images": 8})
    first = read_synthetic_manifest(small_set)["images"][0]["image_id"]
    assert digest(bigger / first) == digest(small_set / first)


def test_regenerating_is_a_no_op_and_other_arguments_need_overwrite(tmp_path):
    root = make_synthetic_dsb(tmp_path / "set", n_images=2, seed=0, image_size=64)
    stamp = (root / synthetic.MANIFEST).stat().st_mtime_ns
    assert make_synthetic_dsb(root, n_images=2, seed=0, image_size=64) == root
    assert (root / synthetic.MANIFEST).stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="already holds a synthetic set.*overwrite=True"):
        make_synthetic_dsb(root, n_images=3, seed=0, image_size=64)
    make_synthetic_dsb(root, n_images=3, seed=0, image_size=64, overwrite=True)
    assert read_synthetic_manifest(root)["args"]["n_images"] == 3
    assert len([p for p in root.iterdir() if p.is_dir()]) == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other files"):
        make_synthetic_dsb(tmp_path / "other", n_images=1, image_size=64)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary leftovers"


def test_concurrent_generation_is_safe(tmp_path):
    root = tmp_path / "shared"
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: make_synthetic_dsb(root, 3, 5, image_size=64),
                                range(3)))
    assert results == [root] * 3
    assert read_synthetic_manifest(root)["args"]["n_images"] == 3
    assert len(load_dsb_folder(root, cache=False)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["shared"], "temporary folders left behind"


def test_a_process_that_finishes_second_keeps_the_first_set(tmp_path, monkeypatch):
    root = tmp_path / "race"
    real_write = synthetic._write_sample
    state = {"raced": False}

    def racing_write(*args):
        if not state["raced"]:
            state["raced"] = True
            make_synthetic_dsb(root, 2, 0, image_size=64)  # "the other process" wins the race
        real_write(*args)

    monkeypatch.setattr(synthetic, "_write_sample", racing_write)
    assert make_synthetic_dsb(root, 2, 0, image_size=64) == root
    assert state["raced"]
    first_digest = digest(root)
    monkeypatch.undo()
    assert digest(make_synthetic_dsb(tmp_path / "fresh", 2, 0, image_size=64)) == first_digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "race"]


def test_modality_rule_agrees_with_the_generator(small_set):
    for entry in read_synthetic_manifest(small_set)["images"]:
        image = np.asarray(Image.open(small_set / entry["image_id"] / "images"
                                      / f"{entry['image_id']}.png"))[..., :3]
        assert modality_of(image) == entry["modality"]
    for modality in MODALITIES:
        for seed in range(4):
            image, labels = synthetic_sample(np.random.default_rng(seed), modality, (128, 160))
            assert modality_of(image) == modality
            assert labels.shape == (128, 160) and labels.dtype == np.int32


def test_nuclei_stand_out_the_right_way():
    """Fluorescence: nuclei brighter than the background; brightfield, stained: darker."""
    for modality, brighter in (("fluorescence", True), ("brightfield", False),
                               ("stained", False)):
        for seed in range(3):
            image, labels = synthetic_sample(np.random.default_rng(seed), modality)
            grey = image.mean(-1)
            inside, outside = np.median(grey[labels > 0]), np.median(grey[labels == 0])
            assert (inside > outside) == brighter, (modality, seed, inside, outside)
            ids = np.unique(labels)
            np.testing.assert_array_equal(ids, np.arange(ids.size))  # 0, 1..N consecutive


def test_sample_arguments_are_checked():
    with pytest.raises(ValueError, match="modality must be one of"):
        synthetic_sample(np.random.default_rng(0), "phase contrast")
    with pytest.raises(ValueError, match="at least 32x32"):
        synthetic_sample(np.random.default_rng(0), "stained", (16, 64))
    with pytest.raises(ValueError, match="n_images must be at least 1"):
        make_synthetic_dsb("unused", n_images=0)


def test_find_or_make_dataset_prefers_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path))
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    with pytest.raises(FileNotFoundError, match="download_dsb2018"):
        find_or_make_dataset("real")
    source = find_or_make_dataset(n_images=2, seed=1)
    assert source.kind == "synthetic" and source.n_images == 2
    assert source.root == tmp_path / "synthetic" / "n2-seed1"
    assert json.loads((source.root / synthetic.MANIFEST).read_text())["args"]["seed"] == 1
    real = tmp_path / "dsb2018" / "stage1_train"
    real.mkdir(parents=True)
    assert find_or_make_dataset(n_images=2, seed=1).kind == "synthetic"  # empty: not usable
    (real / "someid").mkdir()
    found = find_or_make_dataset()
    assert (found.kind, found.root, found.n_images) == ("real", real, 1)
    assert find_or_make_dataset("synthetic", n_images=2, seed=1).kind == "synthetic"
    assert str(find_or_make_dataset("synthetic", 2, 1)) == (
        "synthetic data: 2 images in synthetic/n2-seed1 of the data folder")
    with pytest.raises(ValueError, match="prefer must be"):
        find_or_make_dataset("kaggle")
