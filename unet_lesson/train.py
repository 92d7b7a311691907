"""Training the U-Net: the loop, and only the loop, so a student can read it top to bottom.

:func:`fit` does, each epoch: draw random (augmented) training tiles, take optimiser steps
(:func:`train_one_epoch`), score the validation images with the Data Science Bowl metric, and
hand the epoch's row and a checkpoint state to ``on_epoch``. It knows no folder: a run
(:class:`unet_lesson.course.run.Run`) owns the folder and decides what is written; without
``on_epoch`` nothing is. Given a checkpoint state (``resume_from``), it continues exactly
where that state stopped: same weights, optimiser and scheduler state, random-number
generators and data order.

What a careful engineer expects is here and switchable in :class:`~unet_lesson.config.TrainConfig`:
mixed precision by the device's capability (:mod:`unet_lesson.precision`), channels_last,
optional ``torch.compile``, the paper's SGD with momentum 0.99 or AdamW, warm-up + cosine
learning-rate schedule, gradient clipping, DataLoader workers, quiet-in-CI progress bars, and a
hard stop when the loss diverges (NaN, infinite, or 100 times its first value).

Built in notebook 10: its loop by hand is checked against :func:`fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pandas as pd
import torch

from . import env
from .batches import (
    DeviceAugmentation,
    augments_on_device,
    tile_strata,
    train_loader,
    training_tiles,
)
from .checkpoint import checkpoint_state, rng_state, set_rng_state
from .config import TrainConfig
from .evaluate import chance_scores, validation_scores
from .losses import loss_function
from .networks import build_network
from .precision import autocast, autocast_dtype, grad_scaler

DIVERGENCE_FACTOR = 100.0  # a loss this many times its first value means training diverged


class OneProcess:
    """Training in this one process: what :func:`fit` does unless it is given the processes
    of a ``torchrun`` job (:class:`unet_lesson.course.distributed.Torchrun`, the same
    methods), which share each epoch's tiles and average their gradients.

    Not built in a notebook: :func:`fit`'s default.
    """

    rank, world_size, is_main = 0, 1, True

    def wrap(self, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return net  # one process: no gradients to average

    def mean(self, value: float, device: torch.device) -> float:
        return value

    def gather(self, value) -> list:
        return [value]

    def broadcast(self, value):
        return value

    def barrier(self) -> None:
        return None


def network_on_device(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The run's network (:func:`~unet_lesson.networks.build_network` of ``cfg.model``: the
    U-Net or another) on ``device``, channels_last when the config asks.

    Not built in a notebook: :func:`fit` calls it.
    """
    net = build_network(cfg.model).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def build_optimizer(cfg: TrainConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (the paper: "a high momentum (0.99)") or AdamW.

    Used in notebook 10.
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    """Linear warm-up over ``warmup_steps``, then cosine decay to 1% (or constant).

    Used in notebook 10.
    """
    warmup = min(cfg.warmup_steps, max(total_steps // 5, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(cfg: TrainConfig, world_size: int = 1) -> int:
    """Optimiser steps per epoch: ``tiles_per_epoch // batch_size``, at least 1 (per process,
    when ``world_size`` processes share the epoch's tiles).

    Not built in a notebook: :func:`fit` calls it.
    """
    return max(1, cfg.tiles_per_epoch // world_size // cfg.batch_size)


class DivergenceError(FloatingPointError):
    """The loss became NaN, infinite, or exploded: training stops before anything is saved.

    Not built in a notebook: :func:`check_loss` raises it (exercise 3 of notebook 10 provokes it).
    """


def check_loss(loss: torch.Tensor, reference: float | None, epoch: int, step: int, lr: float,
               cfg: TrainConfig) -> None:
    """Raise :class:`DivergenceError` if ``loss`` is not finite or exceeds
    ``DIVERGENCE_FACTOR`` times the run's first loss (``reference``). ``epoch`` and ``step``
    count from 0; the message counts from 1, as the history and the progress bar do.

    Not built in a notebook: :func:`train_one_epoch` calls it.
    """
    value = loss.item()
    exploded = reference is not None and value > DIVERGENCE_FACTOR * reference
    if math.isfinite(value) and not exploded:
        return
    why = f" (more than {DIVERGENCE_FACTOR:g}x the first loss, {reference:.3g})" if exploded \
        else ""
    raise DivergenceError(
        f"the loss became {value:.3g}{why} at epoch {epoch + 1}, step {step + 1} (lr={lr:.3g}); "
        f"training stopped and this epoch was not saved. Lower the learning rate (e.g. --set "
        f"lr={cfg.lr / 10:g}), keep gradient clipping on (grad_clip), or check the input data "
        f"for NaNs."
    )


def train_one_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, cfg: TrainConfig,
                    device: torch.device, epoch: int, step_net=None,
                    reference: float | None = None,
                    on_device: DeviceAugmentation | None = None) -> tuple[float, float]:
    """One pass over ``loader``; returns ``(mean training loss, reference loss)``.

    ``reference`` is the run's first loss (the divergence check compares with it); ``None``
    on the very first step, which then sets it. ``on_device``: augmentations and targets
    made on the device from each batch of windows.

    Not built in a notebook: :func:`fit` calls it; notebook 10 writes the same loop by hand.
    """
    net.train()
    step_net = step_net or net
    dtype = autocast_dtype(device, cfg.amp, cfg.amp_cpu)
    total, count = 0.0, 0
    bar = env.progress(loader, desc=f"epoch {epoch + 1}", leave=False)
    for step, batch in enumerate(bar):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if on_device is not None:
            batch = on_device(batch)
        images = batch["image"]  # (B, C, H_in, W_in)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            if cfg.model.deep_supervision:  # UNet++: the mean of every head's loss
                heads = step_net(images, all_heads=True)  # [(B, K, H_out, W_out), ...]
            else:
                heads = [step_net(images)]  # (B, K, H_out, W_out)
        loss = torch.stack([loss_fn(logits.float(), batch) for logits in heads]).mean()
        check_loss(loss, reference, epoch, step, scheduler.get_last_lr()[0], cfg)
        reference = loss.item() if reference is None else reference
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item() * len(images)
        count += len(images)
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2g}")
    return total / max(count, 1), reference


def best_so_far(row: dict, earlier: list[dict], chance: dict | None) -> bool:
    """Whether an epoch's row is the run's best: validated, better than ``chance`` on the DSB
    score or the pixel Dice (:func:`~unet_lesson.evaluate.chance_scores`; ``None``: no such
    floor), and ahead of every earlier such epoch by DSB score (ties: by Dice).

    Not built in a notebook: :func:`fit` calls it.
    """
    def key(r: dict):
        return (r["val_dsb"], r["val_dice"])

    def eligible(r: dict) -> bool:
        return r.get("val_dsb") is not None and (chance is None or r["val_dsb"] > chance[
            "val_dsb"] or r["val_dice"] > chance["val_dice"])

    return eligible(row) and all(key(row) > key(r) for r in earlier if eligible(r))


def fit(cfg: TrainConfig, train_set, val_set, *, device: torch.device | None = None,
        resume_from: dict | None = None,
        on_epoch: Callable[[dict, dict, bool], None] | None = None,
        until_epoch: int | None = None, time_limit_s: float | None = None,
        processes=None) -> pd.DataFrame:
    """Train on ``train_set``, validate on ``val_set``; returns the history (a row per epoch).

    ``on_epoch(row, state, is_best)`` is called after every epoch with the history row, the
    checkpoint state and whether the epoch is the best so far (:func:`best_so_far`).
    ``resume_from``: a checkpoint state to continue exactly. ``until_epoch``: stop after that
    epoch (0-based). ``time_limit_s``: stop after the epoch that passes this many seconds.
    ``processes``: :class:`OneProcess` (the default), or the processes of a ``torchrun`` job
    (:mod:`unet_lesson.course.distributed`): each trains on its share of the tiles; only the
    main one validates and gets ``on_epoch``.

    Used in notebook 10.
    """
    procs = processes or OneProcess()
    device = device or env.pick_device()
    env.seed_everything(cfg.seed)
    tiles = training_tiles(train_set, cfg)
    strata = tile_strata(train_set, cfg)  # whose equal shares an epoch's tiles are
    on_device = DeviceAugmentation(cfg, tiles) if augments_on_device(cfg) else None
    net = network_on_device(cfg, device)
    step_net = procs.wrap(net, device)  # every step goes through it (UNet++'s heads too)
    step_net = torch.compile(step_net) if cfg.compile else step_net
    optimizer = build_optimizer(cfg, net)
    scheduler = build_scheduler(cfg, optimizer,
                                steps_per_epoch(cfg, procs.world_size) * cfg.num_epochs)
    scaler = grad_scaler(device, autocast_dtype(device, cfg.amp, cfg.amp_cpu))
    loss_fn = loss_function(cfg)
    scored = val_set[: cfg.val_max_images] if cfg.val_max_images else val_set
    chance = chance_scores(scored) if cfg.best_above_chance else None
    history, start, reference = [], 0, None
    if resume_from is not None:
        for part, name in [(net, "model"), (optimizer, "optimizer"), (scheduler, "scheduler"),
                           (scaler, "scaler")]:
            part.load_state_dict(resume_from[name])
        history, start = list(resume_from["history"]), resume_from["epoch"] + 1
        reference = resume_from.get("reference_loss")
        rngs = resume_from.get("rng_per_rank", [resume_from["rng"]])
        set_rng_state(rngs[procs.rank % len(rngs)])
    started = time.perf_counter()
    stop = min(cfg.num_epochs, until_epoch + 1 if until_epoch is not None else cfg.num_epochs)
    for epoch in range(start, stop):
        epoch_start = time.perf_counter()
        if on_device is not None:
            on_device.set_epoch(epoch)
        loader = train_loader(tiles, cfg, epoch, device, procs.rank, procs.world_size, strata)
        train_loss, reference = train_one_epoch(
            net, loader, loss_fn, optimizer, scheduler, scaler, cfg, device, epoch, step_net,
            reference, on_device)
        row = {"epoch": epoch + 1, "train_loss": procs.mean(train_loss, device),
               "lr": scheduler.get_last_lr()[0], "val_dice": None, "val_dsb": None}
        validate = (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.num_epochs
        if validate and procs.is_main:
            row.update(validation_scores(net, val_set, cfg, device))
        row["seconds"] = round(time.perf_counter() - epoch_start, 2)
        is_best = best_so_far(row, history, chance)
        history.append(row)
        rngs = procs.gather(rng_state())  # every process's, for an exact resume
        if on_epoch is not None and procs.is_main:
            on_epoch(row, checkpoint_state(net, optimizer, scheduler, scaler, cfg, epoch,
                                           history, reference, rngs), is_best)
        out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
        procs.barrier()  # the others wait for the main process's validation and writes
        if procs.broadcast(out_of_time):  # the main process's clock decides for all
            break
    return pd.DataFrame(history)
