"""Benchmarks of the data pipeline: synthetic generation, reading the real set, tiles per second.

Run from the repository root::

    python benchmarks/bench_data.py                # everything (the real set when present)
    python benchmarks/bench_data.py --skip-real    # without the real stage1_train

It prints the machine it ran on; timings on a shared machine are noisy, so it reports the
best of ``--repeat`` runs where that is cheap. Nothing is written into the data set: the real
set is read with a label cache in a temporary folder (first read = merging every mask PNG,
then the cached read).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from unet_lesson.data import TileDataset, load_dsb_folder, make_synthetic_dsb

REAL = Path(os.environ.get("UNET_LESSON_REAL_DSB",
                           Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"
                           / "stage1_train"))


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def bench_synthetic(tmp: Path, n_images: int) -> Path:
    start = time.perf_counter()
    root = make_synthetic_dsb(tmp / "synthetic", n_images, seed=0, progress=False)
    took = time.perf_counter() - start
    n_masks = sum(1 for _ in root.glob("*/masks/*.png"))
    print(f"synthetic: {n_images} images ({n_masks} mask PNGs) generated in {took:.2f} s "
          f"({1000 * took / n_images:.0f} ms per image)")
    start = time.perf_counter()
    make_synthetic_dsb(tmp / "synthetic", n_images, seed=0)
    print(f"synthetic: the same call again (a no-op) in {1000 * (time.perf_counter() - start):.1f}"
          f" ms")
    return root


def bench_read(root: Path, cache: Path, label: str) -> list:
    for what in ("first read (merging masks)", "cached read"):
        start = time.perf_counter()
        samples = load_dsb_folder(root, cache=cache, progress=False)
        took = time.perf_counter() - start
        n_nuclei = sum(s.n_nuclei for s in samples)
        print(f"{label}: {what}: {len(samples)} images, {n_nuclei} nuclei in {took:.1f} s")
    return samples


def bench_tiles(samples: list, n_items: int, workers: tuple[int, ...]) -> None:
    for padding in ("same", "valid"):
        for augment in (False, True):
            ds = TileDataset(samples, out_size=256, padding=padding, augment=augment,
                             tiles_per_image=max(1, n_items // len(samples) + 1))
            for w in workers:
                loader = DataLoader(ds, batch_size=8, num_workers=w, shuffle=True,
                                    persistent_workers=False)
                batches = max(1, n_items // 8)
                iterator = iter(loader)
                next(iterator)  # start the workers before timing
                start = time.perf_counter()
                for _ in range(batches):
                    next(iterator)
                rate = 8 * batches / (time.perf_counter() - start)
                print(f"tiles: padding={padding:<5} in {ds.in_size} out {ds.out_size} "
                      f"augment={str(augment):<5} DataLoader workers={w}: {rate:6.0f} crops/s")
                del iterator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-real", action="store_true", help="do not read the real set")
    parser.add_argument("--n-synthetic", type=int, default=100)
    parser.add_argument("--n-items", type=int, default=400, help="tiles per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in the main process (DataLoader workers use 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = bench_synthetic(tmp, args.n_synthetic)
        samples = bench_read(root, tmp / "cache", "synthetic")
        if REAL.is_dir() and not args.skip_real:
            bench_read(REAL, tmp / "real-cache", f"real {REAL.name}")
        else:
            print(f"real data: skipped ({REAL} absent or --skip-real)")
        bench_tiles(samples, args.n_items, tuple(args.workers))
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
