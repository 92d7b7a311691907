"""A fair comparison of the U-Net and its descendants: one data set, one budget, one metric.

A claim such as "UNet++ beats the U-Net" means something only when everything but the
network is held fixed. :func:`compare` trains each network of :data:`ARCHS` from each seed
with **the same** :class:`~unet_lesson.config.TrainConfig` (data, split, tiles, augmentation,
loss, optimiser, number of epochs) and only its ``model`` changed (:func:`arch_config`), as a
:class:`~unet_lesson.course.run.Run` in ``out_dir/<arch>-seed<k>`` (a finished run of the same
configuration, data and split is reused, not trained again), and scores it the same way
(:meth:`Run.finish <unet_lesson.course.run.Run.finish>`: post-processing chosen on validation, the
test split scored once). One row per run: the cost of the network (parameters, FLOPs, memory,
inference time) and its Data Science Bowl scores, overall and by modality.

The budget is **equal epochs** (the same tiles, the same optimiser steps); the training time
each network needed for them is recorded beside it (``train_s``), so a reader can also compare
at equal wall-clock.

The statistics of the table (mean and spread over seeds, which differences beat the spread)
are :mod:`unet_lesson.stats`'s; the cost of each network is :mod:`.costs`'s.
"""

from __future__ import annotations

import json
import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from .. import env
from ..config import TrainConfig, from_dict
from ..data import training_split
from ..evaluate import score_samples
from ..networks import ARCHS, count_parameters
from ..predict import predict_samples
from ..train import DivergenceError
from .costs import count_flops, inference_ms, model_costs
from .run import Run, RunError

SPLITS = ("val", "val_seen", "test")


# --------------------------------------------------------------------------------------------
# One configuration per network: only the model changes
# --------------------------------------------------------------------------------------------


