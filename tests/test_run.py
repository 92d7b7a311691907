"""A run folder that never lies: each defect found in the old layout, reproduced and refused."""

import json
import os
import shutil

import pandas as pd
import pytest
import tiny
import torch

from unet_lesson import env
from unet_lesson.checkpoint import load_checkpoint, load_model
from unet_lesson.config import preset
from unet_lesson.course.run import RESULTS, Run, RunError
from unet_lesson.data import load_dsb_folder, make_synthetic_dsb

# finished_run (conftest): tiny.tiny_config() trained for 2 epochs by the train command on
# tiny_data and finished; finished_copy: a copy of it to change
tiny_config = tiny.tiny_config


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_new_run_refuses_a_folder_holding_another(tiny_data, finished_copy):
    root, samples = tiny_data
    folder = finished_copy
    before = _snapshot(folder)
    with pytest.raises(RunError, match=r"already holds a run \(.*2 epoch\(s\) trained\).*"
                                       r"--resume.*--overwrite"):
        Run.create(folder, tiny_config(num_epochs=3), root, samples)
    assert _snapshot(folder) == before


def test_overwrite_removes_the_old_run_whole(tiny_data, finished_copy, tmp_path):
    """Old metrics.json, postprocess.json and submission.csv once stayed beside new weights."""
    root, samples = tiny_data
    folder = finished_copy
    (folder / "submission.csv").write_text("ImageId,EncodedPixels\n")
    Run.create(folder, tiny_config(lr=0.002), root, samples, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "run.json", "splits.csv"]
    assert Run.open(folder).config.lr == 0.002
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left beside it


def test_a_folder_of_other_files_is_refused(tiny_data, tmp_path):
    root, samples = tiny_data
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"holds files that are not a run \(notes.txt\)"):
        Run.create(tmp_path, tiny_config(), root, samples, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_start_leaves_nothing_behind(tmp_path, monkeypatch):
    """One image is too few to split; the split file it left once blocked the next run."""
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    root = make_synthetic_dsb(tmp_path / "grow", n_images=1, seed=1, image_size=64,
                              progress=False)
    with pytest.raises(RunError, match="1 image.* too few for a training and a validation"):
        Run.create(tmp_path / "run", tiny_config(), root, load_dsb_folder(root, cache=False))
    assert not (tmp_path / "run").exists() and not (env.data_dir() / "splits").exists()
    more = make_synthetic_dsb(tmp_path / "more", n_images=6, seed=2, image_size=64,
                              progress=False)
    for folder in more.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, root / folder.name)
    run = Run.create(tmp_path / "run", tiny_config(), root, load_dsb_folder(root, cache=False))
    assert len(pd.read_csv(run.path("splits.csv"))) == 7


def test_a_refused_resume_writes_nothing(finished_copy):
    folder = finished_copy
    before = _snapshot(folder)
    for change, named in [("base_channels=8", "model.base_channels: 4 -> 8"),
                          ("lr=0.5", "lr: 0.001 -> 0.5"),  # more epochs train further:
                          ("num_epochs=1", "num_epochs: 2 -> 1")]:  # fewer are refused
        with pytest.raises(RunError, match=f"nothing was changed.*{named}"):
            Run.resume(folder, overrides=[change])
    assert _snapshot(folder) == before
    assert Run.resume(folder, overrides=["num_workers=3"]).config.num_workers == 3  # run-time


def test_resume_refuses_other_data_and_a_missing_run(finished_copy, tmp_path):
    folder = finished_copy
    with pytest.raises(RunError, match="trains on .*tiny, not .*elsewhere"):
        Run.resume(folder, data_root=tmp_path / "elsewhere")
    with pytest.raises(RunError, match="holds no run"):
        Run.resume(tmp_path / "empty")


