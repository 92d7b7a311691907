"""Notebooks 10-12 sized to one session: the configurations per mode live in the package, and
the GPU mode of each main notebook fits half an hour on Colab's T4 by the FLOP-counted
estimate."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from unet_lesson.config import differences, preset
from unet_lesson.course import budget, experiments, lessons
from unet_lesson.networks import build_network
from unet_lesson.predict import predict_image


def test_the_gpu_mode_of_each_main_notebook_fits_half_an_hour_on_a_t4():
    for notebook in budget.MAIN_NOTEBOOKS:
        minutes = budget.estimate_minutes(notebook, "gpu", "T4")
        print(f"notebook {notebook}, GPU mode on a T4: {minutes:.1f} min (A100: "
              f"{budget.estimate_minutes(notebook, 'gpu', 'A100'):.1f} min)")
        assert 1 < minutes <= budget.GPU_BUDGET_MIN, notebook
    for bonus in ("11b", "12b"):  # what did not fit: the optional notebooks, estimated too
        assert budget.estimate_minutes(bonus, "gpu", "T4") > budget.GPU_BUDGET_MIN


def test_the_cpu_estimate_agrees_with_the_measured_notebooks():
    """The CPU line is calibrated on notebook 10 alone; notebook 11's measured CPU time (nine
    runs, five group splits and two arms) checks the model within 25 %, and notebook 12's
    (four networks, two seeds) is not under-estimated: the rough line errs on the long side."""
    measured = {(t["notebook"], t["mode"]): t["minutes"] for t in budget.measured_times()}
    assert budget.estimate_minutes("10", "cpu", "cpu") == pytest.approx(measured["10", "cpu"],
                                                                        rel=0.1)
    assert budget.estimate_minutes("11", "cpu", "cpu") == pytest.approx(measured["11", "cpu"],
                                                                        rel=0.25)
    assert budget.estimate_minutes("12", "cpu", "cpu") >= measured["12", "cpu"]


def test_training_time_is_three_forward_passes_of_the_counted_flops():
    cfg = preset("practical", base_channels=4, depth=2, tile_size=32, batch_size=4,
                 tiles_per_epoch=8, num_epochs=2, num_workers=0)
    net = build_network(cfg.model).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, 32, 32))  # a real forward pass
    hw = budget.Hardware("test GPU", 1e-3, "fp32", 0.5, 2, "test")  # 0.5 GFLOP/s
    seconds = budget.job_seconds(budget.Job("t", cfg, scoring=None), hw)
    steps = 2 * (8 // 4)
    passes, per_pass = 2, round(0.15 * budget.DSB_IMAGES)
    train = 3 * counter.get_total_flops() * steps * 4 / 0.5e9
    predict = budget.predict_flops(cfg) * passes * per_pass / 0.5e9
    assert seconds["gpu"] == pytest.approx(train + predict)


@pytest.mark.parametrize("padding, size, tile", [("same", (256, 320), 512),
                                                 ("same", (300, 400), 128),
                                                 ("valid", (360, 360), 100)])
def test_prediction_flops_are_those_of_the_tiles_predicted(padding, size, tile, monkeypatch):
    """predict_flops against FlopCounterMode around the package's own prediction: one pass,
    overlapping tiles, tiles with mirrored context."""
    model = dict(base_channels=4, depth=2, padding=padding, predict_tile=tile)
    cfg = preset("practical" if padding == "same" else "paper", **model)
    monkeypatch.setattr(budget, "DSB_SIZES", {size: 1})
    net = build_network(cfg.model).eval()
    image = (torch.rand(*size, 3) * 255).to(torch.uint8).numpy()
    with FlopCounterMode(display=False) as counter:
        predict_image(net, image, cfg, torch.device("cpu"))
    assert budget.predict_flops(cfg) == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_every_configuration_is_the_package_s_for_each_mode():
    for mode in ("fast", "cpu", "gpu"):
        practical = lessons.course_config("practical", mode=mode)
        versus = lessons.versus_configs(mode=mode)
        assert [c.seed for c in versus["paper"]] == list(lessons.VERSUS_SEEDS[mode])
        assert not differences(versus["practical"][0], practical), "notebook 10's run reused"
        assert lessons.loop_config(practical, mode=mode).num_workers == 0
        shift, splits = lessons.shift_config(mode=mode)
        assert splits == lessons.SHIFT_SPLITS[mode] and shift.split == "group"
        assert not differences(shift, practical), "notebook 10's run is split 0"
        plan, full = lessons.comparison_plan(mode=mode), lessons.comparison_plan(mode=mode,
                                                                                 full=True)
        assert plan.archs == full.archs == ("unet", "unet++", "attention_unet", "ternausnet11")
        assert len(full.seeds) == (1 if mode == "fast" else 3)
        claims = experiments.claims_plan(mode=mode)
        assert claims["base"].loss == "weighted_ce" and len(claims["seeds"]) >= 2
    gpu = lessons.course_config("practical", mode="gpu")
    assert gpu.augment_on_device and gpu.num_workers >= 1
    assert experiments.claims_plan(mode="gpu")["seeds"] == [0, 1, 2, 3, 4]  # p = 0.008 reachable
    with pytest.raises(ValueError, match="mode"):
        lessons.course_config("practical", mode="tpu")


def test_notebook_jobs_count_every_run(monkeypatch):
    jobs = budget.notebook_jobs("11", "gpu")  # notebook 10's run is seed 0 and split 0
    assert [job.runs for job in jobs] == [1, 2, 4, 3]
    assert [job.config.loss for job in jobs] == ["ce_dice"] * 3 + ["weighted_ce"]
    claims = budget.notebook_jobs("11b", "gpu")
    assert len(claims) == 5 and {job.runs for job in claims} == {5}  # 5 arms x 5 seeds
    comparison = budget.notebook_jobs("12", "cpu")
    assert comparison[0].max_side == 360 and comparison[0].images == math.ceil(482 / 2)
    with pytest.raises(ValueError, match="notebook must be one of"):
        budget.notebook_jobs("13", "gpu")


def test_measured_times_are_recorded_and_shown(tmp_path, monkeypatch, capsys):
    path = tmp_path / "timings.json"
    budget.record_time("10", "cpu", "laptop", 7.04, "by hand", path=path)
    budget.record_time("10", "cpu", "laptop", 6.0, "again", path=path)  # replaces
    budget.record_time("10", "gpu", "NVIDIA H200", 1.26, "gpu_acceptance", path=path)
    times = budget.measured_times(path)
    assert [(t["mode"], t["hardware"], t["minutes"]) for t in times] == [
        ("cpu", "laptop", 6.0), ("gpu", "NVIDIA H200", 1.3)]
    table = budget.budget_table("10", times)
    assert list(table["mode"]) == ["cpu", "gpu", "gpu", "gpu"]
    assert table["how"].iloc[0].startswith("measured")
    assert table["how"].iloc[1].startswith("estimated: FLOPs at 10% of 65 TFLOP/s (fp16)")
    assert table["hardware"].iloc[-1] == "NVIDIA H200"
    with pytest.raises(ValueError, match="notebook must be one of"):
        budget.record_time("13", "cpu", "laptop", 1.0, "x", path=path)
    monkeypatch.setattr(budget, "measured_times", lambda: times)
    budget.print_budget("10", torch.device("cpu"))
    out = capsys.readouterr().out
    assert "notebook 10" in out and "T4 (Colab, free)" in out and "A100" in out
