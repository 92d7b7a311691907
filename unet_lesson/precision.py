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

CPUs: recent x86 server and desktop CPUs compute bf16 natively (the ``avx512_bf16`` and AMX
``amx_bf16`` instructions); so do ARM cores with the ``bf16`` feature. There, bf16 autocast
makes the convolutions of a U-Net training step about twice as fast; elsewhere torch emulates
bf16 in float32 arithmetic, slower than float32 itself. :func:`cpu_has_native_bf16` asks the
CPU which it is.

The rule (:func:`autocast_dtype`): on CUDA with ``amp`` on, bf16 where native, else fp16 with
a gradient scaler; on the CPU with ``amp_cpu`` on (the default), bf16 where the CPU computes it
natively, else float32; float32 otherwise (also on Apple's MPS). Training, validation and
prediction all call it, so they never disagree.

Not built in a notebook: notebook 10 shows which precision this rule picks on your device.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Mapping
from pathlib import Path

import torch

NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and newer compute bf16 in hardware
# the CPU features that compute bf16 natively: x86 (AVX-512 BF16, AMX) and ARM (BF16, SVE BF16)
CPU_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def native_bf16(features: Mapping[str, object]) -> bool:
    """Whether a CPU with these features (name -> present) computes bf16 natively: one of
    :data:`CPU_BF16_FEATURES` is present.

    Not built in a notebook: :func:`cpu_has_native_bf16` asks it.
    """
    return any(bool(features.get(name)) for name in CPU_BF16_FEATURES)


def cpu_features() -> dict[str, bool]:
    """This CPU's features, name -> present: torch's own detection
    (``torch.cpu.get_capabilities``, from the cpuinfo library, any operating system) where this
    torch has it, else the ``flags`` (x86) or ``Features`` (ARM) line of ``/proc/cpuinfo``
    (Linux), else none.

    Not built in a notebook: :func:`cpu_has_native_bf16` reads it.
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            return {k: bool(v) for k, v in capabilities().items() if isinstance(v, bool)}
        except RuntimeError:  # cpuinfo could not read this CPU: fall back to /proc/cpuinfo
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    return dict.fromkeys(features_of_cpuinfo(text), True)


def features_of_cpuinfo(text: str) -> set[str]:
    """The feature names of the first processor of a ``/proc/cpuinfo`` text (its ``flags``
    line on x86, ``Features`` on ARM).

    Not built in a notebook: :func:`cpu_features` parses with it.
    """
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (:func:`native_bf16` of :func:`cpu_features`);
    asked once, then remembered. False where it cannot tell (then float32 stays).

    Not built in a notebook: :func:`autocast_dtype` asks it.
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "aarch64", "arm64"):
        return False
    return native_bf16(cpu_features())


def autocast_dtype(device: torch.device, amp: bool = True, amp_cpu: bool = True
                   ) -> torch.dtype | None:
    """The 16-bit type for ``torch.autocast`` on ``device``, or ``None`` for float32.

    CUDA (``amp``): bf16 from compute capability 8.0, else fp16. CPU (``amp_cpu``): bf16 where
    the CPU computes it natively (:func:`cpu_has_native_bf16`), else float32.

    Used in notebooks 00 and 10.
    """
    device = torch.device(device)
    if device.type == "cuda" and amp:
        native = torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY
        return torch.bfloat16 if native else torch.float16
    if device.type == "cpu" and amp_cpu and cpu_has_native_bf16():
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


def _tf32_settings() -> tuple[list[tuple[object, str]], object]:
    """The switches of TensorFloat-32 and their value for IEEE float32: torch's new
    ``fp32_precision`` settings where this torch has them (mixing them with the legacy
    ``allow_tf32`` flags is an error there), else the legacy flags."""
    backends = torch.backends
    new = [(backends.cuda.matmul, "fp32_precision"),
           (getattr(backends.cudnn, "conv", None), "fp32_precision"),
           (getattr(backends.cudnn, "rnn", None), "fp32_precision")]
    if all(hasattr(owner, name) for owner, name in new):
        return new, "ieee"
    return [(backends.cuda.matmul, "allow_tf32"), (backends.cudnn, "allow_tf32")], False


@contextlib.contextmanager
def exact_fp32():
    """IEEE float32 while the block runs: TensorFloat-32 off for matrix products and cuDNN
    convolutions, every switch restored afterwards (also after an exception).

    CUDA GPUs from compute capability 8.0 compute float32 convolutions in TF32 by PyTorch's
    default (10 bits of mantissa: relative errors near 1e-3), so two float32 computations that
    should agree (tiles stitched by hand and ``predict_tiled``, channels-last or not) can
    differ by more than a tight tolerance there. Compare them inside this block. Nothing
    changes on a CPU or Apple's MPS.

    Used in notebook 10.
    """
    settings, exact = _tf32_settings()
    saved = [getattr(owner, name) for owner, name in settings]
    try:
        for owner, name in settings:
            setattr(owner, name, exact)
        yield
    finally:
        for (owner, name), value in zip(settings, saved, strict=True):
            setattr(owner, name, value)
