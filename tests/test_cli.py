"""The command line, end to end on a tiny synthetic set (no network, no GPU).

The train command is run once, by the ``finished_run`` fixture of tests/conftest.py; what its
run folder holds is checked in tests/test_run.py. Here: what each command prints and refuses.
"""

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from unet_lesson.course.cli import build_parser, main
from unet_lesson.data import make_synthetic_dsb
from unet_lesson.rle import read_submission_csv

RUN = ["--run", "--checkpoint", "--tta", "--device"]  # every command that reads a run
OPTIONS = {
    "demo": ["--out", "--device"],
    "download": ["--dest", "--source", "--release"],
    "train": ["--data", "--config", "--set", "--out", "--resume", "--overwrite", "--minutes",
              "--skip-bad", "--device"],
    "predict": [*RUN, "--images", "--out", "--skip-bad"],
    "evaluate": [*RUN, "--data", "--split", "--skip-bad"],
    "submit": [*RUN, "--images", "--out"],
}


def _help_entries(text: str) -> dict[str, str]:
    """The options section of an argparse help: ``{"--out": "its description", ...}``."""
    entries, name = {}, None
    for line in text.split("options:\n", 1)[1].splitlines():
        option = re.match(r"  (?:-\w, )?(--[\w-]+)(?: \S+)*(?:  +(.*))?$", line)
        if option:
            name = option.group(1)
            entries[name] = option.group(2) or ""
        elif name and line.startswith("    "):
            entries[name] = (entries[name] + " " + line.strip()).strip()
    return entries


@pytest.mark.parametrize("command", list(OPTIONS))
def test_every_command_describes_each_of_its_arguments(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m unet_lesson {command} ")
    entries = _help_entries(text)
    assert set(entries) == {"--help", *OPTIONS[command]}
    undescribed = [name for name, description in entries.items() if not description]
    assert not undescribed, f"{command} --help: no description for {undescribed}"


def test_evaluate_prints_overall_and_by_modality(finished_copy, capsys):
    run = finished_copy
    assert main(["evaluate", "--run", str(run), "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "all split: DSB score" in out and "(10 images)" in out
    scores = pd.read_csv(run / "evaluate_all.csv")
    assert len(scores) == 10 and {"dsb", "dice", "modality"} <= set(scores.columns)


def test_evaluate_scores_stage1_test_from_the_solution_csv(finished_copy, tmp_path, capsys):
    from test_data_stage1_test import make_stage1_test

    run = finished_copy
    root, truth = make_stage1_test(tmp_path)
    assert main(["evaluate", "--run", str(run), "--data", str(root), "--split", "all"]) == 0
    assert f"({len(truth)} images)" in capsys.readouterr().out


def test_predict_and_submit(tiny_data, finished_run, tmp_path, capsys):
    (data, _), run = tiny_data, finished_run
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


def test_evaluate_on_another_folder_scores_all_of_it_and_refuses_its_splits(finished_copy,
                                                                            tmp_path, capsys):
    """`evaluate --data OTHER` once scored only OTHER's random 15 % test split, silently."""
    run = finished_copy
    other = make_synthetic_dsb(tmp_path / "other", n_images=6, seed=9, image_size=64,
                               progress=False)
    assert main(["evaluate", "--run", str(run), "--data", str(other)]) == 0
    assert "all split: DSB score" in capsys.readouterr().out
    assert len(pd.read_csv(run / "evaluate_all.csv")) == 6
    assert main(["evaluate", "--run", str(run), "--data", str(other), "--split", "test"]) == 2
    assert "to score every image of" in capsys.readouterr().err


def test_train_refuses_a_folder_holding_a_run(tiny_data, finished_copy, capsys):
    (data, _), run = tiny_data, finished_copy
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--data", str(data), "--out", str(run), "--set", "num_epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_refused_resume_changes_nothing(tiny_data, finished_copy, capsys):
    """`--resume --set base_channels=8` (or lr=0.5) once rewrote config.json."""
    (data, _), run = tiny_data, finished_copy
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for change in ("base_channels=8", "lr=0.5"):
        assert main(["train", "--data", str(data), "--out", str(run), "--resume",
                     "--set", change]) == 2
        err = capsys.readouterr().err
        assert "nothing was changed" in err and change.split("=")[0] in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
