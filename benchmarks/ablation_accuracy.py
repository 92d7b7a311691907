"""Which options buy accuracy on the same two cores? An ablation on the validation groups.

    python benchmarks/ablation_accuracy.py --data ../shared/data/dsb2018/stage1_train
    python benchmarks/ablation_accuracy.py --data DIR --variants fp32 base --seeds 0 1 2
    python benchmarks/ablation_accuracy.py --tiny     # all of it on a synthetic set, seconds

Every variant trains the same short run (the ``laptop`` preset shortened: ``SHORT_RUN`` of
``_common``) from several seeds on one **group split**, and is scored on the validation groups
only: the test split is never scored here (it is scored once, at the end, by the ``train
--config laptop`` run). The variants, each one change to ``base``:

* ``fp32`` / ``base``: the precision question at equal steps (``base`` is the laptop preset
  as it is: bf16 where the CPU computes it natively, invert + colour inputs);
* ``+scale``: nuclei at one scale (``nucleus_size``, :mod:`unet_lesson.data.scale`);
  ``+scaleaug``: scale augmentation alone (``scale_augment=1.5``), for comparison;
* ``+sampling``: an epoch's tiles shared equally by modality; ``+groups``: by acquisition
  group (``tile_shares``); ``+scale+sampling``: both;
* ``base-2x`` (not run unless named): base with twice the epochs, what bf16's speed buys.

From each run's ``best.pt``, without training again, four post-hoc arms:

* ``val``: post-processing chosen on all validation images and scored on them (what a run's
  ``metrics.json`` reports; the choice flatters it a little);
* ``cf``: the same, **cross-fitted**: chosen on half of the validation groups, scored on the
  other half, and the halves swapped, so no image is scored with a setting chosen on it;
* ``cf_mod``: post-processing per modality, cross-fitted the same way (a modality with fewer
  than ``MIN_MODALITY_IMAGES`` images in the choosing half keeps the shared setting: with one
  validation group of a modality, its images always do);
* ``tta``: the 8 flips and rotations averaged, its post-processing cross-fitted.

Per run ``--out``/results.csv gets a row (written after every run; a finished run is reused,
so an interrupted call resumes): each arm's score overall and by modality, the ``val`` arm's
mean per validation group (``val_groups``), the spread of those means and a group-bootstrap
interval (:mod:`unet_lesson.stats`), ``val_seen``, steps, training minutes, steps per minute
(from the epochs without validation), and the seconds to predict the validation images with
and without TTA. The summary (mean and standard deviation over seeds per variant, and which
differences from ``base`` exceed twice the seed spread) is printed and written to
``--out``/summary.md. Runs one at a time: two torch processes on 2 cores slow each other.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHORT_RUN, device_description, experiment_parser  # noqa: E402

from unet_lesson import env, stats
from unet_lesson.config import apply_overrides, preset
from unet_lesson.course.run import Run
from unet_lesson.data import (
    MODALITIES,
    acquisition_groups,
    image_features,
    load_dsb_folder,
    make_synthetic_dsb,
    training_split,
)
from unet_lesson.evaluate import score_samples, tune_postprocessing
from unet_lesson.predict import predict_samples
from unet_lesson.train import steps_per_epoch

NUCLEUS_SIZE = 20  # pixels: about the median nucleus diameter of the real stage1_train (18)
BASE = SHORT_RUN + ["amp_cpu=true"]
VARIANTS = {
    "fp32": ["amp_cpu=false"],
    "base": [],
    "+scale": [f"nucleus_size={NUCLEUS_SIZE}"],
    "+scaleaug": ["scale_augment=1.5"],
    "+sampling": ["tile_shares=modality"],
    "+groups": ["tile_shares=group"],
    "+scale+sampling": [f"nucleus_size={NUCLEUS_SIZE}", "tile_shares=modality"],
    "base-2x": ["num_epochs=20"],
}
DEFAULT = [v for v in VARIANTS if v != "base-2x"]
# --tiny: a width-4 network for a few steps on 64-pixel synthetic images (a random split: so
# few images make too few acquisition groups; the validation images are grouped afterwards)
TINY = ["base_channels=4", "depth=2", "tile_size=32", "predict_tile=64", "batch_size=4",
        "tiles_per_epoch=8", "num_epochs=2", "val_every=1", "warmup_steps=2",
        "val_max_images=2", "num_workers=0", "best_above_chance=false", "split=random",
        "val_fraction=0.4", "test_fraction=0.1"]
ARMS = ("val", "cf", "cf_mod", "tta")


def two_folds(groups: list[str], modalities: list[str]) -> np.ndarray:
    """Fold 0 or 1 of each image, whole groups together: each modality's groups, largest
    first, go to the fold with fewer of its images (ties: fewer images in all). With a single
    group, the images alternate (the folds then share a group: said in the results)."""
    if len(set(groups)) < 2:
        return np.arange(len(groups)) % 2
    size = pd.Series(groups).value_counts()
    modality_of = dict(zip(groups, modalities, strict=True))
    fold_of, mine, total = {}, {}, [0, 0]
    for group in sorted(size.index, key=lambda g: (modality_of[g], -size[g], g)):
        have = mine.setdefault(modality_of[group], [0, 0])
        fold = min((0, 1), key=lambda f: (have[f], total[f], f))
        fold_of[group] = fold
        have[fold] += size[group]
        total[fold] += size[group]
    return np.array([fold_of[g] for g in groups])


def cross_fitted(val, probs, folds, target: str, by_modality: bool, cache: dict
                 ) -> pd.DataFrame:
    """Per-image scores, each image's post-processing chosen on the other fold only."""
    tables = []
    for fold in (0, 1):
        choose = [i for i in range(len(val)) if folds[i] != fold]
        score = [i for i in range(len(val)) if folds[i] == fold]
        if not choose or not score:
            return pd.DataFrame()
        post, _ = tune_postprocessing([val[i] for i in choose], [probs[i] for i in choose],
                                      target, by_modality=by_modality, cache=cache)
        tables.append(score_samples([val[i] for i in score], [probs[i] for i in score], post))
    return pd.concat(tables, ignore_index=True)


