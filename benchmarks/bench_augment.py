"""Benchmark: augmented training crops per second, per tile in numpy vs batched on the device.

The per-tile path (``TileDataset(augment=True)``: each DataLoader worker deforms one tile at a
time in numpy, :mod:`unet_lesson.data.augment`) against the batched path
(:mod:`unet_lesson.data.batch_augment`: the DataLoader only cuts plain windows 40 px larger
than the tile, then ``BatchAugment`` deforms, turns and re-greys the whole batch on the device
and ``three_class_target_batch`` makes the three-class target there). Same-padding 256x256
tiles, batch 8, synthetic images of the real set's sizes (a third of them in colour). Also the
cost of the paper's weight map, which has no device version (``weight_map_batch``: per tile on
the CPU). Target of issue 12: on 2 CPU cores the batched path makes >= 3x the crops per second.

    PYTHONPATH=$PWD python benchmarks/bench_augment.py [--device cuda] [--workers 0 2]

Timings on a shared machine are noisy: every configuration runs ``--repeat`` times, the
configurations taking turns, and the best run counts; the load average is printed before and
after. The first batch of every run (worker start-up) is not timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, header, save, sync  # noqa: E402

from unet_lesson.batches import three_class_target_batch, weight_map_batch
from unet_lesson.data import MODALITIES, Augment, TileDataset, synthetic_sample
from unet_lesson.data.batch_augment import BatchAugment
from unet_lesson.losses import make_targets

SIZES = [(256, 256), (256, 320), (360, 360), (520, 696)]  # like stage1_train's common sizes


def make_samples(n_images: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_images`` synthetic (image, labels) pairs, modalities and sizes taking turns."""
    rng = np.random.default_rng(0)
    return [synthetic_sample(rng, MODALITIES[i % len(MODALITIES)], SIZES[i % len(SIZES)])
            for i in range(n_images)]


def per_tile_run(samples, args, workers: int, target: bool) -> tuple[float, float]:
    """Crops/s of ``TileDataset(augment=True)`` (optionally with the three-class target)."""
    target_fn = (partial(make_targets, target="three_class", loss="ce", w0=10.0, sigma=5.0)
                 if target else None)
    tiles = TileDataset(samples, out_size=args.tile, padding="same", augment=Augment(),
                        target_fn=target_fn, tiles_per_image=tiles_per_image(samples, args))
    loader = DataLoader(tiles, batch_size=args.batch_size, num_workers=workers, shuffle=True)
    return crops_per_second(loader, lambda batch: batch, args)


def batched_run(samples, args, workers: int, device: torch.device,
                weight_map: bool = False) -> tuple[float, float]:
    """Crops/s of plain windows + ``BatchAugment`` + the three-class target on ``device``."""
    margin = Augment().margin()  # 40 px around the tile, as TileDataset cuts for itself
    windows = TileDataset(samples, out_size=args.tile, padding="same", margin=margin,
                            tiles_per_image=tiles_per_image(samples, args))
    loader = DataLoader(windows, batch_size=args.batch_size, num_workers=workers, shuffle=True,
                        pin_memory=device.type == "cuda")
    return crops_per_second(loader, batched_step(device, margin, weight_map), args)


def batched_step(device: torch.device, margin: int, weight_map: bool = False):
    """One batch of windows -> the device -> BatchAugment -> the three-class target."""
    augment = BatchAugment(Augment(), torch.Generator().manual_seed(0))

    def step(batch):
        images = batch["image"].to(device, non_blocking=True)  # (B, 3, 336, 336)
        labels = batch["labels"].to(device, non_blocking=True)  # (B, 336, 336)
        images, labels = augment(images, labels, margin)  # (B, 3, 256, 256), (B, 256, 256)
        target = three_class_target_batch(labels)  # (B, 256, 256) 0/1/2
        if weight_map:
            target = weight_map_batch(labels)["weight"]  # (B, 256, 256), on the CPU and back
        sync(device)
        return images, target

    return step


def tiles_per_image(samples, args) -> int:
    return (args.batches + 2) * args.batch_size // len(samples) + 1


def crops_per_second(loader, step, args) -> tuple[float, float]:
    """Crops per second over ``args.batches`` batches (the first, start-up, not counted), and
    the main process's CPU milliseconds per crop (all of the work when there are no workers:
    a measure of work that a busy machine disturbs less than the wall clock)."""
    iterator = iter(loader)
    step(next(iterator))  # start the workers and warm up before timing
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        step(next(iterator))
    crops = args.batches * args.batch_size
    rate = crops / (time.perf_counter() - start)
    cpu_ms = 1000 * (time.process_time() - cpu) / crops
    del iterator
    return rate, cpu_ms


