"""Checkpoints: atomic, complete, safe to load, refused when corrupt or of another config."""

import random

import numpy as np
import pytest
import torch

from unet_lesson import UNet, UNetConfig
from unet_lesson.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(net):
    return {"model": net.state_dict(), "model_config": vars(net.config), "epoch": 3,
            "rng": rng_state(), "history": [{"epoch": 1, "loss": 0.5}]}


def net_state():
    return UNet(base_channels=2, depth=2).state_dict()


def test_round_trip_restores_model_and_rng(tmp_path):
    torch.manual_seed(0)
    net = UNet(base_channels=2, depth=2)
    path = save_checkpoint(tmp_path / "run" / "last.pt", **_state(net))
    expected = (random.random(), np.random.random(), torch.rand(2))  # noqa: NPY002
    state = load_checkpoint(path, expected_model_config=vars(net.config))
    set_rng_state(state["rng"])
    again = (random.random(), np.random.random(), torch.rand(2))  # noqa: NPY002
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])
    other = UNet(UNetConfig(**state["model_config"]))
    other.load_state_dict(state["model"])
    for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert state["epoch"] == 3 and state["history"][0]["loss"] == 0.5


def test_no_temporary_file_is_left_and_old_file_survives_a_failed_write(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", **_state(UNet(base_channels=2, depth=2)))
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle this"):  # the write fails midway
        save_checkpoint(path, model=net_state(), bad=Unpicklable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_gets_the_permissions_of_a_normal_file(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "last.pt", model=net_state())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not the 0o600 of a temporary file


def test_truncated_checkpoint_is_refused_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", **_state(UNet(base_channels=2, depth=2)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint .*corrupt or incomplete"):
        load_checkpoint(path)


def test_foreign_file_and_missing_file_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a unet-lesson checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_other_model_configuration_is_refused(tmp_path):
    net = UNet(base_channels=2, depth=2)
    path = save_checkpoint(tmp_path / "last.pt", **_state(net))
    wanted = dict(vars(net.config), base_channels=4)
    with pytest.raises(CheckpointError, match="base_channels: checkpoint 2 vs requested 4"):
        load_checkpoint(path, expected_model_config=wanted)


def test_loading_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"format": "unet-lesson-checkpoint/1", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint this course wrote.*must not be "
                                              "loaded") as refused:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(refused.value).replace(str(tmp_path), "")
    assert "weights_only" not in message  # never the advice to load it unsafely
