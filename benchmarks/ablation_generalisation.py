"""Which input normalisation and augmentations generalise? An ablation on the group split.

    python benchmarks/ablation_generalisation.py --data ../shared/data/dsb2018/stage1_train
    python benchmarks/ablation_generalisation.py --data DIR --variants raw invert --seeds 0 1

Every variant trains the same short run (the ``laptop`` preset shrunk: see ``BASE``) from
several seeds on the same **group split** (validation and test hold out whole acquisition
groups, so they see images of kinds the network has not trained on), then chooses its
post-processing on the group validation images and scores:

* ``val``: the held-out validation groups (what decides: the variants are compared on it);
* ``val_seen``: images of the training groups left out of training (what a random split
  would report);
* ``test``: other held-out groups, reported for the record, never used to choose.

Variants are cumulative where that is how the course would use them (``+`` adds to the one
before). Prints a table (mean and standard deviation over the seeds, overall and by modality)
and writes every run's metrics to ``--out``/results.csv. Runs one at a time: two torch
processes on 2 cores slow each other several times.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHORT_RUN, device_description, experiment_parser  # noqa: E402

from unet_lesson import env
from unet_lesson.config import apply_overrides, preset
from unet_lesson.course.run import Run
from unet_lesson.data import load_dsb_folder, training_split

# a short laptop run: width 16, 256 tiles, 10 epochs of 320 tiles (400 steps), validated at
# epochs 5 and 10 on 30 images (the checkpoint); the post-processing is then tuned on all of val.
# Every generalising option starts off (whatever the preset now switches on): a variant turns
# on what it tests
BASE = SHORT_RUN + ["input_mode=raw", "colour_augment=false", "quality_augment=false",
                    "scale_augment=0"]
VARIANTS = {
    "raw": ["input_mode=raw"],
    "percentile": ["input_mode=percentile"],
    "invert": ["input_mode=invert"],
    "invert+colour": ["input_mode=invert", "colour_augment=true"],
    "invert+colour+scale": ["input_mode=invert", "colour_augment=true", "scale_augment=1.5"],
    "invert+colour+scale+quality": ["input_mode=invert", "colour_augment=true",
                                    "scale_augment=1.5", "quality_augment=true"],
    "invert+scale": ["input_mode=invert", "scale_augment=1.5"],
    "invert+quality": ["input_mode=invert", "quality_augment=true"],
    "grey+invert": ["input_mode=invert", "in_channels=1"],
}


def row(variant: str, seed: int, metrics: dict, minutes: float) -> dict:
    out = {"variant": variant, "seed": seed, "minutes": round(minutes, 1),
           "best_epoch": metrics["best_epoch"]}
    for split in ("val", "val_seen", "test"):
        if split not in metrics:
            continue
        out[f"{split}_dsb"] = metrics[split]["dsb"]
        for modality, values in metrics[split]["by_modality"].items():
            out[f"{split}_{modality}"] = values["dsb"]
    return out


def summary(results: pd.DataFrame) -> pd.DataFrame:
    scores = [c for c in results.columns if c.startswith(("val_", "test_"))]
    table = results.groupby("variant", sort=False)[scores].agg(["mean", "std"])
    table.columns = [f"{a} {b}" for a, b in table.columns]
    return table.round(3)


def main() -> None:
    parser = experiment_parser(__doc__, env.runs_dir() / "ablation", "variants", list(VARIANTS),
                               "changes to every variant (e.g. amp_cpu=true, num_epochs=2)")
    args = parser.parse_args()
    device = env.pick_device()
    print(f"device: {device_description(device)}; data: {args.data}")
    samples = load_dsb_folder(args.data)
    base = apply_overrides(preset("laptop"), BASE + args.set)
    started = time.perf_counter()
    splits = training_split(samples, base.split, base.val_fraction, base.test_fraction,
                            base.seen_fraction, seed=0)
    print(f"group split in {time.perf_counter() - started:.0f} s: "
          f"{splits['split'].value_counts().to_dict()}")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.csv"
    done = pd.read_csv(results_file) if results_file.is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    for seed in args.seeds:  # every variant once before the next seed: partial results compare
        for variant in args.variants:
            if any(r["variant"] == variant and r["seed"] == seed for r in rows):
                continue  # measured in an earlier call: the script resumes where it stopped
            cfg = apply_overrides(base, VARIANTS[variant] + [f"seed={seed}"])
            start = time.perf_counter()
            run = Run.create(args.out / f"{variant}-seed{seed}", cfg, args.data, samples,
                             overwrite=True, splits=splits)
            run.train(samples, device)
            metrics = run.finish(samples, device)
            rows.append(row(variant, seed, metrics, (time.perf_counter() - start) / 60))
            pd.DataFrame(rows).to_csv(results_file, index=False)
            print(json.dumps(rows[-1]), flush=True)
    results = pd.DataFrame(rows)
    results = results[results["variant"].isin(args.variants)]
    print(summary(results).to_string())


if __name__ == "__main__":
    main()
