"""The fair comparison of notebook 12 (unet_lesson.course.compare), at a tiny size on synthetic
data. Its costs are tested in tests/test_costs.py, its statistics in tests/test_stats.py."""

import importlib.util
import math
import shutil

import pandas as pd
import pytest
import tiny
import torch

from unet_lesson.config import differences
from unet_lesson.course import compare as cmp
from unet_lesson.course import costs
from unet_lesson.course.run import Run
from unet_lesson.data import training_split
from unet_lesson.networks import ARCHS, build_network, count_parameters

SEEDS = (0, 1)
pytestmark = [pytest.mark.filterwarnings("ignore:pretrained=True"),  # no torchvision here
              pytest.mark.usefixtures("one_thread")]  # networks a few channels wide (conftest)
CPU = torch.device("cpu")


# the tests' tiny configuration (width 4, depth 2, random split), with 64-pixel tiles for
# TernausNet11 (its depth is 5, fixed) and one short epoch
TINY = {**tiny.TINY, "tile_size": 64, "predict_tile": 64, "batch_size": 2,
        "tiles_per_epoch": 4, "num_epochs": 1, "warmup_steps": 1}


def tiny_base(**changes):
    return tiny.tiny_config(**{**TINY, **changes})


@pytest.fixture(scope="module")
def compared(tiny_data, tmp_path_factory, one_thread_module):
    root, samples = tiny_data
    out = tmp_path_factory.mktemp("compare")
    table = cmp.compare(ARCHS, SEEDS, tiny_base(), samples, root, out, CPU)
    return table, out


# --------------------------------------------------------------------------------------------
# The configurations: only the network changes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_config_changes_only_the_network_and_the_seed(arch):
    base = tiny_base()
    cfg = cmp.arch_config(base, arch, seed=5)
    changed = {d.split(":")[0] for d in differences(base, cfg)}
    assert changed <= {"seed", "model.arch", "model.deep_supervision", "model.pretrained",
                       "model.in_channels", "model.depth", "model.padding"}
    assert cfg.seed == 5 and cfg.model.arch == arch
    assert cfg.model.deep_supervision == (arch == "unet++")
    assert cfg.model.pretrained == (arch == "ternausnet11")
    if arch == "ternausnet11":
        assert (cfg.model.in_channels, cfg.model.depth, cfg.model.padding) == (3, 5, "same")
    elif arch == "unet":
        assert cfg.model == base.model


def test_arch_config_refuses_an_unknown_network():
    with pytest.raises(ValueError, match="arch must be one of"):
        cmp.arch_config(tiny_base(), "segnet")


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def test_one_row_per_network_and_seed_with_scores(compared):
    table, out = compared
    assert len(table) == len(ARCHS) * len(SEEDS)
    assert sorted(zip(table["arch"], table["seed"], strict=True)) == sorted(
        (a, s) for a in ARCHS for s in SEEDS)
    for column in ["parameters", "gflops", "activation_mib", "infer_ms", "step_ms", "train_s",
                   "val_dsb", "test_dsb"]:
        assert table[column].notna().all(), column
    assert (table["epochs"] == 1).all() and (table["train_s"] > 0).all()
    assert table["test_dsb"].between(0, 1).all()
    assert any(c.startswith("test_dsb_") for c in table.columns)  # by modality
    for folder in table["folder"]:
        assert (out / folder.split("/")[-1] / "metrics.json").is_file()
    assert set(table["model"]) >= {"unet++ (deep supervision)", "ternausnet11 (pretrained=True)"}


def test_parameters_and_flops_are_the_networks(compared):
    table, _ = compared
    base = tiny_base()
    for arch in ARCHS:
        cfg = cmp.arch_config(base, arch, pretrained=False)
        rows = table[table["arch"] == arch]
        assert (rows["parameters"] == count_parameters(build_network(cfg.model))).all()
        # count_flops itself is checked by hand in tests/test_costs.py
        assert rows["gflops"].iloc[0] * 1e9 == pytest.approx(costs.count_flops(cfg.model))
    gflops = table.groupby("arch")["gflops"].first()
    assert gflops["unet++"] > gflops["unet"] and gflops["ternausnet11"] > gflops["unet"]


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None,
                    reason="torchvision installed: the ImageNet weights may be reachable")
