"""The notebooks' data cell: the real data when it is there, downloaded when it is not, and a
clear error (never synthetic nuclei) when it cannot be had; CI's fast mode unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from unet_lesson.course import datasets
from unet_lesson.course.datasets import DataMissingError, course_data, find_or_make_dataset
from unet_lesson.course.download import DownloadError


def write_image(root, image_id):
    (root / image_id / "images").mkdir(parents=True)
    (root / image_id / "masks").mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(
        root / image_id / "images" / f"{image_id}.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    Image.fromarray(mask).save(root / image_id / "masks" / "m.png")


@pytest.fixture
def laptop(tmp_path, monkeypatch):
    """CPU mode (not CI's fast mode) with an empty data folder."""
    monkeypatch.delenv("UNET_LESSON_FAST", raising=False)
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


class FakeDownload:
    def __init__(self, error=None):
        self.error, self.calls = error, []

    def __call__(self, dest, parts):
        self.calls.append((dest, parts))
        if self.error is not None:
            raise self.error
        for image_id in ("x1", "x2"):
            write_image(dest / "stage1_train", image_id)
        return dest


def test_real_data_in_place_is_used_as_it_is(laptop):
    write_image(laptop / "dsb2018" / "stage1_train", "a1")
    fake = FakeDownload(error=AssertionError("must not download"))
    source = course_data(download=fake)
    assert (source.kind, source.n_images, fake.calls) == ("real", 1, [])
    # printed relative to the data folder (the setup cell prints that folder): the same text
    # on every machine
    assert str(source) == ("real data: 1 images in dsb2018/stage1_train of the data folder; a "
                           "folder of images in the DSB layout, of no release the course knows: "
                           "1 images")


def test_missing_data_is_downloaded(laptop, capsys):
    fake = FakeDownload()
    source = course_data(download=fake)
    assert fake.calls == [(laptop / "dsb2018", ("stage1_train",))]
    assert (source.kind, source.n_images) == ("real", 2)
    assert "downloading the course's release" in capsys.readouterr().out
    assert not (laptop / "synthetic").exists()


def test_offline_stops_with_the_one_command_to_run(laptop):
    fake = FakeDownload(error=DownloadError("could not download https://github.com/... "
                                            "(Temporary failure in name resolution)"))
    with pytest.raises(DataMissingError) as raised:
        course_data(download=fake)
    message = str(raised.value)
    assert f"not at {laptop / 'dsb2018' / 'stage1_train'}" in message
    assert "name resolution" in message  # why
    assert re.search(r"Run `python -m unet_lesson download`.*`!python -m unet_lesson "
                     r"download`.*UNET_LESSON_DATA.*Drive", message)
    assert not (laptop / "synthetic").exists(), "never a silent switch to synthetic nuclei"
    assert isinstance(raised.value, FileNotFoundError)


def test_too_little_space_is_said_before_downloading(laptop, monkeypatch):
    class Usage:
        free = 10 * 2**20

    monkeypatch.setattr(datasets.shutil, "disk_usage", lambda path: Usage())
    fake = FakeDownload()
    with pytest.raises(DataMissingError, match=r"has 10 MiB free; the download needs about "
                                               r"500 MiB.*python -m unet_lesson download"):
        course_data(download=fake)
    assert fake.calls == []


def test_fast_mode_keeps_the_synthetic_set(laptop, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    fake = FakeDownload(error=AssertionError("CI never downloads"))
    source = course_data(download=fake)
    assert source.kind == "synthetic" and fake.calls == []


def test_the_synthetic_fallback_is_said_aloud_outside_fast_mode(laptop, capsys):
    source = find_or_make_dataset(n_images=2, seed=1)
    assert source.kind == "synthetic"
    assert "no real data at" in capsys.readouterr().out
