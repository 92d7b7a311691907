"""The runs the lessons train: sized for the mode, in their own folders, shared by notebooks.

Every configuration notebooks 10-12 train lives here, one function per experiment, each for
the mode the notebook runs in (:func:`unet_lesson.env.mode`: fast for CI, CPU for a laptop
or Apple's MPS, GPU for a CUDA GPU) or for any mode asked (``mode=``: the time budget of
:mod:`.budget` sizes a notebook's GPU mode on a CPU):

* :func:`course_config` - the practical and the paper configuration (notebooks 10 and 11, the
  demo); :func:`loop_config` - notebook 10's loop written by hand, checked against ``fit``;
* :func:`versus_configs` - notebook 11: paper against practical, over seeds;
  :func:`shift_config` - notebook 11: the distribution shift, one run per group split
  (:mod:`.shift`: val_seen against held-out groups), notebook 10's run the first;
* :func:`comparison_plan` - notebook 12 (and the optional 12b): the four networks over seeds;
  the paper's claims (the optional 11b) are :func:`~unet_lesson.course.experiments.claims_plan`;
* :func:`course_folder`, :func:`course_run` - one run folder per kind, data set and mode, so
  notebook 11 reuses notebook 10's run and a CI run never replaces a real one.

The GPU sizes are chosen so that each of notebooks 10, 11 and 12 fits 30 minutes on Colab's
free T4 by :mod:`.budget`'s estimate (a test checks it); what does not fit is in the optional
notebooks 11b and 12b.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import env
from ..checks import check_choice
from ..config import PRESETS, TrainConfig, preset
from ..data import load_dsb_folder
from ..networks import ARCHS
from .datasets import DataSource, course_data
from .run import Run

MODES = ("fast", "cpu", "gpu")
VERSUS_SEEDS = {"fast": (0, 1), "cpu": (0, 1, 2), "gpu": (0, 1, 2)}
SHIFT_SPLITS = {"fast": (0, 1), "cpu": (0, 1, 2, 3, 4), "gpu": (0, 1, 2, 3, 4)}


def _sized(mode: str | None, device, *, fast, cpu, gpu):
    """The setting of ``mode`` (default: this machine's, :func:`unet_lesson.env.mode`)."""
    mode = mode or env.mode(device)
    check_choice("mode", mode, MODES)
    return {"fast": fast, "cpu": cpu, "gpu": gpu}[mode]


FAST = dict(base_channels=8, tile_size=64, batch_size=4, tiles_per_epoch=16, num_epochs=1,
            warmup_steps=2, val_max_images=4, num_workers=0, best_above_chance=False)


def _workers() -> int:
    return min(4, env.cpu_count())  # Colab's free tier has 2 CPUs


def course_config(kind: str = "practical", device=None, mode: str | None = None
                  ) -> TrainConfig:
    """The configuration the demo and notebooks 10-11 train, sized for this machine's mode
    (or ``mode``).

    ``kind``: ``"practical"`` or ``"paper"``. Fast mode (CI): a tiny network for one short
    epoch. CPU: a width-16 network for a few minutes. GPU: the full networks (width 32 and
    the paper's 64) for as many steps as notebook 11's runs fit a T4's half hour.

    Used in notebook 10.
    """
    check_choice("kind", kind, ("practical", "paper"))
    cpu = PRESETS["demo"] if kind == "practical" else dict(
        base_channels=16, tile_size=100, batch_size=4, tiles_per_epoch=160, num_epochs=12,
        val_max_images=24, num_workers=0, lr=0.003)  # lr chosen on validation: docs/results.md
    gpu = dict(num_epochs=8, tiles_per_epoch=800, val_every=2, val_max_images=40,
               num_workers=_workers(), augment_on_device=True)
    if kind == "paper":  # its weight maps are made in the workers (batches.augments_on_device)
        gpu = dict(num_epochs=2, val_max_images=40, num_workers=_workers())
    return preset(kind, **_sized(mode, device, fast=FAST, cpu=cpu, gpu=gpu))


def loop_config(cfg: TrainConfig, device=None, mode: str | None = None) -> TrainConfig:
    """Notebook 10's loop by hand and ``fit`` on the same steps: ``cfg`` for two short
    epochs, its tiles made in the training process (no workers, no augmentation on the
    device, no compilation), so that both loops see the very same batches.

    Used in notebook 10.
    """
    def pick(fast, cpu, gpu):
        return _sized(mode, device, fast=fast, cpu=cpu, gpu=gpu)

    return replace(cfg, num_epochs=2, tiles_per_epoch=pick(8, 48, 128),
                   warmup_steps=pick(1, 4, 8), val_max_images=pick(1, 4, 8),
                   augment_on_device=False, compile=False, num_workers=0)


def versus_configs(device=None, mode: str | None = None) -> dict[str, list[TrainConfig]]:
    """Notebook 11's paper against practical: ``{"practical": [...], "paper": [...]}``, the
    :func:`course_config` of each over the seeds of :data:`VERSUS_SEEDS` (seed 0 of the
    practical one is notebook 10's run). Both arms take the practical configuration's inputs
    (its ``input_mode`` and colour augmentation): how pixels become inputs is not what the
    paper's design is about, so it is not one of the differences compared.

    Used in notebook 11.
    """
    seeds = _sized(mode, device, **VERSUS_SEEDS)
    practical = course_config("practical", device, mode)
    inputs = dict(input_mode=practical.input_mode, colour_augment=practical.colour_augment)
    paper = replace(course_config("paper", device, mode), **inputs)
    return {"practical": [replace(practical, seed=seed) for seed in seeds],
            "paper": [replace(paper, seed=seed) for seed in seeds]}


def shift_config(device=None, mode: str | None = None) -> tuple[TrainConfig, tuple[int, ...]]:
    """Notebook 11's distribution shift (:func:`unet_lesson.course.shift.measure_shift`): the
    configuration it trains on each group split, notebook 10's (:func:`course_config`, so
    that notebook 10's run is split 0's), and the seeds of the splits
    (:data:`SHIFT_SPLITS`).

    Used in notebook 11.
    """
    return course_config("practical", device, mode), _sized(mode, device, **SHIFT_SPLITS)


@dataclass(frozen=True)
class ComparisonPlan:
    """Notebook 12's comparison: the configuration every network shares, the networks, the
    seeds, and the images (at most ``max_side`` pixels high and wide, every ``every``-th)."""

    base: TrainConfig
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    max_side: int | None
    every: int


def comparison_plan(device=None, mode: str | None = None, full: bool = False
                    ) -> ComparisonPlan:
    """Notebook 12's fair comparison of the four networks, sized for the mode; ``full``: the
    optional notebook 12b's, three seeds and (GPU) the full budget.

    Used in notebooks 12 and 12b.
    """
    fast = dict(base_channels=4, depth=2, tile_size=64, predict_tile=256, batch_size=4,
                tiles_per_epoch=8, num_epochs=1, warmup_steps=1, val_max_images=2,
                num_workers=0, best_above_chance=False, split="random")  # too few groups
    cpu = dict(base_channels=16, tile_size=96, batch_size=8, tiles_per_epoch=320, num_epochs=4,
               warmup_steps=20, val_every=4, val_max_images=24, num_workers=0)
    gpu = dict(num_epochs=8, tiles_per_epoch=800, val_every=4, val_max_images=40,
               num_workers=_workers(), augment_on_device=True)
    if full:
        gpu = dict(num_epochs=30, tiles_per_epoch=2000, val_every=5, num_workers=_workers(),
                   augment_on_device=True)
    mode = mode or env.mode(device)
    sized = _sized(mode, device, fast=fast, cpu=cpu, gpu=gpu)
    seeds = _sized(mode, device, fast=(0,), cpu=(0, 1), gpu=(0, 1))
    max_side, every = _sized(mode, device, fast=(256, 1), cpu=(360, 2), gpu=(None, 1))
    if full and mode != "fast":
        seeds = (0, 1, 2)
    return ComparisonPlan(preset("practical", **sized), tuple(ARCHS), seeds, max_side, every)


def course_folder(kind: str, source: DataSource, device: torch.device | None = None) -> Path:
    """``runs/<kind>_<real|synthetic>_<fast|cpu|gpu>``: the course's run of ``course_config(kind)``
    on ``source``, one folder per data set and mode, so a fast CI run never replaces a real one.

    Used in notebook 10.
    """
    return env.runs_dir() / f"{kind}_{source.kind}_{env.mode(device)}"


def course_run(kind: str = "practical", device: torch.device | None = None
               ) -> tuple[Run, list]:
    """``(run, samples)``: the course's finished run of ``kind`` on the course's data (the real
    set when it is there, else the synthetic one), reused if notebook 10 (or an earlier call)
    trained it, else trained now (:meth:`Run.trained`).

    Used in notebooks 11 and 11b.
    """
    device = device or env.pick_device()
    source = course_data()
    print(source)
    samples = load_dsb_folder(source.root)
    folder = course_folder(kind, source, device)
    return Run.trained(folder, course_config(kind, device), source.root, samples, device), samples
