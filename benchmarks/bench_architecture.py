"""Timings behind the architecture lessons (notebooks 02-06), printed with the machine they ran on.

1. One forward pass of the paper's network (1 x 572 x 572 -> 2 x 388 x 388), as notebooks 00, 04,
   05 and 06 do a few times each.
2. A training step of the small U-Net of notebook 05 (depth 3, 4 base channels, 4 tiles of 156),
   with PyTorch's default number of threads and with one thread. Tiny layers give each thread
   microseconds of work per operation; on a machine where another program keeps a core busy, the
   default threads wait on each other and the step can become ten times slower, while one thread
   stays steady. Run it on a quiet and on a busy machine to see both.

Usage: python benchmarks/bench_architecture.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unet_lesson import UNet, env

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sync, time_steps  # noqa: E402


def paper_forward(device: torch.device, repeats: int) -> list[float]:
    """Seconds per forward pass of the paper's network on one 572 x 572 tile."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2).to(device).eval()
    tile = torch.randn(1, 1, 572, 572, device=device)
    times = []
    with torch.no_grad():
        net(tile)  # warm-up
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            net(tile)
            sync(device)
            times.append(time.perf_counter() - start)
    return times


def small_steps(device: torch.device, threads: int, steps: int) -> float:
    """Milliseconds per training step of notebook 05's small U-Net with `threads` CPU threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        net = UNet(depth=3, base_channels=4, dropout=0.0).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
        x = torch.rand(4, 1, 156, 156, device=device)
        y = (torch.rand(4, 68, 68, device=device) > 0.8).long()

        def step():
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return 1000 * time_steps(step, device, steps, warmup=3)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = env.pick_device()
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} logical CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type not in ("cpu", "mps")
             else ""))
    if hasattr(os, "getloadavg"):
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
    times = paper_forward(device, args.repeats)
    print(f"paper U-Net, 1x572x572 forward: best {min(times):.2f} s, "
          f"median {sorted(times)[len(times) // 2]:.2f} s over {args.repeats}")
    default = torch.get_num_threads()
    for rep in range(args.repeats):
        line = [f"{t} thread{'s' if t > 1 else ''}: {small_steps(device, t, 10):6.1f} ms/step"
                for t in sorted({default, 1}, reverse=True)]
        print(f"small U-Net training step, round {rep + 1}: " + ", ".join(line))
    if hasattr(os, "getloadavg"):
        print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
