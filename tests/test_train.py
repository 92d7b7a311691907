"""The training loop: exact resume, divergence stops, best only above chance, both paddings."""

import numpy as np
import pandas as pd
import pytest
import tiny
import torch

from unet_lesson import evaluate, losses
from unet_lesson.checkpoint import load_checkpoint, load_model
from unet_lesson.course.run import Run, RunError
from unet_lesson.losses import make_targets
from unet_lesson.train import DIVERGENCE_FACTOR, DivergenceError, fit

tiny_config = tiny.tiny_config  # on tiny_data, conftest's synthetic set (10 images)


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_continues_exactly(tiny_data, tmp_path):
    root, samples = tiny_data
    cfg = tiny_config(dropout=0.3)  # drop-out draws from the RNG: resume must restore it
    Run.create(tmp_path / "straight", cfg, root, samples).train(samples)
    Run.create(tmp_path / "broken", cfg, root, samples).train(samples, until_epoch=0)
    assert load_checkpoint(tmp_path / "broken" / "last.pt")["epoch"] == 0
    history = Run.resume(tmp_path / "broken").train(samples)
    assert list(history["epoch"]) == [1, 2]
    straight, resumed = _weights(tmp_path / "straight" / "last.pt"), _weights(
        tmp_path / "broken" / "last.pt")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    a = pd.read_csv(tmp_path / "straight" / "history.csv")
    b = pd.read_csv(tmp_path / "broken" / "history.csv")
    np.testing.assert_allclose(a["train_loss"], b["train_loss"])


def test_fit_alone_writes_nothing_and_equals_a_run(tiny_data, tmp_path):
    """The loop knows no folder: the same seed gives the same weights as a run's training."""
    root, samples = tiny_data
    cfg = tiny_config(num_epochs=1)
    run = Run.create(tmp_path / "run", cfg, root, samples)
    parts = run.split(samples)
    states = []
    fit(cfg, parts["train"], parts["val"], on_epoch=lambda row, state, best: states.append(state))
    run.train(samples)
    for name, value in _weights(tmp_path / "run" / "last.pt").items():
        assert torch.equal(states[-1]["model"][name], value), name


def test_nan_loss_stops_without_saving(tiny_data, tmp_path, monkeypatch):
    root, samples = tiny_data
    monkeypatch.setattr(losses, "ce_dice_loss", lambda logits, *a, **k: logits.sum() * np.nan)
    run = Run.create(tmp_path, tiny_config(), root, samples)
    with pytest.raises(DivergenceError, match=r"loss became nan at epoch 1, step 1 .*lr="):
        run.train(samples)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_an_exploding_loss_stops_like_a_nan(tiny_data, tmp_path, monkeypatch):
    """A loss 100x its first value stops the run with the same message, nothing saved."""
    root, samples = tiny_data
    calls = []
    real = losses.ce_dice_loss

    def exploding(logits, *args, **kwargs):
        calls.append(1)
        loss = real(logits, *args, **kwargs)
        return loss * (1e6 if len(calls) == 3 else 1.0)  # the third step explodes

    monkeypatch.setattr(losses, "ce_dice_loss", exploding)
    run = Run.create(tmp_path, tiny_config(), root, samples)
    with pytest.raises(DivergenceError, match=rf"more than {DIVERGENCE_FACTOR:g}x the first "
                                              r"loss.*epoch 2, step 1 .*Lower the learning rate"):
        run.train(samples)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 0  # the good epoch 0 stays


def test_a_huge_learning_rate_is_caught(tiny_data, tmp_path):
    """The real thing (--set lr=1e6): the run stops with an error instead of a 'best' model."""
    root, samples = tiny_data
    cfg = tiny_config(lr=1e6, num_epochs=4, warmup_steps=0, best_above_chance=True)
    run = Run.create(tmp_path, cfg, root, samples)
    with pytest.raises(DivergenceError, match="loss became"):
        run.train(samples)
    assert not (tmp_path / "best.pt").exists()


def test_an_epoch_at_chance_never_becomes_best(tiny_data, tmp_path, monkeypatch):
    root, samples = tiny_data
    monkeypatch.setattr("unet_lesson.train.validation_scores",  # a network that finds nothing
                        lambda *a, **k: {"val_dice": 0.0, "val_dsb": 0.0})
    run = Run.create(tmp_path, tiny_config(best_above_chance=True), root, samples)
    history = run.train(samples)
    assert (history["val_dsb"] == 0).all() and (tmp_path / "last.pt").exists()
    assert not (tmp_path / "best.pt").exists()
    with pytest.raises(RunError, match="no best.pt: no epoch scored above chance"):
        run.finish(samples, torch.device("cpu"))


def test_chance_is_the_better_constant_prediction(tiny_data):
    from unet_lesson.metrics import dsb_score, pixel_dice

    _, samples = tiny_data
    empty = [s.__class__(s.image_id, s.image, np.zeros_like(s.labels), s.folder)
             for s in samples[:2]]
    chosen = empty + samples[:2]
    chance = evaluate.chance_scores(chosen)
    nothing = [np.zeros_like(s.labels) for s in chosen]
    everything = [np.ones_like(s.labels) for s in chosen]
    def mean_score(metric, predictions):
        return np.mean([metric(s.labels, p) for s, p in zip(chosen, predictions, strict=True)])

    assert chance["val_dsb"] == mean_score(dsb_score, nothing) == 0.5
    assert mean_score(dsb_score, everything) <= 0.5
    dice = [mean_score(pixel_dice, pred) for pred in (nothing, everything)]
    assert chance["val_dice"] == pytest.approx(max(dice))