def arch_config(base: TrainConfig, arch: str, seed: int | None = None,
                pretrained: bool = True) -> TrainConfig:
    """``base`` with only its network changed to ``arch`` (and its ``seed``, if given).

    * ``"unet"``: the base network as it is;
    * ``"unet++"``: with deep supervision (a head on every top node, trained on the mean of
      their losses; predictions average the heads), so it can be pruned afterwards;
    * ``"attention_unet"``: an attention gate on every skip;
    * ``"ternausnet11"``: ``in_channels=3`` (VGG11 takes RGB), ``depth=5`` (VGG11's five
      max-pools) and ``base_channels`` for its decoder; ``pretrained``: its encoder asks for
      VGG11's ImageNet weights (without torchvision or a network it warns and starts from
      random weights; :func:`model_costs` says which in ``encoder``).

    The variants pad their convolutions (``padding="same"``), as their papers do; every other
    field (width, batch norm, up-sampling, drop-out, and all of training) is the base's.

    Used in notebook 12.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    values = base.to_dict()
    model = values["model"]
    model.update(arch=arch, deep_supervision=arch == "unet++",
                 pretrained=pretrained and arch == "ternausnet11")
    if arch != "unet":
        model["padding"] = "same"
    if arch == "ternausnet11":
        model.update(in_channels=3, depth=5)
    if seed is not None:
        values["seed"] = seed
    return from_dict(values)


def network_name(cfg: TrainConfig) -> str:
    """A short name for a run's network: ``"unet++ (deep supervision)"``.

    Not built in a notebook: :func:`compare` names its rows with it.
    """
    m = cfg.model
    extra = " (deep supervision)" if m.deep_supervision else ""
    extra += " (pretrained=True)" if m.pretrained else ""
    return f"{m.arch}{extra}"


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


def images_up_to(samples, max_side: int) -> list:
    """The samples whose image is at most ``max_side`` pixels high and wide: a smaller data
    set for a comparison that must fit a CPU's time (fewer, smaller images to predict).

    Used in notebooks 12 and 12b.
    """
    return [s for s in samples if max(s.image.shape[:2]) <= max_side]


def finished_metrics(run: Run, samples, device: torch.device | None = None) -> dict:
    """The run's ``metrics.json`` if it holds this network's scores without TTA (its
    :meth:`~unet_lesson.course.run.Run.fingerprint`), else
    :meth:`Run.finish <unet_lesson.course.run.Run.finish>` (which writes it).

    Not built in a notebook: :func:`compare` calls it.
    """
    path = run.path("metrics.json")
    if path.is_file():
        metrics = json.loads(path.read_text())
        if metrics.get("fingerprint") == run.fingerprint("best.pt", False):
            return metrics
    return run.finish(samples, device)


def score_columns(metrics: dict) -> dict:
    """``{"val_dsb": ..., "val_dsb_fluorescence": ..., "test_dsb": ..., ...}`` from a run's
    metrics: the DSB score of each split (``val``, ``val_seen``, ``test``), overall and by
    modality.

    Not built in a notebook: :func:`compare` makes its rows with it.
    """
    out = {}
    for split in SPLITS:
        if split not in metrics:
            continue
        out[f"{split}_dsb"] = metrics[split]["dsb"]
        for modality, values in sorted(metrics[split]["by_modality"].items()):
            out[f"{split}_dsb_{modality}"] = values["dsb"]
    return out


@contextmanager
def _each_warning_once():
    """Show each distinct warning once (by category and text) while the block runs."""
    shown = set()
    original = warnings.showwarning

    def show_once(message, category, *args, **kwargs):
        if (category, str(message)) not in shown:
            shown.add((category, str(message)))
            original(message, category, *args, **kwargs)

    with warnings.catch_warnings():  # restores showwarning on the way out
        warnings.showwarning = show_once
        yield


def _one_run(cfg: TrainConfig, samples, data_root, folder: Path, device, splits) -> dict:
    """Train (or reuse) and score one run of :func:`compare`: its row, costs aside."""
    arch, seed = cfg.model.arch, cfg.seed
    row = {"arch": arch, "model": network_name(cfg), "seed": seed, "epochs": 0, "train_s": math.nan,
           "evaluate_s": math.nan, "best_epoch": math.nan, "note": "", "folder": str(folder)}
    try:
        run = Run.trained(folder, cfg, data_root, samples, device, splits, quiet=True)
    except DivergenceError as err:  # recorded, not fatal: the other runs go on
        return {**row, "note": f"diverged: {str(err).split(';')[0]}"}
    history = run.history()
    row.update(epochs=len(history), train_s=float(history["seconds"].sum()))
    try:
        metrics = finished_metrics(run, samples, device)
    except RunError as err:  # no epoch beat chance on validation: nothing to score
        note = ("no epoch beat chance on validation (no best.pt)"
                if not run.path("best.pt").exists() else str(err))
        return {**row, "note": note}
    return {**row, "evaluate_s": metrics["evaluate_seconds"],
            "best_epoch": metrics["best_epoch"], **score_columns(metrics)}


def compare(archs, seeds, base_cfg: TrainConfig, samples, data_root: str | Path,
            out_dir: str | Path, device: torch.device | None = None,
            splits: pd.DataFrame | None = None, pretrained: bool = True) -> pd.DataFrame:
    """Train and score every network of ``archs`` from every seed of ``seeds`` on the same
    data, split and budget; one row per run.

    ``base_cfg``: the configuration every run shares (:func:`arch_config` changes only the
    network and the seed). ``samples``: the images of ``data_root``. ``splits``: the split
    all runs share (default: the base configuration's, made once here). Each run lives in
    ``out_dir/<arch>-seed<k>``; a finished run of the same configuration, data and split is
    reused (:meth:`Run.trained <unet_lesson.course.run.Run.trained>`), so calling this again costs
    only the scoring of what is missing. Runs go seed by seed (every network once, then the
    next seed), so an interrupted comparison leaves complete seeds behind. A warning repeated
    by every run (TernausNet11's missing ImageNet weights) is shown once.

    Columns: ``arch``, ``model``, ``seed``, the costs of :func:`model_costs` (measured once
    per network), ``epochs``, ``train_s`` (seconds of training, validation passes included,
    from the run's ``history.csv``), ``evaluate_s``, ``best_epoch``, the DSB scores of
    :func:`score_columns`, ``note`` (why a run has no scores) and ``folder``.

    Used in notebooks 12 and 12b.
    """
    device = device or env.pick_device()
    archs, seeds = list(archs), list(seeds)
    if not archs or not seeds:
        raise ValueError("give at least one arch and one seed")
    if splits is None:
        splits = training_split(samples, base_cfg.split, base_cfg.val_fraction,
                                base_cfg.test_fraction, base_cfg.seen_fraction, seed=0)
    out_dir = Path(out_dir)
    with _each_warning_once():  # e.g. TernausNet11's fallback, which every build would repeat
        costs = {arch: model_costs(arch_config(base_cfg, arch, seeds[0], pretrained), device)
                 for arch in archs}
        rows = [{**_one_run(arch_config(base_cfg, arch, seed, pretrained), samples, data_root,
                            out_dir / f"{arch}-seed{seed}", device, splits), **costs[arch]}
                for seed in seeds for arch in archs]
    table = pd.DataFrame(rows)
    first = ["arch", "model", "seed", *costs[archs[0]], "epochs", "train_s", "evaluate_s",
             "best_epoch"]
    scores = sorted(c for c in table.columns if c not in first + ["note", "folder"])
    return table[first + scores + ["note", "folder"]]


# --------------------------------------------------------------------------------------------
# UNet++: pruning a deep-supervised network
# --------------------------------------------------------------------------------------------


def pruning_table(run: Run, samples, device: torch.device | None = None) -> pd.DataFrame:
    """Accuracy against speed for every pruned level of a deep-supervised UNet++ run.

    For each level l = 1..depth: the sub-network "UNet++ L^l" (:meth:`UNetPlusPlus.prune
    <unet_lesson.networks.UNetPlusPlus.prune>`: the nodes with i + j <= l and the head on
    X^{0,l}), its parameters, FLOPs and inference time per 256x256 tile, and its mean DSB
    score and pixel Dice on ``samples`` with the run's post-processing (chosen on validation
    for the full network: pass validation images, never test images, if a level is to be
    chosen from this table); then the full network (the heads averaged) as level ``"all"``.

    Used in notebook 12.
    """
    device = device or env.pick_device()
    cfg = run.config
    if not cfg.model.deep_supervision:
        raise ValueError(f"{run.folder} is not a deep-supervised UNet++ (arch "
                         f"{cfg.model.arch!r}): only such a network can be pruned")
    net = run.load_model(device)
    post = run.postprocess()
    rows = []
    for level in [*range(1, cfg.model.depth + 1), "all"]:
        sub = net if level == "all" else net.prune(level).to(device).eval()
        probs = run_predictions(sub, samples, cfg, device)
        scores = score_samples(samples, probs, post)
        rows.append({"level": level, "parameters": count_parameters(sub),
                     "gflops": count_flops(sub.config) / 1e9,
                     "infer_ms": inference_ms(sub, cfg, device),
                     "dsb": float(scores["dsb"].mean()), "dice": float(scores["dice"].mean())})
    return pd.DataFrame(rows)


def run_predictions(net, samples, cfg: TrainConfig, device: torch.device) -> list:
    """Probabilities of ``net`` for each sample, predicted as the run predicts (its input
    mode, tiles and precision).

    Not built in a notebook: :func:`pruning_table` calls it.
    """
    return predict_samples(net, samples, cfg, device, desc="pruned network")