def paired_cost(samples, args, device: torch.device) -> dict[str, tuple[float, float]]:
    """Wall and CPU milliseconds per crop of the three pipelines in this one process (no
    workers), taking turns batch by batch so that they share a busy machine's noise."""
    margin = Augment().margin()
    n = tiles_per_image(samples, args) * args.repeat
    target_fn = partial(make_targets, target="three_class", loss="ce", w0=10.0, sigma=5.0)
    loaders = {
        "per tile": TileDataset(samples, args.tile, augment=Augment(), tiles_per_image=n),
        "per tile + three-class target": TileDataset(samples, args.tile, augment=Augment(),
                                                     target_fn=target_fn, tiles_per_image=n),
        "batched + three-class target": TileDataset(samples, args.tile, margin=margin,
                                                      tiles_per_image=n),
    }
    steps = {name: (lambda batch: batch) for name in loaders}
    steps["batched + three-class target"] = batched_step(device, margin)
    iterators = {name: iter(DataLoader(data, batch_size=args.batch_size, shuffle=True))
                 for name, data in loaders.items()}
    for name, iterator in iterators.items():
        steps[name](next(iterator))  # warm up
    wall, cpu = dict.fromkeys(loaders, 0.0), dict.fromkeys(loaders, 0.0)
    for _ in range(args.batches * args.repeat):
        for name, iterator in iterators.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name](next(iterator))
            wall[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - start_cpu
    crops = args.batches * args.repeat * args.batch_size
    return {name: (1000 * wall[name] / crops, 1000 * cpu[name] / crops) for name in loaders}


def weight_map_cost(samples, args, device: torch.device) -> float:
    """Seconds for ``weight_map_batch`` of one deformed label batch (best of 3)."""
    margin = Augment().margin()
    windows = TileDataset(samples, out_size=args.tile, padding="same", margin=margin)
    batch = next(iter(DataLoader(windows, batch_size=args.batch_size)))
    augment = BatchAugment(Augment(), torch.Generator().manual_seed(0))
    _, labels = augment(batch["image"].to(device), batch["labels"].to(device), margin)
    seconds, _ = best_of(lambda: (weight_map_batch(labels), sync(device)), 3)
    return seconds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader workers to try for both paths")
    parser.add_argument("--tile", type=int, default=256, help="tile size (same padding), px")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (best)")
    parser.add_argument("--n-images", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the main process (DataLoader workers use 1); "
                             "1 by default: OpenMP threads fighting for 2 busy cores slow "
                             "everything down; 0 for torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header("augmented crops per second: per tile (numpy, workers) vs batched (device)", device)
    samples = make_samples(args.n_images)
    print(f"data   : {len(samples)} synthetic images {sorted(set(SIZES))}, modalities "
          f"{', '.join(MODALITIES)}; {args.tile}x{args.tile} same-padding tiles, batch "
          f"{args.batch_size}, {args.batches} timed batches, best of {args.repeat}")
    print(f"load average before: {load()}")

    paired = paired_cost(samples, args, device)
    print(f"one process, no DataLoader workers, the three taking turns batch by batch "
          f"({args.batches * args.repeat} batches each):")
    for name, (wall_ms, cpu_ms) in paired.items():
        print(f"  {name:<34s} {wall_ms:6.1f} ms per crop ({1000 / wall_ms:5.0f} crops/s), "
              f"CPU {cpu_ms:6.1f} ms per crop")
    batched_ms = paired["batched + three-class target"][0]
    print(f"  speed-up of the batched path: {paired['per tile'][0] / batched_ms:.1f}x "
          f"(with the three-class target on both sides: "
          f"{paired['per tile + three-class target'][0] / batched_ms:.1f}x)")

    print("DataLoader workers (wall clock, the best of the runs):")
    configs = {}
    for w in args.workers:
        configs[f"per tile, numpy, workers={w}"] = partial(per_tile_run, samples, args, w, False)
        configs[f"per tile, numpy + three-class target, workers={w}"] = partial(
            per_tile_run, samples, args, w, True)
        configs[f"batched on {device.type} + three-class target, workers={w}"] = partial(
            batched_run, samples, args, w, device)
    best = {name: (0.0, float("inf")) for name in configs}
    for _ in range(args.repeat):  # the configurations take turns: they share the noise
        for name, run in configs.items():
            rate, cpu_ms = run()
            best[name] = (max(best[name][0], rate), min(best[name][1], cpu_ms))
    print(f"{'':<58s} {'best':>7s}          CPU ms per crop")
    for name, (rate, cpu_ms) in best.items():
        whose = "(all the work)" if name.endswith("workers=0") else "(main process only)"
        print(f"{name:<58s} {rate:7.0f} crops/s  {cpu_ms:5.1f} {whose}")
    best = {name: rate for name, (rate, _) in best.items()}
    per_tile = max(r for n, r in best.items() if n.startswith("per tile, numpy, "))
    per_tile_target = max(r for n, r in best.items() if "numpy + three" in n)
    batched = max(r for n, r in best.items() if n.startswith("batched"))
    print(f"speed-up, best batched vs best per tile: {batched / per_tile:.1f}x "
          f"(with the three-class target on both sides: {batched / per_tile_target:.1f}x)")

    seconds = weight_map_cost(samples, args, device)
    print(f"weight map on the CPU (weight_map_batch, open_gaps + weight_map per tile): "
          f"{1000 * seconds:.0f} ms per batch of {args.batch_size} "
          f"({args.batch_size / seconds:.0f} crops/s on its own)")
    print(f"load average after: {load()}")
    save("augment", {"device": str(device), "args": vars(args), "crops_per_second": best,
                     "paired_ms_per_crop": paired, "weight_map_ms_per_batch": 1000 * seconds})


if __name__ == "__main__":
    main()
