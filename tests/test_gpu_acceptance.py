"""The GPU acceptance command runs end to end on the CPU at tiny size and writes its record."""

import json
from pathlib import Path

import pytest
from tiny import load_script


@pytest.fixture(scope="module")
def acceptance():
    return load_script("benchmarks/gpu_acceptance.py")


def test_the_tiny_run_measures_everything_it_reports(acceptance, tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")
    out = tmp_path / "acceptance.json"
    results = acceptance.main(["--tiny", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    from unet_lesson.precision import cpu_has_native_bf16

    cpu_amp = "bf16" if cpu_has_native_bf16() else "fp32"  # the rule: bf16 where native
    assert results["environment"]["precision rule"] == cpu_amp
    rows = results["throughput"]
    assert [r["variant"] for r in rows] == ["fp32 eager", "channels_last",
                                            "channels_last + amp"]
    for row in rows:
        assert row["images_per_s"] > 0 and row["gflops_per_image"] > 0
        assert row["mfu"] is None  # no datasheet peak for a CPU: never a made-up number
    assert rows[2]["precision"] == cpu_amp  # amp on a CPU: bf16 autocast where native
    training = results["training"]
    assert training["epochs"] >= 1 and 0.0 <= training["val_dsb"] <= 1.0
    assert {"val_dsb", "test_dsb", "seconds_per_epoch", "best_epoch"} <= set(training)


def test_flops_are_counted_not_guessed(acceptance):
    """FlopCounterMode's count for one 3x3 convolution is 2 * k * k * C_in * C_out * H * W."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    with FlopCounterMode(display=False) as counter:
        conv(torch.zeros(1, 3, 16, 16))
    assert counter.get_total_flops() == 2 * 3 * 3 * 3 * 8 * 16 * 16


def test_the_peak_table_follows_the_precision(acceptance, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    cuda = torch.device("cuda")
    assert acceptance.peak_tflops(cuda, torch.bfloat16) == (989.4, "bf16")
    assert acceptance.peak_tflops(cuda, None) == (494.7, "tf32")  # cudnn.allow_tf32 default
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert acceptance.peak_tflops(cuda, torch.float16) == (65.0, "fp16")
    assert acceptance.peak_tflops(cuda, None) == (8.1, "fp32")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Mystery GPU")
    assert acceptance.peak_tflops(cuda, None)[0] is None


def test_the_time_boxed_run_sizes_its_epochs_from_the_measured_rate(acceptance):
    # 5.3 images/s for 3 minutes: a tenth of the box is 95 tiles, 92 in whole batches of 4
    assert acceptance.epoch_tiles(5.3, 3.0, 4) == 92
    assert acceptance.epoch_tiles(5000.0, 4.0, 32) == 4000  # a fast GPU keeps its size
    assert acceptance.epoch_tiles(0.01, 1.0, 8) == 8  # never less than one batch
    assert acceptance.epoch_tiles(None, 4.0, 32) == 4000  # not measured: the GPU size


def test_the_rate_used_is_the_one_of_the_runs_own_step(acceptance, monkeypatch):
    import torch

    from unet_lesson import precision
    from unet_lesson.config import apply_overrides, preset

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)  # a CPU with bf16

    rows = [{"width": 32, "variant": "channels_last", "images_per_s": 2.0},
            {"width": 32, "variant": "channels_last + amp", "images_per_s": 5.3},
            {"width": 64, "variant": "channels_last + amp", "images_per_s": 1.4}]
    cpu = torch.device("cpu")
    fp32 = apply_overrides(preset("practical"), ["amp_cpu=false"])
    bf16 = apply_overrides(preset("practical"), ["amp_cpu=true"])
    assert acceptance.measured_rate(rows, fp32, cpu) == 2.0
    assert acceptance.measured_rate(rows, bf16, cpu) == 5.3
    wide = apply_overrides(preset("practical"), ["amp_cpu=true", "base_channels=64"])
    assert acceptance.measured_rate(rows, wide, cpu) == 1.4
    assert acceptance.measured_rate(rows, apply_overrides(fp32, ["compile=true"]), cpu) is None


def test_the_notebooks_step_runs_a_notebook_for_real_under_tiny(acceptance, tmp_path):
    """--tiny executes notebook 00 in fast mode (10-12 are too long for a test), timed."""
    out = tmp_path / "nb.json"
    results = acceptance.main(["--tiny", "--notebooks", "--notebooks-only", "--out", str(out)])
    notebooks = json.loads(out.read_text())["notebooks"]
    assert notebooks == results["notebooks"]
    assert notebooks["asked"] == ["10", "11", "12"] and notebooks["mode"] == "fast"
    assert notebooks["00"]["ok"], notebooks["00"]["error"]
    assert notebooks["00"]["notebook"] == "00_welcome_and_setup.ipynb"
    assert 0 < notebooks["00"]["seconds"] < 600
    assert "throughput" not in results  # --notebooks-only


def test_the_notebooks_step_runs_10_to_12_on_the_data_and_records_them(acceptance, tmp_path,
                                                                      monkeypatch):
    import time_notebooks

    from unet_lesson.course import budget

    data = tmp_path / "compact" / "stage1_train"
    for image_id in ("a", "b"):
        (data / image_id / "images").mkdir(parents=True)
    ran = []

    def fake_execute(path, timeout=7200.0, environ=None):
        seen = Path(environ["UNET_LESSON_DATA"]) / "dsb2018" / "stage1_train"
        ran.append((path.name[:2], seen.resolve() == data.resolve(),
                    "UNET_LESSON_FAST" in environ, environ["UNET_LESSON_RUNS"]))
        return {"notebook": path.name, "seconds": 90.0, "ok": True, "error": ""}

    monkeypatch.setattr(time_notebooks, "execute", fake_execute)
    monkeypatch.setattr(budget, "timings_path", lambda: tmp_path / "timings.json")
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")
    monkeypatch.delenv("UNET_LESSON_FAST", raising=False)
    results = acceptance.main(["--data", str(data), "--notebooks", "--notebooks-only",
                               "--record-times", "--out", str(tmp_path / "gpu.json")])
    assert [r[:3] for r in ran] == [("10", True, False), ("11", True, False),
                                    ("12", True, False)]
    assert len({r[3] for r in ran}) == 1 and not ran[0][3].startswith(str(Path.cwd()))
    assert results["notebooks"]["mode"] == "cpu"
    recorded = budget.measured_times(tmp_path / "timings.json")
    assert [(t["notebook"], t["mode"], t["minutes"]) for t in recorded] == [
        ("10", "cpu", 1.5), ("11", "cpu", 1.5), ("12", "cpu", 1.5)]
    assert recorded[0]["how"] == "gpu_acceptance.py --notebooks, data: 2 images of stage1_train"
    with pytest.raises(SystemExit):
        acceptance.main(["--notebooks-only", "--out", str(tmp_path / "x.json")])
