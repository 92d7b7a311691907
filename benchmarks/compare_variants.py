"""Beyond the U-Net: notebook 12's fair comparison of the U-Net, UNet++, Attention U-Net and
TernausNet11, from the command line.

    python benchmarks/compare_variants.py --data ../shared/data/dsb2018/stage1_train
    python benchmarks/compare_variants.py --data DIR --archs unet unet++ --seeds 0 1 2 \\
        --set num_epochs=20 --out runs/compare

Every network trains **the same** configuration (the ``laptop`` preset with ``BASE`` below;
``--set`` changes it for all of them) from every seed, on one group split made once, and is
scored the same way (post-processing chosen on the group validation images, the test groups
scored once): :func:`unet_lesson.course.compare.compare`. Only the network changes (UNet++ with deep
supervision; TernausNet11 with its fixed VGG11 encoder, RGB input and depth 5, asking for the
ImageNet weights, which without torchvision or a network it cannot have: the ``encoder``
column says so).

Prints the device, a row per run, the mean and standard deviation over seeds per network,
and which differences of the test score exceed the seed-to-seed spread (the rule:
|difference of means| > 2 x the larger standard deviation; with an exact permutation test
beside it). Writes ``results.csv`` and ``summary.csv`` to ``--out``. Runs already finished in
``--out`` (same configuration, data and split) are reused: an interrupted call continues.

Time: not measured end to end at these sizes. What was measured (notebook 12, CPU mode, this
project's 2-core CPU): a U-Net run of 160 steps of 96-pixel tiles on 241 images of at most
360x360 pixels took about 2 to 5 minutes, evaluation included; a UNet++ training step takes 3.2
times the U-Net's, TernausNet11's 4.2 times. At the default sizes here (256-pixel tiles, 10
epochs of 320 tiles, every image) expect several times that per run, so 4 networks x 3 seeds
take hours; ``--max-side 360`` (notebook 12's images) cuts the evaluation. Runs one at a time:
two torch processes on 2 cores slow each other.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHORT_RUN, device_description, experiment_parser  # noqa: E402

from unet_lesson import env  # noqa: E402
from unet_lesson.config import apply_overrides, preset  # noqa: E402
from unet_lesson.course.compare import compare, images_up_to  # noqa: E402
from unet_lesson.data import load_dsb_folder  # noqa: E402
from unet_lesson.networks import ARCHS  # noqa: E402
from unet_lesson.stats import beyond_spread, seed_summary  # noqa: E402

BASE = SHORT_RUN  # the laptop preset shortened, as the generalisation ablation runs it


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = experiment_parser(__doc__, env.runs_dir() / "compare_variants", "archs", ARCHS,
                               "changes to every network's configuration (e.g. num_epochs=2)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="use only the images at most this many pixels high and wide")
    parser.add_argument("--metric", default="test_dsb",
                        help="the column the spread rule judges (default test_dsb)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse(argv)
    device = env.pick_device()
    base = apply_overrides(preset("laptop"), BASE + args.set)
    print(f"device : {device_description(device)}")
    samples = load_dsb_folder(args.data)
    if args.max_side:
        samples = images_up_to(samples, args.max_side)
    print(f"data   : {args.data} ({len(samples)} images"
          f"{f' of at most {args.max_side} px' if args.max_side else ''}), {base.split} split")
    print(f"budget : {base.num_epochs} epochs of {base.tiles_per_epoch} tiles of "
          f"{base.tile_size} px, batch {base.batch_size}, width {base.model.base_channels}; "
          f"seeds {args.seeds}")
    started = time.perf_counter()
    table = compare(args.archs, args.seeds, base, samples, args.data, args.out, device)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "results.csv", index=False)
    summary = seed_summary(table)
    summary.to_csv(args.out / "summary.csv")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table.drop(columns=["folder"]).round(3).to_string(index=False))
        shown = ["parameters", "gflops", "activation_mib", "peak_mib", "infer_ms", "train_s"]
        shown += [c for c in ("val_dsb", "val_seen_dsb", "test_dsb") if c in table]
        shown += sorted(c for c in table if c.startswith("test_dsb_"))
        print("\nmean and standard deviation over seeds:")
        print(summary[[c for c in summary.columns if c[0] in shown]].round(3).to_string())
        if "unet" in args.archs:
            print(f"\n{args.metric}: differences from the U-Net beyond the seed spread "
                  f"(|difference| > 2 x the larger std):")
            print(beyond_spread(table, args.metric).round(3).to_string(index=False))
    print(f"\n{len(table)} runs in {(time.perf_counter() - started) / 60:.1f} min on "
          f"{device_description(device)}; written to {args.out}")
    return table


if __name__ == "__main__":
    main()
