"""The one place that reads the environment: fast mode, device, seeds, folders."""

from pathlib import Path

import numpy as np
import pytest
import torch

from unet_lesson import env


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_fast_mode_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("UNET_LESSON_FAST", value)
    assert env.fast_mode() is expected


def test_by_mode_picks_the_setting(monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    assert env.by_mode(fast=1, cpu=2, gpu=3) == 1
    monkeypatch.delenv("UNET_LESSON_FAST")
    assert env.by_mode(fast=1, cpu=2, gpu=3, device=torch.device("cpu")) == 2
    assert env.by_mode(fast=1, cpu=2, gpu=3, device=torch.device("cuda")) == 3


def test_device_can_be_forced_and_defaults_sensibly(monkeypatch):
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")
    assert env.pick_device() == torch.device("cpu")
    monkeypatch.delenv("UNET_LESSON_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    assert env.pick_device().type in {expected, "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            env.pick_device("cuda")


def test_seed_everything_repeats_every_generator():
    env.seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item())  # noqa: NPY002 (the legacy global generator)
    env.seed_everything(7)
    assert (np.random.rand(), torch.rand(1).item()) == a  # noqa: NPY002


def test_folders_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("UNET_LESSON_RUNS", str(tmp_path / "r"))
    assert env.data_dir() == tmp_path / "d"
    assert env.runs_dir() == tmp_path / "r"
    monkeypatch.delenv("UNET_LESSON_DATA")
    assert env.data_dir().name == "data" and isinstance(env.data_dir(), Path)


def test_setup_prints_mode_device_and_versions(capsys, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    device = env.setup(seed=3)
    out = capsys.readouterr().out
    assert isinstance(device, torch.device)
    for word in ("mode", "fast", "device", "torch", "numpy", "seed"):
        assert word in out


def test_progress_is_quiet_in_fast_mode(monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    bar = env.progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


def test_tqdm_disable_turns_bars_off(monkeypatch):
    monkeypatch.delenv("UNET_LESSON_FAST", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert env.progress(range(2)).disable


def test_describe_shows_repository_folders_relative(monkeypatch, tmp_path):
    monkeypatch.delenv("UNET_LESSON_DATA", raising=False)
    assert env.describe(torch.device("cpu"))["data dir"] == "<repository>/data"
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path))
    assert env.describe(torch.device("cpu"))["data dir"] == str(tmp_path)
