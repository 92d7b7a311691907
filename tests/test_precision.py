"""One precision rule for training and prediction, chosen from the device's capability."""

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


def test_cpu_and_mps_default_to_float32():
    cpu = torch.device("cpu")
    assert precision.autocast_dtype(cpu) is None
    assert precision.autocast_dtype(cpu, amp_cpu=True) == torch.bfloat16
    assert precision.autocast_dtype(torch.device("mps"), amp=True, amp_cpu=True) is None
    assert not precision.uses_loss_scaling(cpu, torch.bfloat16)
    assert not precision.grad_scaler(cpu, None).is_enabled()


def test_the_autocast_context_computes_in_that_type():
    x = torch.randn(4, 4)
    with precision.autocast(torch.device("cpu"), torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
    with precision.autocast(torch.device("cpu"), None):
        assert (x @ x).dtype == torch.float32
