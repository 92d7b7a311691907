"""Shared by the benchmark scripts: where they ran, and how to time fairly."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the numpy-only benchmarks skip it
    import torch

RESULTS = Path(__file__).resolve().parent / "results"  # git-ignored


def device_description(device: torch.device) -> str:
    """'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (Intel Xeon ..., 2 threads)'."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({cpu_name()}, {torch.get_num_threads()} threads)"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line for the numpy-only benchmarks: host, CPU, cores, load, numpy and python."""
    import numpy as np

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.node()} | {cpu_name()} | {os.cpu_count()} logical cores | load average "
            f"{load} | numpy {np.__version__}, python {platform.python_version()}")


def best_of(fn, repeats: int = 3):
    """The fastest of ``repeats`` calls of ``fn`` (seconds) and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def header(title: str, device: torch.device) -> None:
    import torch

    print(f"# {title}")
    print(f"device : {device_description(device)}")
    print(f"torch  : {torch.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs visible")
    print(f"date   : {time.strftime('%Y-%m-%d %H:%M')}")


def time_steps(step, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per call of ``step()``: ``warmup`` calls first, then ``steps`` timed ones, the
    device synchronised around the timing (CUDA runs asynchronously)."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously; a no-op on a CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


# The laptop preset shortened, for experiments that train many runs (the generalisation
# ablation, the comparison of networks): width 16, 256-pixel tiles, 10 epochs of 320 tiles
# (400 steps), validated at epochs 5 and 10 on 30 images (the checkpoint)
SHORT_RUN = ["tiles_per_epoch=320", "num_epochs=10", "val_max_images=30", "val_every=5",
             "warmup_steps=40"]


def experiment_parser(doc: str, out: Path, what: str, choices: list[str], set_help: str,
                      default: list[str] | None = None, data_required: bool = True):
    """The arguments every many-run experiment shares: ``--data``, ``--out``, ``--<what>``
    (which of ``choices``; ``default``, else all of them), ``--seeds`` (0 1 2) and ``--set``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", type=Path, required=data_required,
                        help="a stage1_train-style folder")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument(f"--{what}", nargs="+", default=list(default or choices),
                        choices=list(choices))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=set_help)
    return parser
