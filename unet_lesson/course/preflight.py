"""Checks made before a command does any work: where it will write, and whether the run fits.

Every command that writes checks its output path first, before it reads data or trains, so
a user learns in a second (not after an hour of training) that ``--out`` is a file, lies below
a file, or sits in a folder they cannot write to. Each refusal is an :class:`OutputError`
naming the path, the option it came from and what to do.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..data import training_split


class OutputError(RuntimeError):
    """An output path a command cannot write to; the message names it and what to do."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder a new path is made in)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder: Path, path: Path, option: str, fix: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot write into {folder} ({error.strerror}); "
                          f"{fix}") from None


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """Refuse a folder that cannot be made or written: ``path`` is a file, lies below a file,
    or its (nearest existing) folder is not writable. Creates nothing; returns ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file, not a folder: give a folder (new or "
                          f"existing), or move the file away")
    folder = _nearest_existing(path)
    if not folder.is_dir():
        raise OutputError(f"{option} {path} cannot be made: {folder} is a file, not a folder; "
                          f"choose a path that is not below a file")
    _check_writable(folder, path, option, "choose a folder you can write to, or make this one "
                                          "writable")
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """Refuse a file path that is a folder, lies below a file, or sits in a folder that is not
    writable. Creates nothing; returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder: give a file name, e.g. "
                          f"{path / 'submission.csv'}")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise OutputError(f"{option} {path} cannot be made: {folder} is a file, not a folder")
    _check_writable(folder, path, option, "choose a folder you can write to")
    return path


def check_run_writable(folder: Path, writes: str) -> None:
    """Refuse a run folder a command must write into (``writes``: the file it writes there)
    when it is not writable, before the command does any work."""
    _check_writable(folder, folder, "--run", f"this command writes {writes} there: copy the "
                                             f"run to a writable folder (cp -r {folder} COPY) "
                                             f"and use the copy")


def check_tiles_fit(config, samples, data_root: str | Path) -> None:
    """Refuse a training tile larger than every image of ``samples`` (it would be mostly
    mirrored border), naming the largest image and the ``--set`` that fits."""
    if not samples or getattr(config, "nucleus_size", 0):  # rescaled images: sizes change
        return
    height, width = max((s.image.shape[:2] for s in samples), key=max)
    if config.tile_size > max(height, width):
        raise ValueError(f"tile_size {config.tile_size} is larger than every image of "
                         f"{data_root} (the largest is {height}x{width} pixels): a training tile "
                         f"would be mostly mirrored border; use --set tile_size="
                         f"{max(height, width)} or less (tile_size= in a TrainConfig)")


def make_split(config, samples):
    """The split of a new run (:func:`~unet_lesson.data.training_split` with the config's
    fields). When a group split fails but a split by image would work (a small set of one's
    own, from one microscope), the error says what to type."""
    try:
        return training_split(samples, config.split, config.val_fraction, config.test_fraction,
                              config.seen_fraction, seed=0)
    except ValueError as err:
        if config.split != "group":
            raise
        try:
            training_split(samples, "random", config.val_fraction, config.test_fraction, seed=0)
        except ValueError:
            raise err from None
        raise ValueError(f"{err}. A small set of your own can be split by image instead: add "
                         f"--set split=random (split='random' in a TrainConfig); its "
                         f"validation images then share the training images' acquisitions, "
                         f"so its scores read higher than on new microscopes") from None
