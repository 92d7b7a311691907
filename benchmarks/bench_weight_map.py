"""Benchmark: the paper's weight map on a 1024x1024 image with 400 touching/clustered nuclei.

Compares the obvious computation (one full-image distance transform per nucleus) with the
package's windowed one (``unet_lesson.weights.weight_map``), checks they agree within the
stated tolerance, and prints both times with the machine they ran on. Target: >= 20x faster
and < 1 s on a 2-core CPU.

    PYTHONPATH=$PWD python benchmarks/bench_weight_map.py [--size 1024] [--nuclei 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine  # noqa: E402

from unet_lesson import weights
from unet_lesson.toy import synthetic_nuclei


def brute_force_weight_map(labels, w0=10.0, sigma=5.0):
    """The obvious version: a full-image distance transform for every nucleus."""
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for k in np.unique(labels)[1:]:
        d = ndi.distance_transform_edt(labels != k)  # (H, W) distance to nucleus k
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    border = np.where((labels == 0) & np.isfinite(d2),
                      w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2)), 0.0)
    return weights.class_weight_map(labels) + border


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--nuclei", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the fast version")
    args = parser.parse_args()

    labels = synthetic_nuclei((args.size, args.size), args.nuclei, seed=0)
    left, right = labels[:, :-1], labels[:, 1:]
    touching = np.sum((left > 0) & (right > 0) & (left != right))
    print(f"machine : {machine()}")
    print("device  : cpu (numpy/scipy; the weight map is computed on the CPU)")
    print(f"image   : {args.size}x{args.size}, {labels.max()} nuclei, "
          f"{(labels > 0).mean():.1%} nucleus pixels, {touching} touching pixel pairs")
    print(f"cut-off : R = {weights.cutoff_distance():.1f} px for tol = {weights.TOL:g} "
          f"(maximum error of the fast version)")
    fast_s, fast = best_of(lambda: weights.weight_map(labels), args.repeats)
    brute_s, brute = best_of(lambda: brute_force_weight_map(labels), 1)
    error = float(np.abs(fast - brute).max())
    print(f"brute force (one full distance transform per nucleus): {brute_s:8.3f} s")
    print(f"windowed (unet_lesson.weights.weight_map, best of {args.repeats}): {fast_s:8.3f} s")
    print(f"speed-up: {brute_s / fast_s:.0f}x   max |difference|: {error:.2e}")
    ok = error <= 1e-4 and brute_s / fast_s >= 20 and fast_s < 1.0
    print("targets (>= 20x, < 1 s, error <= 1e-4):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
