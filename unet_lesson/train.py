"""Training the U-Net on the Data Science Bowl: a loop a student can read top to bottom.

:func:`fit` does, each epoch: draw random (augmented) training tiles, take optimiser steps,
score the held-out images with the Data Science Bowl metric, append a row to the history
(``history.csv``), and write ``last.pt`` (and ``best.pt`` when the validation score improved).
With ``resume=True`` it continues from ``last.pt`` exactly where it stopped: same weights,
optimiser and scheduler state, random-number generators and data order.

What a careful engineer expects is here and switchable in :class:`~unet_lesson.config.TrainConfig`:
the device chosen automatically, mixed precision on CUDA (bf16 where supported), channels_last,
optional ``torch.compile``, the paper's SGD with momentum 0.99 or Adam, warm-up + cosine
learning-rate schedule, gradient clipping, DataLoader workers, quiet-in-CI progress bars, and
a hard stop on a NaN or infinite loss.
"""

from __future__ import annotations

import contextlib
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler

from . import env, instances, losses, weights
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, from_dict
from .data import (
    Augment,
    TileDataset,
    dataset_table,
    default_split_path,
    load_dsb_folder,
    make_splits,
)
from .evaluate import PostProcess, predict_samples, score_samples
from .model import UNet


def build_model(cfg: TrainConfig, device: torch.device) -> UNet:
    net = UNet(**vars(cfg.model_config())).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def build_optimizer(cfg: TrainConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":  # the paper: "a high momentum (0.99)"
        return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    """Linear warm-up over ``warmup_steps``, then cosine decay to 1% (or constant)."""
    warmup = min(cfg.warmup_steps, max(total_steps // 5, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_for(cfg: TrainConfig, device: torch.device):
    """The autocast context for this config and device (or a no-op)."""
    if device.type == "cuda" and cfg.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cfg.amp_cpu:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_fp16_scaler(cfg: TrainConfig, device: torch.device) -> bool:
    """fp16 (older GPUs) needs loss scaling; bf16 and fp32 do not."""
    return device.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training stops before anything bad is saved."""


def train_one_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, cfg: TrainConfig,
                    device: torch.device, epoch: int, step_net=None) -> float:
    """One pass over ``loader``; returns the mean training loss."""
    net.train()
    step_net = step_net or net
    total, count = 0.0, 0
    bar = env.progress(loader, desc=f"epoch {epoch}", leave=False)
    for step, batch in enumerate(bar):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        images = batch["image"]  # (B, C, H_in, W_in)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_for(cfg, device):
            logits = step_net(images)  # (B, K, H_out, W_out)
        loss = loss_fn(logits.float(), batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss became {loss.item()} at epoch {epoch}, step {step} (learning rate "
                f"{scheduler.get_last_lr()[0]:.3g}); training stopped and this epoch was not "
                f"saved. Lower the learning rate (e.g. --set lr={cfg.lr / 10:g}), keep gradient "
                f"clipping on (grad_clip), or check the input data for NaNs."
            )
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
    return total / max(count, 1)


def _write_history(history: list[dict], out_dir: Path) -> None:
    tmp = out_dir / ".history.csv.tmp"
    pd.DataFrame(history).to_csv(tmp, index=False)
    tmp.replace(out_dir / "history.csv")


def _checkpoint_state(net, optimizer, scheduler, scaler, cfg, epoch, history, extra) -> dict:
    return {
        "model": net.state_dict(), "model_config": vars(cfg.model_config()),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "epoch": epoch, "train_config": cfg.to_dict(),
        "history": history, "rng": rng_state(), **extra,
    }


def resume_state(out_dir: Path, cfg: TrainConfig) -> dict | None:
    """The state in ``out_dir/last.pt`` if it exists, checked against ``cfg``'s model."""
    path = Path(out_dir) / "last.pt"
    if not path.exists():
        return None
    return load_checkpoint(path, expected_model_config=vars(cfg.model_config()))


def load_trained(path: str | Path, device: torch.device | None = None):
    """``(net, train_config, checkpoint)`` from a checkpoint, ready for prediction."""
    device = device or env.pick_device()
    state = load_checkpoint(path, map_location=device)
    cfg = from_dict(state["train_config"])
    net = UNet(**state["model_config"]).to(device)
    net.load_state_dict(state["model"])
    return net.eval(), cfg, state


def make_targets(labels_in: np.ndarray, target: str, loss: str, w0: float,
                 sigma: float) -> dict[str, np.ndarray]:
    """The training target (and the paper's weight map) from a tile's input-sized labels.

    ``three_class``: background / interior / border (:func:`instances.three_class_target`).
    ``binary``: nucleus or not, after :func:`weights.open_gaps` has opened a line of background
    between touching nuclei (the DSB masks have none; the paper's membranes do), so the network
    can learn to separate them, and the weight map (for ``weighted_ce``) has gaps to weigh.
    Module level, so DataLoader workers can pickle it.
    """
    if target == "three_class":
        out = {"target": instances.three_class_target(labels_in)}  # (H, W) 0/1/2
    else:
        labels_in = weights.open_gaps(labels_in)
        out = {"target": (labels_in > 0).astype(np.int64)}  # (H, W) 0/1
    if loss == "weighted_ce":
        out["weight"] = weights.weight_map(labels_in, w0=w0, sigma=sigma)  # (H, W) float32
    return out


def loss_function(cfg: TrainConfig):
    """``loss(logits, batch)`` for this config; targets are cropped to the logits' size."""

    def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        if cfg.loss == "weighted_ce":
            return losses.weighted_cross_entropy(logits, batch["target"], batch["weight"])
        if cfg.loss == "ce":
            return losses.weighted_cross_entropy(logits, batch["target"])
        return losses.ce_dice_loss(logits, batch["target"], dice_weight=cfg.dice_weight)

    return loss


def split_samples(samples, cfg: TrainConfig, data_root: Path, splits_path: Path | None = None):
    """``(train, val, test, splits)``: the seeded, stratified split saved beside the data
    (the same for every run on this data set, so runs can be compared)."""
    table = dataset_table(samples)
    path = splits_path or default_split_path(data_root, 0, cfg.val_fraction, cfg.test_fraction)
    splits = make_splits(table, path, cfg.val_fraction, cfg.test_fraction, seed=0)
    which = dict(zip(splits["image_id"], splits["split"], strict=True))
    parts = {name: [s for s in samples if which[s.image_id] == name]
             for name in ("train", "val", "test")}
    if not parts["train"] or not parts["val"]:
        raise ValueError(f"{data_root} has {len(samples)} images: too few for a training and a "
                         f"validation split (val_fraction {cfg.val_fraction})")
    return parts["train"], parts["val"], parts["test"], splits


def train_loader(dataset: TileDataset, cfg: TrainConfig, epoch: int, device) -> DataLoader:
    """This epoch's tiles in a seeded order: the same on a resumed run as on an unbroken one."""
    dataset.set_epoch(epoch)
    order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    sampler = RandomSampler(dataset, num_samples=cfg.tiles_per_epoch, generator=order)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                      num_workers=cfg.num_workers, drop_last=len(sampler) >= cfg.batch_size,
                      pin_memory=device.type == "cuda", generator=order)


def validate(net, samples, cfg: TrainConfig, device) -> dict:
    """Mean Dice and DSB score on (up to ``val_max_images``) validation images."""
    if cfg.val_max_images:
        samples = samples[: cfg.val_max_images]
    probs = predict_samples(net, samples, cfg, device, desc="validating")
    scores = score_samples(samples, probs, PostProcess.for_target(cfg.target))
    return {"val_dice": float(scores["dice"].mean()), "val_dsb": float(scores["dsb"].mean())}


def fit(cfg: TrainConfig, data_root: str | Path, out_dir: str | Path, *,
        device: torch.device | None = None, resume: bool = False, samples=None,
        until_epoch: int | None = None, time_limit_s: float | None = None) -> pd.DataFrame:
    """Train on ``data_root`` (a stage1_train-style folder); everything goes to ``out_dir``.

    ``resume``: continue from ``out_dir/last.pt`` exactly. ``until_epoch``: stop after that
    epoch (resume later). ``time_limit_s``: stop after the epoch that passes this many seconds.
    ``samples``: already-read samples of ``data_root`` (saves reading them again).
    Returns the history (one row per epoch), also saved as ``history.csv``.
    """
    data_root, out_dir = Path(data_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device or env.pick_device()
    env.seed_everything(cfg.seed)
    samples = samples if samples is not None else load_dsb_folder(data_root)
    train_set, val_set, _, splits = split_samples(samples, cfg, data_root)
    splits.to_csv(out_dir / "splits.csv", index=False)
    cfg.save(out_dir / "config.json")

    target_fn = partial(make_targets, target=cfg.target, loss=cfg.loss, w0=cfg.w0,
                        sigma=cfg.sigma)
    tiles = TileDataset(train_set, out_size=cfg.tile_size, padding=cfg.padding, depth=cfg.depth,
                        augment=Augment(elastic=cfg.elastic), target_fn=target_fn,
                        tiles_per_image=math.ceil(cfg.tiles_per_epoch / len(train_set)),
                        channels=cfg.in_channels, seed=cfg.seed)
    net = build_model(cfg, device)
    step_net = torch.compile(net) if cfg.compile else net
    optimizer = build_optimizer(cfg, net)
    steps_per_epoch = max(1, cfg.tiles_per_epoch // cfg.batch_size)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch * cfg.num_epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=uses_fp16_scaler(cfg, device))
    loss_fn = loss_function(cfg)

    history, start_epoch, best = [], 0, -1.0
    state = resume_state(out_dir, cfg) if resume else None
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, start_epoch = state["history"], state["epoch"] + 1
        best = max([h["val_dsb"] for h in history if h.get("val_dsb") is not None], default=-1.0)
        set_rng_state(state["rng"])
    else:
        (out_dir / "best.pt").unlink(missing_ok=True)  # a new run: no stale best from an old one

    started = time.perf_counter()
    last_epoch = min(cfg.num_epochs, until_epoch + 1 if until_epoch is not None else 10**9)
    for epoch in range(start_epoch, last_epoch):
        epoch_start = time.perf_counter()
        loader = train_loader(tiles, cfg, epoch, device)
        train_loss = train_one_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, cfg,
                                     device, epoch, step_net)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0],
               "val_dice": None, "val_dsb": None}
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.num_epochs:
            row.update(validate(net, val_set, cfg, device))
        row["seconds"] = round(time.perf_counter() - epoch_start, 2)
        history.append(row)
        _write_history(history, out_dir)
        state = _checkpoint_state(net, optimizer, scheduler, scaler, cfg, epoch, history,
                                  {"data_root": str(data_root)})
        save_checkpoint(out_dir / "last.pt", **state)
        if row["val_dsb"] is not None and row["val_dsb"] > best:
            best = row["val_dsb"]
            save_checkpoint(out_dir / "best.pt", **state)
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            break
    return pd.DataFrame(history)


def ensure_trained(cfg: TrainConfig, data_root: str | Path, out_dir: str | Path, *,
                   device: torch.device | None = None, samples=None) -> Path:
    """``out_dir/best.pt`` of a finished run of exactly ``cfg`` on ``data_root``: reused if
    ``out_dir`` holds one, resumed if it holds an unfinished one, else trained from scratch.
    (Notebook 11 uses the run notebook 10 trained, without training it again.)"""
    out_dir = Path(out_dir)
    last = out_dir / "last.pt"
    same = False
    if last.exists():
        state = load_checkpoint(last)
        same = (state.get("train_config") == cfg.to_dict()
                and state.get("data_root") == str(Path(data_root)))
        if same and state["epoch"] + 1 >= cfg.num_epochs:
            return out_dir / "best.pt"
    fit(cfg, data_root, out_dir, device=device, samples=samples, resume=same)
    return out_dir / "best.pt"