def test_the_table_says_ternausnet_started_from_random_weights(compared):
    table, _ = compared
    encoders = table.groupby("arch")["encoder"].first()
    assert "not reachable" in encoders["ternausnet11"]
    assert encoders["unet"] == "random (He)"


def test_a_finished_comparison_is_reused_not_trained_again(compared, tiny_data, monkeypatch):
    table, out = compared
    root, samples = tiny_data

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained or scored again")

    monkeypatch.setattr(Run, "train", refuse)
    monkeypatch.setattr(Run, "finish", refuse)
    again = cmp.compare(ARCHS, SEEDS, tiny_base(), samples, root, out, CPU)
    scores = [c for c in table.columns if "_dsb" in c] + ["train_s", "parameters", "gflops"]
    pd.testing.assert_frame_equal(again[scores], table[scores])


def test_another_split_or_config_trains_anew(compared, tiny_data, tmp_path):
    _, out = compared
    root, samples = tiny_data
    folder = shutil.copytree(out / "unet-seed0", tmp_path / "unet-seed0")
    cfg = cmp.arch_config(tiny_base(), "unet", 0)
    splits = training_split(samples, "random", 0.2, 0.2, seed=0)
    trained_at = (folder / "last.pt").stat().st_mtime_ns
    run = Run.trained(folder, cfg, root, samples, CPU, splits)  # the same: reused as it is
    assert (run.path("last.pt").stat().st_mtime_ns == trained_at
            and run.path("metrics.json").exists())
    other = training_split(samples, "random", 0.2, 0.2, seed=1)  # the same images, dealt again
    run = Run.trained(folder, cfg, root, samples, CPU, other)
    saved = pd.read_csv(run.path("splits.csv")).sort_values("image_id", ignore_index=True)
    assert saved["split"].tolist() == other.sort_values("image_id")["split"].tolist()
    assert run.finished() and not run.path("metrics.json").exists()


def test_a_run_without_a_best_checkpoint_is_noted_not_fatal(compared, tiny_data, tmp_path):
    _, out = compared
    root, samples = tiny_data
    copy = shutil.copytree(out, tmp_path / "copy")
    for name in ("best.pt", "metrics.json"):
        (copy / "attention_unet-seed1" / name).unlink()
    table = cmp.compare(["unet", "attention_unet"], [1], tiny_base(), samples, root, copy, CPU)
    broken = table.set_index("arch").loc["attention_unet"]
    assert "no epoch beat chance" in broken["note"] and math.isnan(broken["test_dsb"])
    assert table.set_index("arch").loc["unet", "note"] == ""


def test_pruning_table_levels_grow_in_size(compared, tiny_data):
    _, out = compared
    _, samples = tiny_data
    run = Run.open(out / "unet++-seed0")
    val = run.split(samples)["val"]
    table = cmp.pruning_table(run, val, CPU)
    assert table["level"].tolist() == [1, 2, "all"]
    assert table["parameters"].is_monotonic_increasing
    assert table["gflops"].iloc[0] < table["gflops"].iloc[1] <= table["gflops"].iloc[2]
    assert table[["dsb", "dice"]].stack().between(0, 1).all()
    with pytest.raises(ValueError, match="deep-supervised"):
        cmp.pruning_table(Run.open(out / "unet-seed0"), val, CPU)


# --------------------------------------------------------------------------------------------
# The command line: benchmarks/compare_variants.py
# --------------------------------------------------------------------------------------------


def test_the_benchmark_script_prints_the_comparison(compared, tiny_data, tmp_path, monkeypatch,
                                                    capsys):
    """The script on the fixture's finished runs: same configuration, so nothing trains."""
    _, out = compared
    root, _ = tiny_data
    copy = shutil.copytree(out, tmp_path / "runs")
    script = tiny.load_script("benchmarks/compare_variants.py")
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))  # the cache goes there
    monkeypatch.setattr(Run, "train", lambda *a, **k: pytest.fail("a finished run trained"))
    overrides = [f"{k}={v}" for k, v in TINY.items()] + ["val_every=1"]
    table = script.main(["--data", str(root), "--out", str(copy), "--seeds", *map(str, SEEDS),
                         "--set", *overrides])
    printed = capsys.readouterr().out
    assert len(table) == len(ARCHS) * len(SEEDS)
    assert printed.startswith("device : cpu") and "beyond the seed spread" in printed
    assert (copy / "results.csv").is_file() and (copy / "summary.csv").is_file()
