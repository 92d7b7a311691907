"""The paper's claims, measured (unet_lesson.experiments): design, reuse and the tables."""

import math

import numpy as np
import pandas as pd
import pytest
import tiny
import torch

from unet_lesson.config import differences
from unet_lesson.course import experiments as ex
from unet_lesson.data import training_split

CPU = torch.device("cpu")


def tiny_base():
    # the paper's network at the tests' tiny size (tests/tiny.py), 20-pixel output tiles, two
    # short steps: a smoke test, not a result
    return ex.claims_config(CPU, **{**tiny.TINY, "tile_size": 20, "predict_tile": 32,
                                    "batch_size": 2, "tiles_per_epoch": 4, "num_epochs": 1,
                                    "warmup_steps": 1, "val_max_images": 1})


pytestmark = pytest.mark.usefixtures("one_thread")  # networks a few channels wide (conftest)


@pytest.fixture(scope="module")
def tiny_set(tiny_data):
    root, samples = tiny_data  # conftest's synthetic set
    return root, samples, training_split(samples, "random", 0.25, 0.0, 0.0)


def test_the_base_is_the_papers_configuration_with_adamw():
    base = ex.claims_config(CPU)
    assert (base.model.padding, base.model.batch_norm, base.model.dropout) == ("valid", False,
                                                                               0.5)
    assert (base.target, base.loss, base.w0, base.elastic) == ("binary", "weighted_ce", 10.0,
                                                               True)
    assert base.optimizer == "adamw" and base.val_every == base.num_epochs
    assert ex.claims_config(CPU, num_epochs=3).val_every == 3


def test_arms_change_only_what_their_claim_is_about():
    base = tiny_base()
    arms = ex.paper_claim_arms((8, 32))
    assert [a.claim for a in arms].count("weight map") == 2
    assert [a.claim for a in arms].count("elastic deformation") == 4
    # the paper's arm of the weight-map claim is the elastic arm with 32 images: one run
    assert arms[0].key == next(a.key for a in arms if a.name == "elastic, 32 images")
    assert len({a.key for a in arms}) == 5
    for arm in arms:
        changed = {d.split(":")[0] for d in differences(base, arm.config(base, seed=4))}
        assert changed <= {"w0", "elastic", "seed"}
    assert arms[1].config(base, 0).w0 == 0.0
    assert not next(a for a in arms if a.name.startswith("no elastic")).config(base, 0).elastic


def test_claim_splits_are_nested_and_share_the_validation_images(tiny_set):
    _, _, splits = tiny_set
    small, large = (ex.claim_split(splits, n, n_val=2) for n in (2, 5))
    train = {n: set(t.loc[t["split"] == "train", "image_id"]) for n, t in ((2, small),
                                                                          (5, large))}
    assert len(train[2]) == 2 and len(train[5]) == 5 and train[2] <= train[5]
    assert list(small.loc[small["split"] == "val", "image_id"]) == \
        list(large.loc[large["split"] == "val", "image_id"])
    assert train[5] <= set(splits.loc[splits["split"] == "train", "image_id"])
    with pytest.raises(ValueError, match="training images asked for"):
        ex.claim_split(splits, 100, n_val=2)


def test_measure_trains_each_run_once_and_reuses_it(tiny_set, tmp_path):
    root, samples, splits = tiny_set
    arms = ex.paper_claim_arms((2, 4))
    images = ex.measure_claims(arms, [0], tiny_base(), samples, root, tmp_path, splits, 2, CPU)
    folders = sorted(p.name for p in tmp_path.iterdir() if (p / "last.pt").exists())
    assert len(folders) == 5  # six arms, the shared one trained once
    assert len(images) == len(arms) * 2  # every arm scored on both validation images
    assert set(images["image_id"]) == set(splits.loc[splits["split"] == "val", "image_id"][:2])
    for column in ("claim", "arm", "seed", "n_train", "dsb_components", "dsb_watershed",
                   "merges", "merged", "missed", "false positives", "merges_watershed"):
        assert column in images
    stamps = {f: (tmp_path / f / "last.pt").stat().st_mtime_ns for f in folders}
    again = ex.measure_claims(arms, [0], tiny_base(), samples, root, tmp_path, splits, 2, CPU)
    assert {f: (tmp_path / f / "last.pt").stat().st_mtime_ns for f in folders} == stamps
    pd.testing.assert_frame_equal(again.drop(columns="train_s"),
                                  images.drop(columns="train_s"), check_dtype=False)


def _runs():
    rows = []
    for seed, (a, b) in enumerate([(0.30, 0.20), (0.34, 0.22), (0.32, 0.21)]):
        rows += [{"claim": "weight map", "arm": "w0=10 (the paper)", "n_train": 32,
                  "seed": seed, "dsb": a},
                 {"claim": "weight map", "arm": "w0=0 (no border term)", "n_train": 32,
                  "seed": seed, "dsb": b}]
    for n, shift in ((8, 0.05), (32, 0.0)):
        for seed in range(3):
            rows += [{"claim": "elastic deformation", "arm": f"elastic, {n} images",
                      "n_train": n, "seed": seed, "dsb": 0.3 + 0.01 * seed},
                     {"claim": "elastic deformation", "arm": f"no elastic, {n} images",
                      "n_train": n, "seed": seed, "dsb": 0.3 + 0.01 * seed - shift}]
    return pd.DataFrame(rows)


def test_summary_compares_each_arm_with_its_reference_and_the_spread():
    table = ex.summarise_claim(_runs(), "weight map", "w0=10", measures=("dsb",))
    ref, other = table.iloc[0], table.iloc[1]
    assert ref["arm"].startswith("w0=10") and math.isnan(ref["difference"])
    assert ref["beyond_spread"] is None
    assert other["difference"] == pytest.approx(0.21 - 0.32)
    assert other["sd"] == pytest.approx(np.std([0.20, 0.22, 0.21], ddof=1))
    assert other["beyond_spread"] is True  # 0.11 > 2 x 0.02
    assert other["p"] == pytest.approx(0.1) and other["p_min"] == pytest.approx(0.1)
    elastic = ex.summarise_claim(_runs(), "elastic deformation", "elastic,", measures=("dsb",))
    by_arm = elastic.set_index("arm")
    assert by_arm.loc["no elastic, 8 images", "difference"] == pytest.approx(-0.05)
    assert by_arm.loc["no elastic, 8 images", "beyond_spread"] is True  # 0.05 > 2 x 0.01
    assert by_arm.loc["no elastic, 32 images", "difference"] == pytest.approx(0.0)
    assert not by_arm.loc["no elastic, 32 images", "beyond_spread"]


def test_per_run_means_and_the_share_of_merged_nuclei():
    images = pd.DataFrame({"claim": "c", "arm": "a", "key": "k", "n_train": 8, "w0": 10.0,
                           "elastic": True, "seed": 0, "image_id": ["x", "y"],
                           "dsb_components": [0.2, 0.4], "merges": [1, 3],
                           "merged": [2, 6], "true": [10, 30]})
    runs = ex.per_run(images)
    assert len(runs) == 1
    assert runs.loc[0, "dsb_components"] == pytest.approx(0.3)
    assert runs.loc[0, "merges"] == pytest.approx(2.0)
    assert runs.loc[0, "merged_share"] == pytest.approx(8 / 40)  # pooled, not averaged
