"""Overlap-tile prediction of a 1040x1388 image (the largest DSB size): time and peak memory.

    python benchmarks/bench_predict.py

Each configuration runs in a fresh process so its peak memory is its own: peak resident memory
on a CPU, peak allocated GPU memory on CUDA. The whole-image pass is shown for comparison: its
memory grows with the image, the tiled one's with the tile.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_description, header, save, sync  # noqa: E402

from unet_lesson import UNet, env
from unet_lesson.predict import predict_tiled, predict_whole

CONFIGS = {
    "paper (valid, width 64), tiles 388": dict(padding="valid", base_channels=64, tile=388),
    "paper (valid, width 64), whole image": dict(padding="valid", base_channels=64, tile=None),
    "practical (same, width 32), tiles 256": dict(padding="same", base_channels=32, tile=256),
    "practical (same, width 32), whole image": dict(padding="same", base_channels=32, tile=None),
}
SHAPE = (3, 1040, 1388)


def run_one(name: str) -> dict:
    cfg = CONFIGS[name]
    device = env.pick_device()
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=3, base_channels=cfg["base_channels"],
               padding=cfg["padding"], batch_norm=cfg["padding"] == "same").to(device).eval()
    image = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    if cfg["tile"] is None:
        probs = predict_whole(net, image, device=device)
    else:
        probs = predict_tiled(net, image, tile_size=cfg["tile"], batch_size=4, device=device)
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        kind = "GPU MiB"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        kind = "RSS MiB"
    assert probs.shape == (3, *SHAPE[1:])
    return {"seconds": seconds, "peak_mib": peak, "memory": kind}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2])))
        return
    device = env.pick_device()
    header("Overlap-tile prediction, 1040 x 1388 x 3 image", device)
    print(f"\n{'configuration':<42} {'seconds':>8} {'peak memory':>14}")
    results = {}
    for name in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                             text=True)
        if out.returncode != 0:
            print(f"{name:<42} failed: {out.stderr.strip().splitlines()[-1][:80]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = r
        print(f"{name:<42} {r['seconds']:>8.2f} {r['peak_mib']:>9.0f} {r['memory']}", flush=True)
    save("predict", {"device": device_description(device), "results": results})


if __name__ == "__main__":
    main()
