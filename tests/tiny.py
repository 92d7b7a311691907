"""Tiny training configurations and data sets shared by the tests that train (seconds each),
and the loader of the repository's scripts (benchmarks/, tools/) as modules."""

import importlib.util
from pathlib import Path

from unet_lesson.config import preset
from unet_lesson.data import load_dsb_folder, make_synthetic_dsb

TINY = dict(base_channels=4, depth=2, tile_size=32, batch_size=4, tiles_per_epoch=8,
            num_epochs=2, warmup_steps=2, num_workers=0, val_max_images=2, val_fraction=0.2,
            test_fraction=0.2, channels_last=False,
            # a few steps of a width-4 net learn nothing; 10 images are too few for groups
            best_above_chance=False, split="random")


def tiny_config(name: str = "practical", **changes):
    """A preset shrunk to train in seconds on a CPU, with ``changes`` on top."""
    return preset(name, **{**TINY, **changes})


def tiny_overrides(**changes) -> list[str]:
    """TINY, with ``changes`` on top, as the command line's ``--set KEY=VALUE`` arguments."""
    return [f"{key}={value}" for key, value in {**TINY, **changes}.items()]


def tiny_set(folder, seed: int, n_images: int = 10):
    """``(root, samples)``: a synthetic set of 64x64 images written to ``folder``."""
    root = make_synthetic_dsb(folder, n_images=n_images, seed=seed, image_size=64,
                              progress=False)
    return root, load_dsb_folder(root, cache=False, progress=False)


def load_script(relative: str):
    """A script of the repository (``"benchmarks/gpu_acceptance.py"``) imported as a module."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
