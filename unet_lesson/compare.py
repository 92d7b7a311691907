"""A fair comparison of the U-Net and its descendants: one data set, one budget, one metric.

A claim such as "UNet++ beats the U-Net" means something only when everything but the
network is held fixed. :func:`compare` trains each network of :data:`ARCHS` from each seed
with **the same** :class:`~unet_lesson.config.TrainConfig` (data, split, tiles, augmentation,
loss, optimiser, number of epochs) and only its ``model`` changed (:func:`arch_config`), as a
:class:`~unet_lesson.run.Run` in ``out_dir/<arch>-seed<k>`` (a finished run of the same
configuration, data and split is reused, not trained again), and scores it the same way
(:meth:`Run.finish <unet_lesson.run.Run.finish>`: post-processing chosen on validation, the
test split scored once). One row per run: the cost of the network (parameters, FLOPs, memory,
inference time) and its Data Science Bowl scores, overall and by modality.

The budget is **equal epochs** (the same tiles, the same optimiser steps); the training time
each network needed for them is recorded beside it (``train_s``), so a reader can also compare
at equal wall-clock.

**Is a difference real?** The seed changes the initial weights and the order and augmentation
of the training tiles, nothing else; the spread of a network's scores over seeds is how much
a score moves for no reason. :func:`beyond_spread` applies one stated rule (a difference of
means counts when it exceeds twice the larger of the two standard deviations over seeds) and
reports an exact permutation test over the seeds beside it, whose smallest possible p-value
shows how few seeds settle (two seeds per network: 1/3; three: 1/10).

Costs, each measured the same way for every network (:func:`model_costs`):

* ``parameters``: trainable parameters (:func:`~unet_lesson.model.count_parameters`);
* ``gflops``: floating-point operations (multiply and add counted separately, so 2 x the
  multiply-adds of notebook 06) of one forward pass of one 256x256 image, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; batch
  norm, ReLU and pooling are not counted, they are a few percent);
* ``activation_mib``: the bytes autograd keeps for the backward pass of one training batch
  (``batch_size`` tiles of ``tile_size``, float32 without autocast; UNet++ with all its
  heads), summed over the saved tensors (:func:`activation_bytes`). It is the part of
  training memory that grows with the batch, and it is the same on every device (mixed
  precision would about halve it); on CUDA ``peak_mib`` adds the true peak
  (``torch.cuda.max_memory_allocated`` over the same step: weights, gradients and workspace
  too). A CPU has no such counter: the process's maximum RSS never goes down, so it cannot
  tell one network's step from the one before;
* ``infer_ms``: milliseconds for one 256x256 tile in eval mode (the fastest of a few repeats,
  after a warm-up), in the run's precision;
* ``step_ms``: milliseconds of one training step (forward, backward, AdamW update) on one
  batch, measured the same way (:func:`train_step_ms`). A run's own wall-clock time
  (``train_s``) is recorded too, but it also counts whatever else the machine was doing.

Built in notebook 12 (beyond the U-Net).
"""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from . import env
from .config import TrainConfig, from_dict
from .evaluate import score_samples
from .model import UNetConfig, count_parameters
from .model import build_model as build_network
from .precision import autocast, autocast_dtype
from .run import Run, RunError
from .train import DivergenceError, build_model

ARCHS = ("unet", "unet++", "attention_unet", "ternausnet11")
COST_SIZE = 256  # FLOPs and inference time are for one COST_SIZE x COST_SIZE image
SPLITS = ("val", "val_seen", "test")
MIB = 2**20


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


def label(cfg: TrainConfig) -> str:
    """A short name for a run's network: ``"unet++ (deep supervision)"``.

    Not built in a notebook: :func:`compare` names its rows with it.
    """
    m = cfg.model
    extra = " (deep supervision)" if m.deep_supervision else ""
    extra += " (pretrained=True)" if m.pretrained else ""
    return f"{m.arch}{extra}"


# --------------------------------------------------------------------------------------------
# The cost of a network
# --------------------------------------------------------------------------------------------