def arm(prefix: str, table: pd.DataFrame) -> dict:
    """``{prefix: mean DSB, prefix_<modality>: mean DSB of that modality, ...}``."""
    if table.empty:
        return {prefix: np.nan}
    out = {prefix: float(table["dsb"].mean())}
    for modality, part in table.groupby("modality"):
        out[f"{prefix}_{modality}"] = float(part["dsb"].mean())
    return out


def score_run(run: Run, samples, splits: pd.DataFrame, device) -> dict:
    """Every post-hoc arm of a trained run on its validation images (never its test split)."""
    parts, cfg = run.split(samples), run.config
    val, net = parts["val"], run.load_model(device)
    if "group" in splits:
        group_of = dict(zip(splits["image_id"], splits["group"], strict=True))
        groups = [str(group_of[s.image_id]) for s in val]
    else:  # a random split (--tiny): the validation images grouped on their own
        groups = [str(g) for g in acquisition_groups(image_features(val))]
    started = time.perf_counter()
    plain = predict_samples(net, val, cfg, device, desc="validation")
    row = {"predict_s": round(time.perf_counter() - started, 1)}
    started = time.perf_counter()
    tta = predict_samples(net, val, cfg, device, tta=True, desc="validation, TTA")
    row["predict_tta_s"] = round(time.perf_counter() - started, 1)
    cache = {}
    post, _ = tune_postprocessing(val, plain, cfg.target, cache=cache)
    table = score_samples(val, plain, post)
    row.update(arm("val", table))
    means = stats.group_means(table["dsb"], groups)
    row["val_groups"] = json.dumps(dict(zip(means["group"], means["mean"].round(4),
                                            strict=True)))
    row["val_group_sd"] = float(means["mean"].std(ddof=1)) if len(means) > 1 else np.nan
    low, high = stats.group_bootstrap_interval(table["dsb"], groups)
    row.update(val_group_ci_low=low, val_group_ci_high=high)
    folds = two_folds(groups, list(table["modality"]))
    row["folds"] = "groups" if len(set(groups)) > 1 else "images (one group)"
    row.update(arm("cf", cross_fitted(val, plain, folds, cfg.target, False, cache)))
    row.update(arm("cf_mod", cross_fitted(val, plain, folds, cfg.target, True, cache)))
    row.update(arm("tta", cross_fitted(val, tta, folds, cfg.target, False, {})))
    if parts["val_seen"]:
        seen = predict_samples(net, parts["val_seen"], cfg, device, desc="val_seen")
        row["val_seen"] = float(score_samples(parts["val_seen"], seen, post)["dsb"].mean())
    return row


def training_row(run: Run) -> dict:
    """Steps, training minutes and steps per minute (from the epochs without validation)."""
    history, per_epoch = run.history(), steps_per_epoch(run.config)
    plain = history.loc[history["val_dsb"].isna(), "seconds"]
    seconds = float(plain.median()) if len(plain) else float(history["seconds"].mean())
    return {"steps": per_epoch * len(history), "best_epoch": run.best_epoch(),
            "train_minutes": round(float(history["seconds"].sum()) / 60, 2),
            "steps_per_min": round(60 * per_epoch / seconds, 1)}