def test_best_needs_to_beat_chance_and_earlier_epochs():
    from unet_lesson.train import best_so_far

    chance = {"val_dsb": 0.0, "val_dice": 0.2}
    at_chance = {"val_dsb": 0.0, "val_dice": 0.2}
    some_pixels = {"val_dsb": 0.0, "val_dice": 0.5}
    some_nuclei = {"val_dsb": 0.1, "val_dice": 0.4}
    assert not best_so_far(at_chance, [], chance)
    assert best_so_far(some_pixels, [at_chance], chance)
    assert best_so_far(some_nuclei, [some_pixels], chance)  # the DSB score comes first
    assert not best_so_far(some_pixels, [some_nuclei], chance)
    assert not best_so_far({"val_dsb": None, "val_dice": None}, [], chance)  # not validated
    assert best_so_far(at_chance, [], None)  # best_above_chance=False: any validated epoch


@pytest.mark.parametrize("name", ["paper", "practical"])
def test_both_configurations_train(tiny_data, tmp_path, name):
    root, samples = tiny_data
    cfg = tiny_config(name, tile_size=24, batch_size=2, tiles_per_epoch=4, num_epochs=1,
                      val_max_images=1, warmup_steps=1, best_above_chance=True,
                      channels_last=True)
    history = Run.create(tmp_path, cfg, root, samples).train(samples)
    assert np.isfinite(history["train_loss"]).all() and history["val_dsb"].notna().all()
    net, cfg_loaded, _ = load_model(tmp_path / "last.pt", torch.device("cpu"))
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


def test_trained_reuses_resumes_or_retrains(tiny_data, tmp_path):
    root, samples = tiny_data
    cfg = tiny_config(num_epochs=2)
    Run.create(tmp_path, cfg, root, samples).train(samples, until_epoch=0)  # unfinished
    run = Run.trained(tmp_path, cfg, root, samples)  # resumed to the end
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1 and run.finished()
    stamp = (tmp_path / "last.pt").stat().st_mtime_ns
    Run.trained(tmp_path, cfg, root, samples)  # finished: reused
    assert (tmp_path / "last.pt").stat().st_mtime_ns == stamp
    other = tiny_config(num_epochs=1, lr=0.01)
    Run.trained(tmp_path, other, root, samples)  # another config: trained anew
    assert load_checkpoint(tmp_path / "last.pt")["train_config"]["lr"] == 0.01
    assert Run.open(tmp_path).config == other


def test_training_and_validation_run_in_the_same_precision(tiny_data, monkeypatch):
    """Validation once ran in fp32 while training ran in bf16 (two autocast rules)."""
    import unet_lesson.predict as predict_module
    import unet_lesson.train as train_module
    from unet_lesson import precision

    _, samples = tiny_data
    seen = []

    def recording(device, dtype):
        seen.append(dtype)
        return precision.autocast(device, dtype)

    monkeypatch.setattr(train_module, "autocast", recording)
    monkeypatch.setattr(predict_module, "autocast", recording)
    fit(tiny_config(num_epochs=1, amp_cpu=True), samples[:6], samples[6:8],
        device=torch.device("cpu"))
    assert len(seen) > 2 and set(seen) == {torch.bfloat16}


@pytest.mark.parametrize("name", ["practical", "paper"])
def test_augmentation_on_the_device_trains_and_resumes_exactly(tiny_data, tmp_path, name):
    """augment_on_device: the DataLoader cuts windows, the batch is deformed and its targets
    made on the device (the weight map on the CPU, after the deformation)."""
    root, samples = tiny_data
    cfg = tiny_config(name, augment_on_device=True, dropout=0.2, tile_size=24, batch_size=2,
                      tiles_per_epoch=4)
    Run.create(tmp_path / "straight", cfg, root, samples).train(samples)
    Run.create(tmp_path / "broken", cfg, root, samples).train(samples, until_epoch=0)
    history = Run.resume(tmp_path / "broken").train(samples)
    assert np.isfinite(history["train_loss"]).all() and len(history) == 2
    for key, value in _weights(tmp_path / "straight" / "last.pt").items():
        assert torch.equal(value, _weights(tmp_path / "broken" / "last.pt")[key]), key


def test_device_targets_equal_the_per_tile_ones():
    """The three-class target made on the device after the deformation is the numpy one."""
    from unet_lesson.batches import three_class_target_batch
    from unet_lesson.toy import synthetic_nuclei

    labels = np.stack([synthetic_nuclei((48, 48), 8, seed=s) for s in range(3)])
    device = three_class_target_batch(torch.from_numpy(labels.astype(np.int64))).numpy()
    for tile, target in zip(labels, device, strict=True):
        np.testing.assert_array_equal(target, make_targets(tile, "three_class", "ce_dice",
                                                           10.0, 5.0)["target"])