def count_flops(model_config: UNetConfig, size: int = COST_SIZE) -> int:
    """FLOPs of one forward pass of one ``size`` x ``size`` image (eval mode; UNet++ with
    every head), counted by ``FlopCounterMode`` on the meta device (shapes only: instant, no
    memory, no weights downloaded).

    Used in notebook 12.
    """
    cfg = replace(model_config, pretrained=False)  # the weights change no count: none fetched
    with torch.device("meta"):
        net = build_network(cfg).eval()
        x = torch.empty(1, cfg.in_channels, size, size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return int(counter.get_total_flops())


def _forward_backward(net, images: torch.Tensor, deep_supervision: bool) -> None:
    heads = net.head_logits(images) if deep_supervision else [net(images)]
    torch.stack([h.float().mean() for h in heads]).sum().backward()


def activation_bytes(net: torch.nn.Module, images: torch.Tensor,
                     deep_supervision: bool = False) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one training step on
    ``images`` (``torch.autograd.graph.saved_tensors_hooks``): every storage counted once
    (views and in-place results share one), the network's own weights left out.

    Used in notebook 12.
    """
    weights = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _forward_backward(net, images, deep_supervision)
    net.zero_grad(set_to_none=True)
    return sum(seen.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def inference_ms(net: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 size: int = COST_SIZE, repeats: int = 5, max_seconds: float = 2.0) -> float:
    """Milliseconds to predict one ``size`` x ``size`` tile: eval mode, no gradients, the
    run's precision; the fastest of ``repeats`` passes after one warm-up (fewer, at least one,
    once ``max_seconds`` have passed: a large network on a slow CPU).

    Used in notebook 12.
    """
    net.eval()
    x = torch.rand(1, net.config.in_channels, size, size, device=device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, cfg.amp, cfg.amp_cpu)
    with torch.inference_mode(), autocast(device, dtype):
        return _fastest_ms(lambda: net(x), device, repeats, max_seconds)


def train_step_ms(net: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                  repeats: int = 3, max_seconds: float = 10.0) -> float:
    """Milliseconds of one training step on one batch of ``cfg`` (``batch_size`` tiles of
    ``tile_size``): forward (UNet++: every head), backward and the optimiser's update, in
    the run's precision; the fastest of ``repeats`` steps after one warm-up (fewer, at least
    one, once ``max_seconds`` have passed). Unlike a run's wall-clock time, it does not
    depend on what else the machine was doing while the runs trained. The weights of ``net``
    change (the steps are real): time a copy you no longer need.

    Used in notebook 12.
    """
    from .train import build_optimizer

    m = cfg.model
    batch = torch.rand(cfg.batch_size, m.in_channels, cfg.tile_size, cfg.tile_size,
                       device=device)
    if cfg.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, net)
    dtype = autocast_dtype(device, cfg.amp, cfg.amp_cpu)
    net.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            _forward_backward(net, batch, m.deep_supervision)
        optimizer.step()

    ms = _fastest_ms(step, device, repeats, max_seconds)
    net.zero_grad(set_to_none=True)
    return ms


def _fastest_ms(fn, device: torch.device, repeats: int, max_seconds: float) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call, in milliseconds
    (fewer calls, at least one after the warm-up, once ``max_seconds`` have passed)."""
    times = []
    started = time.perf_counter()
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if len(times) > 1 and time.perf_counter() - started > max_seconds:
            break
    return 1000 * min(times[1:])


def model_costs(cfg: TrainConfig, device: torch.device | None = None) -> dict:
    """Parameters, FLOPs, training memory and inference time of ``cfg``'s network, and where
    its encoder's weights came from (see the module's docstring for each measure).

    Used in notebook 12.
    """
    device = device or env.pick_device()
    env.seed_everything(cfg.seed)
    net = build_model(cfg, device)  # as training builds it (channels_last if asked)
    m = cfg.model
    batch = torch.rand(cfg.batch_size, m.in_channels, cfg.tile_size, cfg.tile_size,
                       device=device)
    if cfg.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    peak = math.nan
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        net.train()
        _forward_backward(net, batch, m.deep_supervision)
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / MIB
        net.zero_grad(set_to_none=True)
    activations = activation_bytes(net, batch, m.deep_supervision) / MIB
    encoder = getattr(net, "encoder_weights", "random (He)")
    if m.pretrained and encoder.startswith("random"):
        encoder = "random (He): VGG11 ImageNet weights not reachable here"
    return {"parameters": count_parameters(net), "gflops": count_flops(m) / 1e9,
            "activation_mib": activations, "peak_mib": peak,
            "infer_ms": inference_ms(net, cfg, device),
            "step_ms": train_step_ms(net, cfg, device),  # last: it changes the weights
            "encoder": encoder}


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


def images_up_to(samples, max_side: int) -> list:
    """The samples whose image is at most ``max_side`` pixels high and wide: a smaller data
    set for a comparison that must fit a CPU's time (fewer, smaller images to predict).

    Used in notebook 12.
    """
    return [s for s in samples if max(s.image.shape[:2]) <= max_side]


