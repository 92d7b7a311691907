"""The accuracy ablation runs end to end at tiny size, resumes, never scores the test split,
and cross-fits its post-processing over whole validation groups."""

import json

import numpy as np
import pandas as pd
import pytest
from tiny import load_script

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ablation():
    return load_script("benchmarks/ablation_accuracy.py")


def test_two_folds_keep_groups_whole_and_share_each_modality(ablation):
    groups = ["f1"] * 5 + ["f2"] * 3 + ["f3"] * 2 + ["s1"] * 4 + ["s2"] * 4 + ["b1"] * 2
    modalities = ["fluorescence"] * 10 + ["stained"] * 8 + ["brightfield"] * 2
    folds = ablation.two_folds(groups, modalities)
    for group in set(groups):  # a group is never on both sides
        assert len({f for f, g in zip(folds, groups, strict=True) if g == group}) == 1
    for modality in ("fluorescence", "stained"):  # two or more groups: one on each side
        assert {f for f, m in zip(folds, modalities, strict=True) if m == modality} == {0, 1}
    assert list(ablation.two_folds(["g"] * 4, ["stained"] * 4)) == [0, 1, 0, 1]  # one group


def test_cross_fitting_never_scores_an_image_with_a_setting_chosen_on_it(ablation,
                                                                          monkeypatch):
    from unet_lesson.evaluate import PostProcess

    chosen_on, scored = [], []
    monkeypatch.setattr(ablation, "tune_postprocessing", lambda val, probs, target, **kw: (
        chosen_on.append({s.image_id for s in val}) or PostProcess.for_target(target), None))
    monkeypatch.setattr(ablation, "score_samples", lambda val, probs, post: (
        scored.append({s.image_id for s in val}) or pd.DataFrame({"dsb": [0.0] * len(val)})))

    class Sample:
        def __init__(self, i):
            self.image_id = f"img{i}"

    val = [Sample(i) for i in range(6)]
    folds = np.array([0, 0, 1, 1, 1, 0])
    table = ablation.cross_fitted(val, [None] * 6, folds, "three_class", False, {})
    assert len(table) == 6
    for choose, score in zip(chosen_on, scored, strict=True):
        assert not choose & score and choose | score == {s.image_id for s in val}


def test_the_tiny_ablation_runs_resumes_and_leaves_the_test_split_alone(ablation, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")
    predicted = []
    real = ablation.predict_samples
    monkeypatch.setattr(ablation, "predict_samples", lambda net, samples, *a, **kw: (
        predicted.extend(s.image_id for s in samples) or real(net, samples, *a, **kw)))
    args = ["--tiny", "--out", str(tmp_path / "out"), "--seeds", "0", "1",
            "--variants", "base", "+scale+sampling"]
    results = ablation.main(args)
    assert list(zip(results["variant"], results["seed"], strict=True)) == [
        ("base", 0), ("+scale+sampling", 0), ("base", 1), ("+scale+sampling", 1)]
    for column in ("val", "cf", "cf_mod", "tta", "steps", "train_minutes",
                   "steps_per_min", "predict_s", "predict_tta_s", "run_minutes"):
        assert results[column].notna().all(), column
    assert ((results[["val", "cf", "cf_mod", "tta"]] >= 0) &
            (results[["val", "cf", "cf_mod", "tta"]] <= 1)).all().all()
    assert (results["steps"] == 4).all()  # 2 epochs of 8 tiles in batches of 4
    assert all(json.loads(g) for g in results["val_groups"])
    splits = pd.read_csv(tmp_path / "out" / "base-seed0" / "splits.csv", dtype=str)
    test = set(splits.loc[splits["split"] == "test", "image_id"])
    assert test and not test & set(predicted)  # the ablation never predicts the test split
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| +scale+sampling | 2 |" in summary and "±" in summary and "Against base" in summary

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ablation.Run, "trained", no_training)
    again = ablation.main(args)  # every run is in results.csv: nothing is trained or scored
    assert len(again) == 4
    pd.testing.assert_frame_equal(again.drop(columns="changes").reset_index(drop=True),
                                  results.drop(columns="changes").reset_index(drop=True),
                                  check_dtype=False)
