"""The runs the lessons train: sized for the mode, in their own folders, shared by notebooks.

* :func:`course_config` - the configuration notebooks 10 and 11 and the demo train, sized for
  the machine the notebook runs on (:func:`unet_lesson.env.by_mode`: fast for CI, CPU for a
  laptop, GPU for the full configurations);
* :func:`course_folder`, :func:`course_run` - one run folder per kind, data set and mode, so
  notebook 11 reuses notebook 10's run and a CI run never replaces a real one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import env
from ..checks import check_choice
from ..config import PRESETS, TrainConfig, preset
from ..data import load_dsb_folder
from .datasets import DataSource, find_or_make_dataset
from .run import Run


def course_config(kind: str = "practical", device=None) -> TrainConfig:
    """The configuration the demo and notebooks 10-11 train, sized for this machine's mode.

    ``kind``: ``"practical"`` or ``"paper"``. Fast mode (CI): a tiny network for one short
    epoch. CPU: a width-16 network for a few minutes. GPU: the full configurations.

    Used in notebook 10.
    """
    check_choice("kind", kind, ("practical", "paper"))
    fast = dict(base_channels=8, tile_size=64, batch_size=4, tiles_per_epoch=16, num_epochs=1,
                warmup_steps=2, val_max_images=4, num_workers=0, best_above_chance=False)
    cpu = PRESETS["demo"] if kind == "practical" else dict(
        base_channels=16, tile_size=100, batch_size=4, tiles_per_epoch=160, num_epochs=12,
        val_max_images=24, num_workers=0, lr=0.01)
    workers = min(4, env.cpu_count())  # Colab's free tier has 2 CPUs
    gpu = dict(num_epochs=30, tiles_per_epoch=2000, num_workers=workers, augment_on_device=True)
    if kind == "paper":  # its weight maps are made in the workers (batches.augments_on_device)
        gpu = dict(num_epochs=30, num_workers=workers)
    sized = env.by_mode(fast=fast, cpu=cpu, gpu=gpu, device=device)
    return preset(kind, **sized)


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

    Used in notebook 11.
    """
    device = device or env.pick_device()
    source = find_or_make_dataset()
    print(source)
    samples = load_dsb_folder(source.root)
    folder = course_folder(kind, source, device)
    return Run.trained(folder, course_config(kind, device), source.root, samples, device), samples
