"""The cost of a network, measured the same way for every one: parameters, FLOPs, memory,
inference and training-step time.

Costs, each measured the same way for every network (:func:`model_costs`):

* ``parameters``: trainable parameters (:func:`~unet_lesson.networks.count_parameters`);
* ``gflops``: floating-point operations (multiply and add counted separately, so 2 x the
  multiply-adds of notebook 06) of one forward pass of one 256x256 image, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; batch
  norm, ReLU and pooling are not counted, they are a few percent);
* ``activation_mib``: the bytes autograd keeps for the backward pass of one training batch
  (``batch_size`` tiles of ``tile_size``, float32 without autocast; UNet++ with all its
  heads), summed over the saved tensors (:func:`activation_bytes`). It is the part of
  training memory that grows with the batch, and it is the same on every device (mixed
  precision would about halve it); on CUDA ``peak_mib`` adds the true peak
  (``torch.cuda.max_memory_allocated`` over the same step: weights, gradients and workspace
  too). A CPU has no such counter: the process's maximum RSS never goes down, so it cannot
  tell one network's step from the one before;
* ``infer_ms``: milliseconds for one 256x256 tile in eval mode (the fastest of a few repeats,
  after a warm-up), in the run's precision;
* ``step_ms``: milliseconds of one training step (forward, backward, AdamW update) on one
  batch, measured the same way (:func:`train_step_ms`). A run's own wall-clock time
  (``train_s``) is recorded too, but it also counts whatever else the machine was doing.

Used in notebook 12 (beyond the U-Net), directly and through :mod:`.compare`.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from .. import env
from ..config import TrainConfig
from ..networks import UNetConfig, build_network, count_parameters
from ..precision import autocast, autocast_dtype
from ..train import build_optimizer, network_on_device

COST_SIZE = 256  # FLOPs and inference time are for one COST_SIZE x COST_SIZE image
MIB = 2**20




def count_flops(model_config: UNetConfig, size: int = COST_SIZE) -> int:
    """FLOPs of one forward pass of one ``size`` x ``size`` image (eval mode; UNet++ with
    every head), counted by ``FlopCounterMode`` on the meta device (shapes only: instant, no
    memory, no weights downloaded).

    Used in notebook 12.
    """
    cfg = replace(model_config, pretrained=False)  # the weights change no count: none fetched
    with torch.device("meta"):
        net = build_network(cfg).eval()
        x = torch.empty(1, cfg.in_channels, size, size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return int(counter.get_total_flops())


def _forward_backward(net, images: torch.Tensor, deep_supervision: bool) -> None:
    heads = net(images, all_heads=True) if deep_supervision else [net(images)]
    torch.stack([h.float().mean() for h in heads]).sum().backward()


def activation_bytes(net: torch.nn.Module, images: torch.Tensor,
                     deep_supervision: bool = False) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one training step on
    ``images`` (``torch.autograd.graph.saved_tensors_hooks``): every storage counted once
    (views and in-place results share one), the network's own weights left out.

    Not built in a notebook: :func:`model_costs` calls it.
    """
    weights = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _forward_backward(net, images, deep_supervision)
    net.zero_grad(set_to_none=True)
    return sum(seen.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def inference_ms(net: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 size: int = COST_SIZE, repeats: int = 5, max_seconds: float = 2.0) -> float:
    """Milliseconds to predict one ``size`` x ``size`` tile: eval mode, no gradients, the
    run's precision; the fastest of ``repeats`` passes after one warm-up (fewer, at least one,
    once ``max_seconds`` have passed: a large network on a slow CPU).

    Not built in a notebook: :func:`unet_lesson.course.compare.compare` calls it.
    """
    net.eval()
    x = torch.rand(1, net.config.in_channels, size, size, device=device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, cfg.amp, cfg.amp_cpu)
    with torch.inference_mode(), autocast(device, dtype):
        return _fastest_ms(lambda: net(x), device, repeats, max_seconds)


def train_step_ms(net: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                  repeats: int = 3, max_seconds: float = 10.0) -> float:
    """Milliseconds of one training step on one batch of ``cfg`` (``batch_size`` tiles of
    ``tile_size``): forward (UNet++: every head), backward and the optimiser's update, in
    the run's precision; the fastest of ``repeats`` steps after one warm-up (fewer, at least
    one, once ``max_seconds`` have passed). Unlike a run's wall-clock time, it does not
    depend on what else the machine was doing while the runs trained. The weights of ``net``
    change (the steps are real): time a copy you no longer need.

    Not built in a notebook: :func:`model_costs` calls it.
    """
    m = cfg.model
    batch = torch.rand(cfg.batch_size, m.in_channels, cfg.tile_size, cfg.tile_size,
                       device=device)
    if cfg.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, net)
    dtype = autocast_dtype(device, cfg.amp, cfg.amp_cpu)
    net.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            _forward_backward(net, batch, m.deep_supervision)
        optimizer.step()

    ms = _fastest_ms(step, device, repeats, max_seconds)
    net.zero_grad(set_to_none=True)
    return ms


def _fastest_ms(fn, device: torch.device, repeats: int, max_seconds: float) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call, in milliseconds
    (fewer calls, at least one after the warm-up, once ``max_seconds`` have passed)."""
    times = []
    started = time.perf_counter()
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if len(times) > 1 and time.perf_counter() - started > max_seconds:
            break
    return 1000 * min(times[1:])


def model_costs(cfg: TrainConfig, device: torch.device | None = None) -> dict:
    """Parameters, FLOPs, training memory and inference time of ``cfg``'s network, and where
    its encoder's weights came from (see the module's docstring for each measure).

    Not built in a notebook: :func:`unet_lesson.course.compare.compare` calls it.
    """
    device = device or env.pick_device()
    env.seed_everything(cfg.seed)
    net = network_on_device(cfg, device)  # as training builds it (channels_last if asked)
    m = cfg.model
    batch = torch.rand(cfg.batch_size, m.in_channels, cfg.tile_size, cfg.tile_size,
                       device=device)
    if cfg.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    peak = math.nan
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        net.train()
        _forward_backward(net, batch, m.deep_supervision)
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / MIB
        net.zero_grad(set_to_none=True)
    activations = activation_bytes(net, batch, m.deep_supervision) / MIB
    encoder = getattr(net, "encoder_weights", "random (He)")
    if m.pretrained and encoder.startswith("random"):
        encoder = "random (He): VGG11 ImageNet weights not reachable here"
    return {"parameters": count_parameters(net), "gflops": count_flops(m) / 1e9,
            "activation_mib": activations, "peak_mib": peak,
            "infer_ms": inference_ms(net, cfg, device),
            "step_ms": train_step_ms(net, cfg, device),  # last: it changes the weights
            "encoder": encoder}