OVERALL = ["val", "cf", "cf_mod", "tta", "val_seen", "val_group_sd", "steps", "train_minutes",
           "steps_per_min", "predict_s", "predict_tta_s", "run_minutes"]


def summary(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean ± standard deviation over seeds, one row per variant: the overall scores and
    times, then every arm by modality."""
    by_modality = [f"{a}_{m}" for m in sorted(MODALITIES) for a in ARMS if f"{a}_{m}" in results]

    def table(columns: list[str]) -> pd.DataFrame:
        rows = []
        for variant, part in results.groupby("variant", sort=False):
            row = {"variant": variant, "seeds": len(part)}
            for column in [c for c in columns if c in part]:
                values = part[column].dropna().astype(float)
                row[column] = (f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
                               if len(values) > 1 else f"{values.mean():.3f}" if len(values)
                               else "")
            rows.append(row)
        return pd.DataFrame(rows)

    return table(OVERALL), table(by_modality)


def against_base(results: pd.DataFrame) -> pd.DataFrame:
    """Each variant against ``base``: the differences beyond twice the seed spread."""
    if "base" not in set(results["variant"]):
        return pd.DataFrame()
    tables = [stats.beyond_spread(results.rename(columns={"variant": "arch"}), metric,
                                  reference="base").assign(metric=metric)
              for metric in ("val", "cf", "cf_stained", "cf_mod", "tta") if metric in results]
    columns = ["metric", "arch", "difference", "threshold", "beyond_spread", "p"]
    return pd.concat(tables, ignore_index=True)[columns].round(3)


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (no extra dependency for one table)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = experiment_parser(__doc__, env.runs_dir() / "ablation_accuracy", "variants",
                               list(VARIANTS), "changes to every variant (e.g. num_epochs=2)",
                               default=DEFAULT, data_required=False)
    parser.add_argument("--tiny", action="store_true", help="a synthetic set and a width-4 "
                        "network: everything runs in seconds (the test)")
    args = parser.parse_args(argv)
    if args.data is None and not args.tiny:
        parser.error("give --data (a stage1_train-style folder), or --tiny")
    device = env.pick_device()
    data = args.data
    if args.tiny:
        data = make_synthetic_dsb(env.data_dir() / "synthetic_ablation_tiny", n_images=16,
                                  seed=1, image_size=64, progress=False)  # made once
    print(f"device: {device_description(device)}; data: {data}")
    samples = load_dsb_folder(data, cache=not args.tiny, progress=not args.tiny)
    changes = BASE + (TINY if args.tiny else []) + args.set
    base = apply_overrides(preset("laptop"), changes)
    splits = training_split(samples, base.split, base.val_fraction, base.test_fraction,
                            base.seen_fraction, seed=0)
    print(f"split: {splits['split'].value_counts().to_dict()}")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.csv"
    rows = pd.read_csv(results_file).to_dict("records") if results_file.is_file() else []
    for r in rows:  # no --set was read back as NaN
        r["changes"] = r["changes"] if isinstance(r["changes"], str) else ""
    changed = " ".join(args.set)
    for seed in args.seeds:  # every variant once before the next seed: partial results compare
        for variant in args.variants:
            if (variant, seed, changed) in {(r["variant"], r["seed"], r["changes"]) for r in rows}:
                continue  # measured in an earlier call (with the same --set)
            cfg = apply_overrides(base, VARIANTS[variant] + [f"seed={seed}"])
            started = time.perf_counter()
            run = Run.trained(args.out / f"{variant}-seed{seed}", cfg, data, samples, device,
                              splits=splits)
            trained = time.perf_counter()
            row = {"variant": variant, "seed": seed, "changes": changed, **training_row(run),
                   **score_run(run, samples, splits, device)}
            row["score_minutes"] = round((time.perf_counter() - trained) / 60, 2)
            row["run_minutes"] = round((time.perf_counter() - started) / 60, 2)
            rows.append(row)
            pd.DataFrame(rows).to_csv(results_file, index=False)
            print(json.dumps({k: v for k, v in row.items() if k != "val_groups"}), flush=True)
    results = pd.DataFrame(rows)
    results = results[results["variant"].isin(args.variants)]
    (overall, by_modality), versus = summary(results), against_base(results)
    text = (f"# Accuracy ablation ({device_description(device)}; {len(samples)} images of "
            f"{data}; base: laptop + {' '.join(changes)})\n\nValidation groups, DSB score "
            f"(mean ± sd over seeds), and times:\n\n{markdown(overall)}\n\nBy modality:\n\n"
            f"{markdown(by_modality)}\n\n"
            + (f"Against base (difference beyond twice the seed spread):\n\n{markdown(versus)}\n"
               if not versus.empty else ""))
    (args.out / "summary.md").write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
