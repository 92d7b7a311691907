"""Do the paper's two central ideas help? The weight map and elastic deformation, measured.

    python benchmarks/paper_claims.py --data ../shared/data/dsb2018/stage1_train
    python benchmarks/paper_claims.py --data DIR --seeds 0 1 2 3 4 --sizes 8 32 --n-val 16
    python benchmarks/paper_claims.py --data DIR --seeds 3 --only "w0=0"     # one arm, one seed

The design is :mod:`unet_lesson.course.experiments`'s (notebook 11 runs the same at its mode's
size): the paper's configuration (valid padding, no batch norm, drop-out, two classes, weighted
cross-entropy, elastic deformation; width 16 on a CPU, AdamW), trained from several seeds on
subsets of the group split's training part, every run scored on the same validation images
(held-out acquisition groups) with fixed post-processing:

* the weight map: ``w0=10`` against ``w0=0`` on the largest subset: merges per image (predicted
  nuclei over several true ones, connected components: the network's own separation) and the
  DSB score;
* elastic deformation: on against off, with each subset size (few images and more).

Runs live in ``--out`` (default ``runs/claims_<data set>-<key>_<mode>``, the folder notebook 11
uses: the notebook reuses every run of its seeds and sizes that this script finished). A
finished run is never trained again: run the script once per seed (``--seeds 3``) to keep
each call short. Prints each claim's
table (mean and standard deviation over seeds, the difference from the reference arm, whether
it beats twice the larger spread, the exact permutation test over seeds) and writes
``images.csv`` (one row per run and image) and ``runs.csv`` (one row per run) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_description  # noqa: E402

from unet_lesson import env
from unet_lesson.config import apply_overrides
from unet_lesson.course import experiments
from unet_lesson.course.datasets import find_or_make_dataset
from unet_lesson.data import load_dsb_folder, training_split

REFERENCES = {"weight map": "w0=10", "elastic deformation": "elastic,"}
MEASURES = ("dsb_watershed", "dsb_components", "merges", "merged_share")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a DSB-layout folder (default: the course's "
                        "data: the real set when downloaded, else synthetic)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="training-set sizes (default 8 32; fast mode 2 4)")
    parser.add_argument("--n-val", type=int, default=None,
                        help="validation images scored (default 16; fast mode 3)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="train only the arms whose name starts with one of these")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[],
                        help="key=value changes of the base configuration")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    device = env.pick_device()
    print(f"device : {device_description(device)}")
    root = args.data or find_or_make_dataset().root
    started = time.perf_counter()
    samples = load_dsb_folder(root)
    splits = training_split(samples)
    print(f"data   : {root} ({len(samples)} images; group split: "
          f"{splits['split'].value_counts().to_dict()}), read in "
          f"{time.perf_counter() - started:.0f} s")
    sizes = tuple(args.sizes or env.by_mode(fast=(2, 4), cpu=(8, 32), gpu=(8, 32)))
    n_val = args.n_val or env.by_mode(fast=3, cpu=16, gpu=48)
    base = apply_overrides(experiments.claims_config(device), args.overrides)
    print(f"base   : width {base.model.base_channels}, {base.model.padding} padding, "
          f"{base.tile_size}-px output tiles, batch {base.batch_size}, "
          f"{base.num_epochs * (base.tiles_per_epoch // base.batch_size)} steps, "
          f"{base.optimizer}, lr {base.lr:g}; {n_val} validation images; seeds {args.seeds}")
    arms = experiments.paper_claim_arms(sizes)
    if args.only:
        arms = [a for a in arms if any(a.name.startswith(p) for p in args.only)]
    out = args.out or experiments.claims_folder(root, device)
    started = time.perf_counter()
    images = experiments.measure_claims(arms, args.seeds, base, samples, root, out, splits,
                                        n_val, device)
    print(f"\n{len(images)} image scores from {images.groupby(['key', 'seed']).ngroups} runs "
          f"in {(time.perf_counter() - started) / 60:.1f} min (finished runs reused)")
    runs = experiments.per_run(images)
    out.mkdir(parents=True, exist_ok=True)
    images.to_csv(out / "images.csv", index=False)
    runs.to_csv(out / "runs.csv", index=False)
    pd.set_option("display.width", 160)
    for claim, reference in REFERENCES.items():
        if claim not in set(runs["claim"]):
            continue
        table = experiments.summarise_claim(runs, claim, reference, MEASURES)
        print(f"\n## {claim} (reference: {reference}...)")
        print(table.round(4).to_string(index=False))
    print(f"\ntraining minutes per run: {runs['train_s'].mean() / 60:.2f} (mean); "
          f"torch {torch.__version__}; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
