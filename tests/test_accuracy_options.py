"""The accuracy options through a whole run: train, finish, postprocess.json, and the command
line's evaluate, predict and submit with post-processing per modality and nuclei at one scale."""

from __future__ import annotations

import json

import pytest
from tiny import TINY, tiny_set

from unet_lesson import evaluate
from unet_lesson.course.cli import main
from unet_lesson.course.run import Run
from unet_lesson.evaluate import PostProcessByModality, postprocess_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = {"num_epochs": 1, "postprocess_by_modality": "true", "nucleus_size": 8,
           "tile_shares": "modality"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with every option on, its post-processing chosen per modality (a modality
    needs one validation image here, :data:`evaluate.MIN_MODALITY_IMAGES` otherwise)."""
    tmp = tmp_path_factory.mktemp("options")
    root, _ = tiny_set(tmp / "data", seed=4, n_images=12)
    out = tmp / "run"
    overrides = [f"{k}={v}" for k, v in {**TINY, **OPTIONS}.items()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNET_LESSON_DATA", str(tmp / "cache"))
        patch.setattr(evaluate, "MIN_MODALITY_IMAGES", 1)
        assert main(["train", "--data", str(root), "--out", str(out), "--set", *overrides]) == 0
    return root, out


def test_finish_writes_the_post_processing_of_each_modality(trained):
    _, out = trained
    saved = json.loads((out / "postprocess.json").read_text())
    assert set(saved) == {"shared", "by_modality", "min_images", "validation_images"}
    assert saved["min_images"] == 1
    assert saved["by_modality"] and set(saved["by_modality"]) == set(saved["validation_images"])
    run = Run.open(out)
    post = run.postprocess()
    assert isinstance(post, PostProcessByModality) and post == postprocess_from_dict(saved)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["postprocess"] == saved
    assert run.config.nucleus_size == 8 and run.config.tile_shares == "modality"


def test_evaluate_predict_and_submit_use_it(trained, tmp_path, capsys):
    root, out = trained
    assert main(["evaluate", "--run", str(out), "--split", "val"]) == 0
    assert main(["predict", "--run", str(out), "--images", str(root), "--out",
                 str(tmp_path / "pred"), "--tta"]) == 0
    assert len(list((tmp_path / "pred").glob("*_labels.png"))) == 12
    assert main(["submit", "--run", str(out), "--images", str(root), "--out",
                 str(tmp_path / "sub.csv")]) == 0
    assert (tmp_path / "sub.csv").read_text().startswith("ImageId,EncodedPixels")
    assert "error" not in capsys.readouterr().err
