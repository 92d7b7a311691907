"""Evaluation: post-processing chosen on validation, scores per image and by modality."""

import numpy as np
import pytest

from unet_lesson.data import DSBSample
from unet_lesson.evaluate import (
    POSTPROCESS_GRID,
    PostProcess,
    PostProcessByModality,
    postprocess_from_dict,
    score_samples,
    summarise,
    tune_postprocessing,
)
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
    # coordinate ascent tries fewer settings than the full 7 x 5 grid, and its choice is
    # at least as good as any single-parameter change of it
    assert len(grid) < 7 * 5 and "modality" not in grid
    for t in POSTPROCESS_GRID["threshold"]:
        other = PostProcess("watershed", t, best.interior_threshold, best.min_size)
        if other in scored:
            assert scored[other] <= scored[best]


def test_the_grid_is_wide_enough_that_the_old_edges_are_inside():
    """Notebook 11 once chose threshold 0.3 and min_size 32: both the edges of the old grid."""
    for name, old in (("threshold", 0.3), ("min_size", 32), ("interior_threshold", 0.3)):
        values = POSTPROCESS_GRID[name]
        assert min(values) < old < max(values)


# a dark background (fluorescence), a colourful bright one (stained), a grey bright one
BACKGROUNDS = {"fluorescence": ((10, 10, 10), (200, 200, 200)),
               "stained": ((230, 190, 220), (120, 60, 160)),
               "brightfield": ((200, 200, 200), (90, 90, 90))}


def _two_kinds():
    """Fluorescence images whose nucleus probabilities peak at 0.45 (a low threshold is
    best) and stained ones with a background at 0.55 (a high one is best), one brightfield."""
    from unet_lesson.data import modality_of

    samples, probs = [], []
    for k, (modality, n) in enumerate([("fluorescence", 3), ("stained", 3), ("brightfield", 1)]):
        for seed in range(n):
            labels = synthetic_nuclei((96, 96), n_nuclei=10, seed=10 * k + seed)
            background, nucleus = BACKGROUNDS[modality]
            image = np.where(labels[..., None] > 0, nucleus, background).astype(np.uint8)
            assert modality_of(image) == modality
            samples.append(DSBSample(f"{modality}{seed}", image, labels, folder=None))
            p = fake_probability(labels, blur=1.0, noise=0.02, seed=seed)
            p = 0.45 * p if modality == "fluorescence" else 0.55 + 0.45 * p
            probs.append(np.stack([1 - p, p]))
    return samples, probs


def test_post_processing_per_modality_is_chosen_on_each_modality_with_a_fallback():
    samples, probs = _two_kinds()
    post, grid = tune_postprocessing(samples, probs, "binary", by_modality=True, min_images=2)
    assert isinstance(post, PostProcessByModality)
    assert set(post.by_modality) == {"fluorescence", "stained"}  # brightfield: 1 image < 2
    assert post.images == {"brightfield": 1, "fluorescence": 3, "stained": 3}
    assert post.for_modality("brightfield") == post.shared == post.for_modality(None)
    assert post.by_modality["fluorescence"].threshold < 0.45 < post.by_modality[
        "stained"].threshold
    assert set(grid["modality"]) == {"all", "fluorescence", "stained"}
    shared = tune_postprocessing(samples, probs, "binary")[0]
    assert shared == post.shared  # the shared search is the one of a shared-only tuning
    own = score_samples(samples, probs, post)
    one = score_samples(samples, probs, shared)
    for modality in ("fluorescence", "stained"):  # each modality does at least as well
        mine = own["modality"] == modality
        assert own[mine]["dsb"].mean() >= one[mine]["dsb"].mean()
    assert own["dsb"].mean() > one["dsb"].mean()
    by_hand = [post.by_modality.get(m, shared)(p) for m, p in zip(own["modality"], probs,
                                                                 strict=True)]
    assert [int(lab.max()) for lab in by_hand] == list(own["n_pred"])


def test_a_shared_cache_scores_each_image_once_per_setting(monkeypatch):
    from unet_lesson import evaluate

    samples, probs = _two_kinds()
    plain = tune_postprocessing(samples[:4], probs[:4], "binary")
    calls = []
    real = evaluate.dsb_score
    monkeypatch.setattr(evaluate, "dsb_score", lambda *a: calls.append(1) or real(*a))
    cache = {}
    first = tune_postprocessing(samples[:4], probs[:4], "binary", cache=cache)
    assert first[0] == plain[0] and first[1].equals(plain[1])  # the same search
    assert len(calls) == len(cache) == 4 * len(first[1])
    tune_postprocessing(samples[:4], probs[:4], "binary", cache=cache)  # again: nothing new
    tune_postprocessing(samples[2:4], probs[2:4], "binary", cache=cache)  # a subset: nothing
    assert len(calls) == len(cache)


def test_a_post_processing_round_trips_and_an_old_shared_one_still_reads():
    samples, probs = _two_kinds()
    post, _ = tune_postprocessing(samples, probs, "binary", by_modality=True, min_images=2)
    assert postprocess_from_dict(post.to_dict()) == post
    assert post.to_dict()["validation_images"]["brightfield"] == 1
    old = {"method": "three_class", "threshold": 0.3, "interior_threshold": 0.6, "min_size": 32}
    assert postprocess_from_dict(old) == PostProcess(**old)
    assert postprocess_from_dict(post.shared.to_dict()) == post.shared
    assert post.shared(probs[0]).max() == post.shared(probs[0], "stained").max()


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
