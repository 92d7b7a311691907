"""Mixed precision: one rule for training and prediction, chosen from what the device has.

Half-precision arithmetic (16-bit floats) roughly halves memory traffic and, on hardware that
has it, multiplies matrix throughput. Two 16-bit formats exist:

* **bf16** (bfloat16) keeps float32's exponent range, so gradients do not underflow and no
  loss scaling is needed. NVIDIA GPUs compute it natively from compute capability 8.0
  (Ampere: A100, RTX 30xx, and newer). Older GPUs (Colab's free T4 is 7.5, V100 is 7.0)
  *emulate* it slowly, although ``torch.cuda.is_bf16_supported()`` answers True there by
  default (``including_emulation=True``), which is why we read the capability instead.
* **fp16** (float16) is native on every CUDA GPU of the last decade, but its small range makes
  small gradients underflow to zero: it needs a ``GradScaler``, which multiplies the loss
  before ``backward`` and divides the gradients before the optimiser step.

The rule (:func:`autocast_dtype`): on CUDA with ``amp`` on, bf16 where native, else fp16 with
a gradient scaler; on the CPU bf16 only when asked (``amp_cpu``: fast on CPUs with native
bf16, slow emulation elsewhere); float32 otherwise (also on Apple's MPS). Training, validation
and prediction all call it, so they never disagree.

Not built in a notebook: notebook 10 shows which precision this rule picks on your device.
"""

from __future__ import annotations

import contextlib

import torch

NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and newer compute bf16 in hardware


def autocast_dtype(device: torch.device, amp: bool = True, amp_cpu: bool = False
                   ) -> torch.dtype | None:
    """The 16-bit type for ``torch.autocast`` on ``device``, or ``None`` for float32.

    Used in notebooks 00 and 10.
    """
    device = torch.device(device)
    if device.type == "cuda" and amp:
        native = torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY
        return torch.bfloat16 if native else torch.float16
    if device.type == "cpu" and amp_cpu:
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``device`` in ``dtype``, or a no-op context for float32.

    Used in notebook 10.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def uses_loss_scaling(device: torch.device, dtype: torch.dtype | None) -> bool:
    """fp16 on CUDA needs loss scaling; bf16 and float32 do not.

    Not built in a notebook: :func:`grad_scaler` asks it.
    """
    return torch.device(device).type == "cuda" and dtype == torch.float16


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A ``GradScaler`` that scales only where it is needed (:func:`uses_loss_scaling`).

    Not built in a notebook: training (:func:`~unet_lesson.train.fit`).
    """
    device = torch.device(device)
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu",
                                enabled=uses_loss_scaling(device, dtype))


def describe(dtype: torch.dtype | None) -> str:
    """``"bf16"``, ``"fp16 with loss scaling"`` or ``"fp32"``: for the notebooks and logs.

    Used in notebooks 00 and 10.
    """
    return {torch.bfloat16: "bf16", torch.float16: "fp16 with loss scaling"}.get(dtype, "fp32")
