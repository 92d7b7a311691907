"""Distribution shift measured over several group splits: what a random split would report
(``val_seen``) against what new acquisition groups get (held-out groups).

One group split cannot tell whether a random split over- or under-estimates: which groups are
held out decides it (some groups are easier than the training groups' own images, some are
harder). :func:`measure_shift` draws several group splits (the seed of
:func:`~unet_lesson.data.training_split` changes which groups are held out), trains the same
configuration on each (a :class:`~unet_lesson.course.run.Run` per split, reused when it is
there), chooses the post-processing on each split's validation groups, and scores, on each
split, the images of the training groups kept aside (``val_seen``) and the split's test groups
(held out, scored once per split). The distribution of the gap ``val_seen - held_out`` over
the splits, with its spread, is the measurement.

Not built in a notebook: notebook 11 runs it and reads its table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from .. import env
from ..config import TrainConfig
from ..data import training_split
from ..evaluate import score_samples, tune_postprocessing
from ..predict import predict_samples
from .run import Run


def split_draws(samples, cfg: TrainConfig, seeds) -> dict[int, pd.DataFrame]:
    """``{seed: split}``: the group split of ``cfg`` (its fractions) drawn with each seed."""
    return {seed: training_split(samples, "group", cfg.val_fraction, cfg.test_fraction,
                                 cfg.seen_fraction, seed=seed) for seed in seeds}


def measure_shift(samples, data_root, cfg: TrainConfig, seeds, out_dir,
                  device: torch.device | None = None, quiet: bool = True,
                  folders: dict[int, Path] | None = None) -> pd.DataFrame:
    """Train ``cfg`` on the group split of each seed in ``seeds`` (in ``out_dir/split<k>``,
    or ``folders[k]``; a finished run of the same configuration and split is reused) and
    score it; one row per split and image, with the columns of
    :func:`~unet_lesson.evaluate.score_samples` and ``split_seed``, ``part`` (``val_seen`` or
    ``held_out``: the split's test groups) and ``group`` (the image's acquisition group).

    ``quiet``: one line per split instead of one per epoch.
    """
    device = device or env.pick_device()
    out_dir = Path(out_dir)
    tables = []
    for seed, splits in split_draws(samples, cfg, seeds).items():
        folder = Path((folders or {}).get(seed, out_dir / f"split{seed}"))
        run = Run.trained(folder, cfg, data_root, samples, device, splits, quiet=quiet)
        parts = run.split(samples)
        group_of = dict(zip(splits["image_id"], splits["group"], strict=True))
        net = run.load_model(device)
        val_probs = predict_samples(net, parts["val"], cfg, device, desc="validation")
        post, _ = tune_postprocessing(parts["val"], val_probs, cfg.target)
        for part, name in ((parts["val_seen"], "val_seen"), (parts["test"], "held_out")):
            probs = predict_samples(net, part, cfg, device, desc=name)
            scores = score_samples(part, probs, post)
            tables.append(scores.assign(split_seed=seed, part=name,
                                        group=scores["image_id"].map(group_of)))
        print(f"split {seed}: {folder.name} scored ({len(parts['val_seen'])} val_seen, "
              f"{len(parts['test'])} held-out images)", flush=True)
    return pd.concat(tables, ignore_index=True)


def shift_gaps(images: pd.DataFrame) -> pd.DataFrame:
    """One row per split: the mean DSB score of ``val_seen`` and of the held-out groups, and
    ``gap`` = val_seen - held_out (positive: a random split would have overestimated)."""
    means = images.pivot_table(index="split_seed", columns="part", values="dsb", aggfunc="mean")
    means["gap"] = means["val_seen"] - means["held_out"]
    return means[["val_seen", "held_out", "gap"]]
