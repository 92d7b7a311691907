"""Training throughput of the U-Net at 256x256: eager fp32, channels_last, torch.compile, bf16.

    python benchmarks/bench_training.py                 # width 32, batch 8 (CPU) / 32 (GPU)
    python benchmarks/bench_training.py --base-channels 64 --batch-size 16

Prints images per second for each variant and the device it ran on. A training step here is
forward + loss + backward + Adam step on random data of the right shape (same padding, batch
norm, three classes), so it measures the network, not the data pipeline (see bench_data.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_description, header, save, time_steps  # noqa: E402

from unet_lesson import UNet, env


def bench(variant: str, args, device: torch.device) -> float:
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=3, base_channels=args.base_channels, padding="same",
               batch_norm=True, dropout=0.0).to(device)
    channels_last = variant != "eager fp32"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    step_net = torch.compile(net) if "compile" in variant else net
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (args.batch_size, args.size, args.size), device=device)
    use_bf16 = "bf16" in variant
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16
           else contextlib.nullcontext())

    def step():
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = F.cross_entropy(step_net(x), y)
        loss.backward()
        opt.step()

    return args.batch_size / time_steps(step, device, args.steps, args.warmup)


def main() -> None:
    device = env.pick_device()
    gpu = device.type == "cuda"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32 if gpu else 8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30 if gpu else 5)
    parser.add_argument("--warmup", type=int, default=5 if gpu else 2)
    parser.add_argument("--variants", nargs="*", default=[
        "eager fp32", "channels_last", "channels_last + compile", "channels_last + bf16",
        "channels_last + compile + bf16"])
    args = parser.parse_args()
    header("U-Net training throughput", device)
    print(f"model  : same padding, batch norm, width {args.base_channels}, depth 4, 3 classes; "
          f"batch {args.batch_size} x 3 x {args.size} x {args.size}, Adam\n")
    print(f"{'variant':<34} {'images/s':>9}")
    results = {}
    for variant in args.variants:
        try:
            results[variant] = bench(variant, args, device)
            print(f"{variant:<34} {results[variant]:>9.1f}", flush=True)
        except Exception as err:  # e.g. no compiler for torch.compile
            print(f"{variant:<34} {'failed':>9}  ({type(err).__name__}: {str(err)[:80]})")
    save("training", {"device": device_description(device), "args": vars(args),
                      "images_per_s": results})


if __name__ == "__main__":
    main()