def test_continuing_training_removes_results_of_the_older_network(tiny_data, finished_copy):
    _, samples = tiny_data
    folder = finished_copy
    (folder / "submission.csv").write_text("ImageId,EncodedPixels\n")  # as submit leaves them
    (folder / "evaluate_all.csv").write_text("image_id\n")  # and evaluate
    for name in ("metrics.json", "postprocess.json", "submission.csv", "evaluate_all.csv"):
        assert (folder / name).exists()
    # a longer run of the same configuration would be another config: copy it by hand
    config = json.loads((folder / "config.json").read_text())
    config["num_epochs"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    run = Run.open(folder)
    run.train(samples)
    names = {p.name for p in folder.iterdir()}
    assert not names & set(RESULTS) and not [n for n in names if n.startswith("evaluate_")]
    assert len(pd.read_csv(folder / "history.csv")) == 3


def test_stale_temporary_files_are_removed_on_the_next_start(tiny_data, finished_copy):
    """A kill -9 during a checkpoint write once left a hidden .last.pt.*.tmp forever."""
    root, samples = tiny_data
    folder = finished_copy
    stale = folder / ".last.pt.abc123.tmp"
    stale.write_bytes(os.urandom(1000))
    Run.open(folder)
    assert not stale.exists()
    stale.write_bytes(b"x")
    Run.create(folder, tiny_config(), root, samples, overwrite=True)
    assert not stale.exists()


def test_the_data_changing_under_a_run_is_refused(tiny_data, finished_copy):
    _, samples = tiny_data
    run = Run.open(finished_copy)
    with pytest.raises(RunError, match="data changed since this run was made.*1 gone"):
        run.split(samples[1:])


def test_a_run_of_an_older_unet_lesson_is_named(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"old")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunError, match="older unet-lesson.*--overwrite"):
        Run.open(tmp_path)


def test_a_finished_run_holds_a_consistent_record(finished_run):
    """Every file of a finished run, once: what training and finish write, and that they agree."""
    folder = finished_run
    names = {p.name for p in folder.iterdir()}
    assert {"run.json", "config.json", "splits.csv", "last.pt", "best.pt", "history.csv",
            "metrics.json", "postprocess.json", "test_scores.csv", "curves.png",
            "comparison.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    state = load_checkpoint(folder / "last.pt")
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "model_config",
                "train_config", "history", "reference_loss", "data_root"):
        assert key in state, key
    run = Run.open(folder)
    net, cfg, _ = load_model(folder / "best.pt", torch.device("cpu"))
    assert cfg == run.config and cfg.model.base_channels == 4 and not net.training
    history = run.history()
    assert list(history.columns[:5]) == ["epoch", "train_loss", "lr", "val_dice", "val_dsb"]
    metrics = json.loads((folder / "metrics.json").read_text())
    # the whole run, whichever epoch was best
    assert metrics["epochs_trained"] == len(history) == 2 and 1 <= metrics["best_epoch"] <= 2
    assert metrics["train_minutes"] == round(history["seconds"].sum() / 60, 2)
    assert metrics["config"] == run.config.to_dict()
    assert json.loads((folder / "postprocess.json").read_text()) == metrics["postprocess"]
    assert run.postprocess().to_dict() == metrics["postprocess"]
    assert metrics["reported_split"] == "test" and 0.0 <= metrics["test"]["dsb"] <= 1.0
    assert set(metrics["test"]["by_modality"]) <= {"fluorescence", "brightfield", "stained"}
    assert len(pd.read_csv(folder / "test_scores.csv")) == metrics["test"]["n_images"] == 2


def test_the_default_group_split_holds_out_whole_groups(tmp_path_factory):
    """Validation and test images come from acquisition groups training never sees; val_seen
    keeps some images of the training groups, to show what a random split would report."""
    root = tmp_path_factory.mktemp("groups") / "set"
    make_synthetic_dsb(root, n_images=24, seed=0, progress=False)
    samples = load_dsb_folder(root, cache=False, progress=False)
    assert preset("practical").split == "group"  # the default
    cfg = tiny_config(split="group", tiles_per_epoch=4, num_epochs=1)
    run = Run.create(tmp_path_factory.mktemp("run") / "r", cfg, root, samples)
    splits = pd.read_csv(run.path("splits.csv"))
    seen_groups = set(splits.loc[splits["split"].isin(["train", "val_seen"]), "group"])
    for held_out in ("val", "test"):
        groups = set(splits.loc[splits["split"] == held_out, "group"])
        assert groups and not groups & seen_groups, held_out
    assert set(splits.loc[splits["split"] == "val_seen", "group"]) <= set(
        splits.loc[splits["split"] == "train", "group"])
    run.train(samples)
    metrics = run.finish(samples)
    assert {"val", "val_seen", "test"} <= set(metrics) and metrics["split"] == "group"
    assert metrics["val_seen"]["n_images"] == (splits["split"] == "val_seen").sum() > 0
