"""One precision rule for training and prediction, chosen from the device's capability."""

from pathlib import Path

import pytest
import torch

from unet_lesson import precision


@pytest.mark.parametrize(("capability", "dtype", "scaled"), [
    ((7, 5), torch.float16, True),  # T4 (Colab's free GPU): bf16 only emulated
    ((7, 0), torch.float16, True),  # V100
    ((8, 0), torch.bfloat16, False),  # A100
    ((9, 0), torch.bfloat16, False),  # H100 / H200
])
def test_cuda_gets_bf16_only_where_native(monkeypatch, capability, dtype, scaled):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert precision.autocast_dtype(cuda) == dtype
    assert precision.uses_loss_scaling(cuda, dtype) is scaled
    assert precision.autocast_dtype(cuda, amp=False) is None  # fp32 on request
    assert precision.describe(dtype) == ("fp16 with loss scaling" if scaled else "bf16")


@pytest.mark.parametrize("native", [True, False])
def test_the_cpu_gets_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert precision.autocast_dtype(cpu) == (torch.bfloat16 if native else None)
    assert precision.autocast_dtype(cpu, amp_cpu=False) is None  # fp32 on request
    assert precision.autocast_dtype(torch.device("mps"), amp=True, amp_cpu=True) is None
    assert not precision.uses_loss_scaling(cpu, torch.bfloat16)
    assert not precision.grad_scaler(cpu, None).is_enabled()


@pytest.mark.parametrize("native", [True, False])
def test_the_configs_follow_the_rule_and_amp_cpu_false_keeps_fp32(monkeypatch, native):
    from unet_lesson.config import apply_overrides, preset

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    laptop = preset("laptop")
    assert laptop.amp_cpu is True
    assert precision.autocast_dtype(cpu, laptop.amp, laptop.amp_cpu) == \
        (torch.bfloat16 if native else None)
    fp32 = apply_overrides(laptop, ["amp_cpu=false"])
    assert precision.autocast_dtype(cpu, fp32.amp, fp32.amp_cpu) is None


@pytest.mark.parametrize(("features", "native"), [
    ({"avx512_bf16": True, "avx2": True}, True),  # Intel Cooper Lake+, AMD Zen 4+
    ({"amx_bf16": True}, True),  # Intel Sapphire Rapids+
    ({"avx512_bf16": False, "avx512_f": True, "avx2": True}, False),  # AVX-512 without BF16
    ({"bf16": True, "neon": True}, True),  # ARMv8.6 (Graviton 3, Apple M2)
    ({"neon": True}, False),
    ({}, False),
])
def test_native_bf16_is_read_from_the_cpu_features(features, native):
    assert precision.native_bf16(features) is native


def test_cpuinfo_lines_are_parsed_on_x86_and_arm():
    x86 = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n" \
          "processor\t: 1\nflags\t\t: fpu\n"
    assert precision.features_of_cpuinfo(x86) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n"
    assert "bf16" in precision.features_of_cpuinfo(arm)
    assert precision.features_of_cpuinfo("processor : 0\n") == set()


@pytest.mark.parametrize(("machine", "features", "native"), [
    ("x86_64", {"avx512_bf16": True}, True), ("x86_64", {"avx2": True}, False),
    ("aarch64", {"bf16": True}, True), ("ppc64le", {"bf16": True}, False),
])
def test_the_answer_is_asked_once_and_only_on_known_machines(monkeypatch, machine, features,
                                                              native):
    import platform

    calls = []
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(precision, "cpu_features", lambda: calls.append(1) or features)
    precision.cpu_has_native_bf16.cache_clear()
    try:
        assert precision.cpu_has_native_bf16() is native
        assert precision.cpu_has_native_bf16() is native
        assert len(calls) <= 1  # cached
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_this_cpus_features_come_from_torch_or_proc_cpuinfo():
    features = precision.cpu_features()
    assert all(isinstance(v, bool) for v in features.values())
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = precision.features_of_cpuinfo(text)
    for name in precision.CPU_BF16_FEATURES:  # both sources agree where both exist
        if name in flags and name in features:
            assert features[name]


def test_the_autocast_context_computes_in_that_type():
    x = torch.randn(4, 4)
    with precision.autocast(torch.device("cpu"), torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
    with precision.autocast(torch.device("cpu"), None):
        assert (x @ x).dtype == torch.float32
