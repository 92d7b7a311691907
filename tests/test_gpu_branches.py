"""The GPU branches that can be checked without a GPU: exact float32 for comparisons (TF32
off), and UNet++'s heads going through the training step's module (what torch.compile and
DDP wrap)."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_config, tiny_set

from unet_lesson import precision
from unet_lesson.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _values(settings):
    return [getattr(owner, name) for owner, name in settings]


def test_exact_fp32_turns_tf32_off_and_restores_every_switch():
    settings, exact = precision._tf32_settings()
    before = _values(settings)
    with precision.exact_fp32():
        assert _values(settings) == [exact] * len(settings)
    assert _values(settings) == before
    with pytest.raises(KeyError), precision.exact_fp32():  # restored after an error too
        raise KeyError("inside")
    assert _values(settings) == before
    if exact == "ieee":  # torch's new settings: the legacy flags still read after the block
        assert isinstance(torch.backends.cudnn.allow_tf32, bool)


def test_exact_fp32_with_the_legacy_flags(monkeypatch):
    """torch releases without the fp32_precision settings: the allow_tf32 flags."""
    class Flags:
        allow_tf32 = True

    matmul, cudnn = Flags(), Flags()
    monkeypatch.setattr(precision, "_tf32_settings",
                        lambda: ([(matmul, "allow_tf32"), (cudnn, "allow_tf32")], False))
    with precision.exact_fp32():
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
    assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)


def test_unet_plus_plus_heads_go_through_the_compiled_step(tmp_path, monkeypatch):
    """fit compiles the step's module; every training step of a deep-supervised UNet++ must
    call it (with all_heads=True), so compile and DDP see the heads."""
    calls = []

    def spy_compile(module, *args, **kwargs):
        def compiled(*inputs, **options):
            calls.append(options)
            return module(*inputs, **options)
        return compiled

    monkeypatch.setattr(torch, "compile", spy_compile)
    cfg = tiny_config(arch="unet++", deep_supervision=True, compile=True)
    _, samples = tiny_set(tmp_path / "tiny", seed=2)
    history = fit(cfg, samples[:6], samples[6:8], device=torch.device("cpu"))
    steps = cfg.num_epochs * (cfg.tiles_per_epoch // cfg.batch_size)
    assert len(history) == cfg.num_epochs
    assert calls == [{"all_heads": True}] * steps