def finished_metrics(run: Run, samples, device: torch.device | None = None) -> dict:
    """The run's ``metrics.json`` if it holds this network's scores (no TTA), else
    :meth:`Run.finish <unet_lesson.run.Run.finish>` (which writes it).

    Not built in a notebook: :func:`compare` calls it.
    """
    path = run.path("metrics.json")
    if path.is_file():
        metrics = json.loads(path.read_text())
        if not metrics.get("tta") and metrics.get("config") == run.config.to_dict():
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
    row = {"arch": arch, "model": label(cfg), "seed": seed, "epochs": 0, "train_s": math.nan,
           "evaluate_s": math.nan, "best_epoch": math.nan, "note": "", "folder": str(folder)}
    print(f"{label(cfg)}, seed {seed}: {folder}", flush=True)
    try:
        run = Run.trained(folder, cfg, data_root, samples, device, splits)
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
    reused (:meth:`Run.trained <unet_lesson.run.Run.trained>`), so calling this again costs
    only the scoring of what is missing. Runs go seed by seed (every network once, then the
    next seed), so an interrupted comparison leaves complete seeds behind. A warning repeated
    by every run (TernausNet11's missing ImageNet weights) is shown once.

    Columns: ``arch``, ``model``, ``seed``, the costs of :func:`model_costs` (measured once
    per network), ``epochs``, ``train_s`` (seconds of training, validation passes included,
    from the run's ``history.csv``), ``evaluate_s``, ``best_epoch``, the DSB scores of
    :func:`score_columns`, ``note`` (why a run has no scores) and ``folder``.

    Used in notebook 12.
    """
    from .data import training_split

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
# Reading the table: mean and spread over seeds, and which differences are real
# --------------------------------------------------------------------------------------------


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every numeric column, one row per network
    (in the table's order); columns ``(measure, "mean")`` and ``(measure, "std")``, and
    ``("seeds", "n")``. The standard deviation is the sample one (n - 1); NaN for one seed.

    Used in notebook 12.
    """
    numeric = [c for c in table.select_dtypes("number").columns if c != "seed"]
    grouped = table.groupby("arch", sort=False)
    summary = grouped[numeric].agg(["mean", "std"])
    summary[("seeds", "n")] = grouped["seed"].nunique()
    return summary


def permutation_p(a, b) -> float:
    """Two-sided exact permutation test of the difference of means of ``a`` and ``b``: the
    share of all ways to deal the pooled values into groups of ``len(a)`` and ``len(b)``
    whose difference of means is at least as large (in absolute value) as the observed one.

    With two values per group there are 6 ways, so p is never below 2/6 = 1/3; with three,
    20 ways and p >= 1/10. Few seeds cannot make a difference significant, however large.

    Used in notebook 12.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        total += 1
        count += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
    return count / total


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value :func:`permutation_p` can give for groups of these sizes:
    2 / C(n_a + n_b, n_a) (1 when the groups are equal and one value each: 2 / 2).

    Used in notebook 12.
    """
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def beyond_spread(table: pd.DataFrame, metric: str = "test_dsb", reference: str | None = "unet",
                  factor: float = 2.0) -> pd.DataFrame:
    r"""Which differences of ``metric`` between networks exceed the seed-to-seed spread.

    **The rule**: networks a and b differ when the difference of their means over seeds is
    larger than ``factor`` (2) times the larger of their two standard deviations over seeds:
    :math:`|m_a - m_b| > 2 \max(s_a, s_b)`. Where a network has fewer than two seeds there
    is no spread to compare with, and the verdict is ``None`` (cannot tell). Beside it,
    ``p``: the exact permutation test over the seeds (:func:`permutation_p`), and ``p_min``,
    the smallest p those seeds allow.

    ``reference``: compare every other network with this one; ``None``: every pair. One row
    per pair: ``arch``, ``reference``, both means and standard deviations, ``difference``
    (arch - reference), ``threshold``, ``beyond_spread``, ``p``, ``p_min``.

    Used in notebook 12.
    """
    values = {arch: group[metric].dropna().to_numpy(dtype=float)
              for arch, group in table.groupby("arch", sort=False)}
    names = list(values)
    if reference is not None and reference not in values:
        raise ValueError(f"reference {reference!r} is not in the table's archs {names}")
    pairs = ([(a, reference) for a in names if a != reference] if reference is not None
             else list(itertools.combinations(names, 2)))
    rows = []
    for a, b in pairs:
        va, vb = values[a], values[b]
        sa = float(va.std(ddof=1)) if len(va) > 1 else math.nan
        sb = float(vb.std(ddof=1)) if len(vb) > 1 else math.nan
        difference = float(va.mean() - vb.mean()) if len(va) and len(vb) else math.nan
        threshold = factor * max(sa, sb)
        verdict = None if math.isnan(threshold) or math.isnan(difference) else bool(
            abs(difference) > threshold)
        p = permutation_p(va, vb) if len(va) and len(vb) else math.nan
        rows.append({"arch": a, "reference": b, "mean": float(va.mean()) if len(va) else
                     math.nan, "std": sa, "reference_mean": float(vb.mean()) if len(vb) else
                     math.nan, "reference_std": sb, "difference": difference,
                     "threshold": threshold, "beyond_spread": verdict, "p": p,
                     "p_min": smallest_p(len(va), len(vb)) if len(va) and len(vb) else
                     math.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# UNet++: pruning a deep-supervised network
# --------------------------------------------------------------------------------------------


def pruning_table(run: Run, samples, device: torch.device | None = None) -> pd.DataFrame:
    """Accuracy against speed for every pruned level of a deep-supervised UNet++ run.

    For each level l = 1..depth: the sub-network "UNet++ L^l" (:meth:`UNetPlusPlus.prune
    <unet_lesson.variants.UNetPlusPlus.prune>`: the nodes with i + j <= l and the head on
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
    from .predict import predict_samples

    return predict_samples(net, samples, cfg, device, desc="pruned network")
