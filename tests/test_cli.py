"""The command line, end to end on a tiny synthetic set (no network, no GPU)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from unet_lesson.course.cli import build_parser, main
from unet_lesson.data import make_synthetic_dsb
from unet_lesson.rle import read_submission_csv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    data = make_synthetic_dsb(base / "tiny", n_images=10, seed=5, image_size=64, progress=False)
    run = base / "run"
    code = main(["train", "--data", str(data), "--config", "practical", "--out", str(run),
                 "--set", "base_channels=4", "depth=2", "tile_size=32", "batch_size=4",
                 "tiles_per_epoch=8", "num_epochs=2", "num_workers=0", "val_fraction=0.2",
                 "test_fraction=0.2", "channels_last=false", "best_above_chance=false",
                 "split=random"])
    assert code == 0
    return data, run


@pytest.mark.parametrize("command", ["demo", "download", "train", "predict", "evaluate",
                                     "submit"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_train_writes_metrics_and_figures(trained, capsys):
    _, run = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["reported_split"] == "test" and metrics["test"]["n_images"] == 2
    assert 0.0 <= metrics["test"]["dsb"] <= 1.0
    history = pd.read_csv(run / "history.csv")
    # the whole run, whichever epoch was best
    assert metrics["epochs_trained"] == len(history) == 2 and 1 <= metrics["best_epoch"] <= 2
    assert metrics["train_minutes"] == round(history["seconds"].sum() / 60, 2)
    assert set(metrics["test"]["by_modality"]) <= {"fluorescence", "brightfield", "stained"}
    for name in ("comparison.png", "curves.png", "postprocess.json", "test_scores.csv"):
        assert (run / name).is_file(), name


def test_evaluate_prints_overall_and_by_modality(trained, capsys):
    _, run = trained
    assert main(["evaluate", "--run", str(run), "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "all split: DSB score" in out and "(10 images)" in out
    scores = pd.read_csv(run / "evaluate_all.csv")
    assert len(scores) == 10 and {"dsb", "dice", "modality"} <= set(scores.columns)


def test_evaluate_scores_stage1_test_from_the_solution_csv(trained, tmp_path, capsys):
    from test_data_stage1_test import make_stage1_test

    _, run = trained
    root, truth = make_stage1_test(tmp_path)
    assert main(["evaluate", "--run", str(run), "--data", str(root), "--split", "all"]) == 0
    assert f"({len(truth)} images)" in capsys.readouterr().out


def test_predict_and_submit(trained, tmp_path, capsys):
    data, run = trained
    assert main(["predict", "--run", str(run), "--images", str(data),
                 "--out", str(tmp_path / "pred")]) == 0
    labels = sorted((tmp_path / "pred").glob("*_labels.png"))
    assert len(labels) == 10
    assert np.asarray(Image.open(labels[0])).shape == (64, 64)
    assert main(["submit", "--run", str(run), "--images", str(data),
                 "--out", str(tmp_path / "sub.csv")]) == 0
    shapes = {p.name: (64, 64) for p in data.iterdir() if p.is_dir()}
    submitted = read_submission_csv(tmp_path / "sub.csv", shapes)
    assert set(submitted) == set(shapes)


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err
    assert main(["evaluate", "--run", str(tmp_path / "empty")]) == 2
    assert "holds no run: train one there" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--set", "lr=fast"]) == 2
    assert "lr takes a float" in capsys.readouterr().err


def test_evaluate_on_another_folder_scores_all_of_it_and_refuses_its_splits(trained, tmp_path,
                                                                            capsys):
    """`evaluate --data OTHER` once scored only OTHER's random 15 % test split, silently."""
    _, run = trained
    other = make_synthetic_dsb(tmp_path / "other", n_images=6, seed=9, image_size=64,
                               progress=False)
    assert main(["evaluate", "--run", str(run), "--data", str(other)]) == 0
    assert "all split: DSB score" in capsys.readouterr().out
    assert len(pd.read_csv(run / "evaluate_all.csv")) == 6
    assert main(["evaluate", "--run", str(run), "--data", str(other), "--split", "test"]) == 2
    assert "to score every image of" in capsys.readouterr().err


def test_train_refuses_a_folder_holding_a_run(trained, capsys):
    data, run = trained
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--data", str(data), "--out", str(run), "--set", "num_epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_refused_resume_changes_nothing(trained, capsys):
    """`--resume --set base_channels=8` (or lr=0.5) once rewrote config.json."""
    data, run = trained
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for change in ("base_channels=8", "lr=0.5"):
        assert main(["train", "--data", str(data), "--out", str(run), "--resume",
                     "--set", change]) == 2
        err = capsys.readouterr().err
        assert "nothing was changed" in err and change.split("=")[0] in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
