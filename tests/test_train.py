"""The training loop: exact resume, atomic checkpoints, NaN stop, both padding modes."""

import numpy as np
import pandas as pd
import pytest
import torch

from unet_lesson import losses
from unet_lesson.checkpoint import CheckpointError, load_checkpoint
from unet_lesson.config import preset
from unet_lesson.data import load_dsb_folder, make_synthetic_dsb
from unet_lesson.train import (
    NonFiniteLossError,
    ensure_trained,
    fit,
    load_trained,
    make_targets,
)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    make_synthetic_dsb(root, n_images=10, seed=3, image_size=64, progress=False)
    return root, load_dsb_folder(root, cache=False, progress=False)


def tiny_config(**changes):
    values = dict(base_channels=4, depth=2, tile_size=32, batch_size=4, tiles_per_epoch=8,
                  num_epochs=2, warmup_steps=2, num_workers=0, val_max_images=2,
                  val_fraction=0.2, test_fraction=0.2, channels_last=False)
    return preset("practical", **{**values, **changes})


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_continues_exactly(tiny_set, tmp_path):
    root, samples = tiny_set
    cfg = tiny_config(dropout=0.3)  # drop-out draws from the RNG: resume must restore it
    fit(cfg, root, tmp_path / "straight", samples=samples)
    fit(cfg, root, tmp_path / "broken", samples=samples, until_epoch=0)
    assert load_checkpoint(tmp_path / "broken" / "last.pt")["epoch"] == 0
    history = fit(cfg, root, tmp_path / "broken", samples=samples, resume=True)
    assert list(history["epoch"]) == [1, 2]
    straight, resumed = _weights(tmp_path / "straight" / "last.pt"), _weights(
        tmp_path / "broken" / "last.pt")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    a = pd.read_csv(tmp_path / "straight" / "history.csv")
    b = pd.read_csv(tmp_path / "broken" / "history.csv")
    np.testing.assert_allclose(a["train_loss"], b["train_loss"])


def test_run_folder_holds_everything(tiny_set, tmp_path):
    root, samples = tiny_set
    fit(tiny_config(num_epochs=1), root, tmp_path, samples=samples)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"last.pt", "best.pt", "history.csv", "config.json", "splits.csv"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    state = load_checkpoint(tmp_path / "last.pt")
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "model_config",
                "train_config", "history"):
        assert key in state, key
    net, cfg, _ = load_trained(tmp_path / "best.pt", torch.device("cpu"))
    assert cfg.base_channels == 4 and not net.training
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns[:5]) == ["epoch", "train_loss", "lr", "val_dice", "val_dsb"]


def test_resume_refuses_another_model(tiny_set, tmp_path):
    root, samples = tiny_set
    fit(tiny_config(num_epochs=1), root, tmp_path, samples=samples)
    with pytest.raises(CheckpointError, match="base_channels: checkpoint 4 vs requested 8"):
        fit(tiny_config(num_epochs=2, base_channels=8), root, tmp_path, samples=samples,
            resume=True)


def test_nan_loss_stops_without_saving(tiny_set, tmp_path, monkeypatch):
    root, samples = tiny_set
    monkeypatch.setattr(losses, "ce_dice_loss", lambda logits, *a, **k: logits.sum() * np.nan)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 0, step 0.*lr="):
        fit(tiny_config(), root, tmp_path, samples=samples)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


@pytest.mark.parametrize("name", ["paper", "practical"])
def test_both_configurations_train(tiny_set, tmp_path, name):
    root, samples = tiny_set
    cfg = preset(name, base_channels=4, depth=2, tile_size=24, batch_size=2, tiles_per_epoch=4,
                 num_epochs=1, num_workers=0, val_max_images=1, val_fraction=0.2,
                 test_fraction=0.2, warmup_steps=1)
    history = fit(cfg, root, tmp_path, samples=samples)
    assert np.isfinite(history["train_loss"]).all() and history["val_dsb"].notna().all()
    net, cfg_loaded, _ = load_trained(tmp_path / "last.pt", torch.device("cpu"))
    assert net.config.padding == ("valid" if name == "paper" else "same")
    assert cfg_loaded == cfg


def test_make_targets_separates_touching_nuclei():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[2:18, 2:10] = 1
    labels[2:18, 10:18] = 2  # touching along a vertical line
    binary = make_targets(labels, "binary", "weighted_ce", 10.0, 5.0)
    assert set(binary) == {"target", "weight"}
    assert not binary["target"][2:18, 9:11].any()  # a 2-pixel gap opened between them
    assert binary["target"][2:18, 2:9].all() and binary["target"][2:18, 11:18].all()
    assert binary["weight"][9, 9] > 5  # and weighed heavily (the border term)
    three = make_targets(labels, "three_class", "ce_dice", 10.0, 5.0)
    assert set(three) == {"target"} and set(np.unique(three["target"])) == {0, 1, 2}


def test_ensure_trained_reuses_resumes_or_retrains(tiny_set, tmp_path):
    root, samples = tiny_set
    cfg = tiny_config(num_epochs=2)
    fit(cfg, root, tmp_path, samples=samples, until_epoch=0)  # an unfinished run
    best = ensure_trained(cfg, root, tmp_path, samples=samples)  # resumed to the end
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    stamp = (tmp_path / "last.pt").stat().st_mtime_ns
    assert ensure_trained(cfg, root, tmp_path, samples=samples) == best  # finished: reused
    assert (tmp_path / "last.pt").stat().st_mtime_ns == stamp
    other = tiny_config(num_epochs=1, lr=0.01)
    ensure_trained(other, root, tmp_path, samples=samples)  # another config: trained anew
    assert load_checkpoint(tmp_path / "last.pt")["train_config"]["lr"] == 0.01
