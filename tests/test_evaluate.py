"""Evaluation: post-processing chosen on validation, scores per image and by modality."""

import numpy as np
import pytest

from unet_lesson.data import DSBSample
from unet_lesson.evaluate import PostProcess, score_samples, summarise, tune_postprocessing
from unet_lesson.toy import fake_probability, synthetic_nuclei


def _samples(n=3):
    samples, probs = [], []
    for seed in range(n):
        labels = synthetic_nuclei((96, 96), n_nuclei=10, seed=seed)
        image = np.zeros((96, 96, 3), dtype=np.uint8)
        image[labels > 0] = 200  # bright nuclei on black: "fluorescence"
        samples.append(DSBSample(f"img{seed}", image, labels, folder=None))
        p = fake_probability(labels, blur=2.0, noise=0.05, seed=seed)
        probs.append(np.stack([1 - p, p]))  # a two-class "network output"
    return samples, probs


def test_tuning_finds_the_grid_best_and_never_scores_worse_than_defaults():
    samples, probs = _samples()
    best, grid = tune_postprocessing(samples, probs, "binary")
    default = PostProcess.for_target("binary")
    scored = {PostProcess(**{k: r[k] for k in ("method", "threshold", "interior_threshold",
                                                "min_size")}): r["dsb"]
              for r in grid.to_dict("records")}
    assert scored[best] == grid["dsb"].max() >= scored[default]
    # coordinate ascent tries far fewer settings than the full 5 x 3 grid, and its choice is
    # at least as good as any single-parameter change of it
    assert len(grid) <= 15
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        other = PostProcess("watershed", t, best.interior_threshold, best.min_size)
        if other in scored:
            assert scored[other] <= scored[best]


def test_scores_per_image_and_by_modality():
    samples, probs = _samples()
    scores = score_samples(samples, probs, PostProcess.for_target("binary"))
    assert list(scores["image_id"]) == ["img0", "img1", "img2"]
    assert (scores["modality"] == "fluorescence").all()
    assert ((scores["dsb"] >= 0) & (scores["dsb"] <= 1)).all()
    summary = summarise(scores)
    assert summary["n_images"] == 3
    assert summary["by_modality"]["fluorescence"]["dsb"] == pytest.approx(scores["dsb"].mean())


def test_perfect_three_class_probabilities_recover_the_nuclei():
    samples, _ = _samples(1)
    labels = samples[0].labels
    three = np.zeros((3, *labels.shape), dtype=np.float32)
    from unet_lesson.instances import three_class_target

    target = three_class_target(labels)
    for k in range(3):
        three[k] = target == k
    scores = score_samples(samples, [three], PostProcess.for_target("three_class"))
    assert scores["dsb"].iloc[0] > 0.9


def test_examples_cover_every_modality_and_span_the_scores():
    import pandas as pd

    from unet_lesson.plotting import pick_examples

    scores = pd.DataFrame({
        "image_id": [f"f{i}" for i in range(5)] + ["s0", "s1", "b0"],
        "modality": ["fluorescence"] * 5 + ["stained"] * 2 + ["brightfield"],
        "dsb": [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4],
    })
    # round-robin over brightfield, fluorescence, stained; fluorescence spread best..worst
    assert pick_examples(scores, 5) == ["b0", "f0", "s1", "f1", "s0"]
    picked = pick_examples(scores, 7)
    assert picked[:3] == ["b0", "f0", "s1"]
    # four of the five fluorescence images, ranked 1, 2, 4, 5: best to worst, evenly spread
    assert [i for i in picked if i[0] == "f"] == ["f0", "f3", "f4", "f1"]
    assert len(set(picked)) == 7
    assert sorted(pick_examples(scores, 20)) == sorted(scores["image_id"])
    assert pick_examples(scores.iloc[:0], 3) == []


# --------------------------------------------------------------------------------------------
# Object errors per image (the bootstrap interval of a mean score: tests/test_stats.py)
# --------------------------------------------------------------------------------------------


def test_score_samples_names_a_merge():
    labels = np.zeros((40, 60), dtype=np.int32)
    labels[5:20, 5:20], labels[5:20, 20:35], labels[25:35, 40:55] = 1, 2, 3  # 1, 2 touch
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[labels > 0] = 200
    sample = DSBSample("touching", image, labels, folder=None)
    merged = (labels > 0).astype(np.float32)  # one blob over nuclei 1 and 2, nucleus 3 alone
    table = score_samples([sample], [np.stack([1 - merged, merged])],
                          PostProcess(method="components", min_size=1), errors=True)
    row = table.iloc[0]
    assert (row["image_id"], row["modality"]) == ("touching", "fluorescence")
    assert (row["true"], row["predicted"], row["matched"]) == (3, 2, 1)
    assert (row["merged"], row["merges"], row["missed"], row["false positives"]) == (2, 1, 0, 0)
    assert row["dsb"] == pytest.approx(1 / 4)  # TP 1, FP 1 (the merge), FN 2
