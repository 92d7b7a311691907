"""A run folder's record on disk: which files make a run, reading them back with any damage
named, and removing a run as one step. :class:`~unet_lesson.course.run.Run` is the one writer
of a run folder; this module only knows its files.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from ..checkpoint import CheckpointError, epochs_in
from ..config import TrainConfig, from_dict
from .lock import LOCK_NAME

FORMAT = "unet-lesson-run/1"
RECORD = ("run.json", "config.json", "splits.csv", "history.csv", "last.pt", "best.pt")


class RunError(RuntimeError):
    """A run folder that cannot be used as asked; the message says what to do.

    Not built in a notebook: :class:`~unet_lesson.course.run.Run` raises it.
    """


def holds_run(folder: Path) -> bool:
    """True if ``folder`` holds any file of a run's record.

    Not built in a notebook: :class:`~unet_lesson.course.run.Run` checks folders with it.
    """
    return any((Path(folder) / name).exists() for name in RECORD)


def _damaged(path: Path, problem: str) -> RunError:
    return RunError(f"{path} is damaged ({problem}), so this run cannot be used: train it "
                    f"again with --overwrite (overwrite=True), or restore the file")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(path, f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise _damaged(path, f"a JSON {type(value).__name__}, not an object")
    return value


def read_record(folder: Path) -> tuple[dict, TrainConfig]:
    """``(run.json's values, the TrainConfig of config.json)`` of a run folder; a damaged
    file (not JSON, cut short, of another format or with bad fields) raises :class:`RunError`
    naming it."""
    info = _read_json(folder / "run.json")
    if info.get("format") != FORMAT:
        raise RunError(f"{folder / 'run.json'} is not a unet-lesson run record "
                       f"(format {info.get('format')!r}, expected {FORMAT!r})")
    if not isinstance(info.get("data_root"), str):
        raise _damaged(folder / "run.json", "no data_root")
    try:
        config = from_dict(_read_json(folder / "config.json"))
    except (TypeError, ValueError) as err:
        raise _damaged(folder / "config.json", str(err)) from None
    return info, config


def same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def split_key(splits) -> list[tuple[str, str]]:
    """A split as sorted (image id, part) pairs: equal for the same split in any row order."""
    return sorted(zip(splits["image_id"], splits["split"], strict=True))


def no_best(folder: Path, data_root: Path, config: TrainConfig) -> RunError:
    """The refusal of a run whose epochs never beat chance, with the commands to go on."""
    return RunError(
        f"{folder} has no best.pt: no epoch scored above chance on validation (see "
        f"history.csv), so there is no network worth scoring. last.pt and history.csv are "
        f"kept: train further with `python -m unet_lesson train --data {data_root} --out "
        f"{folder} --resume --set num_epochs={2 * config.num_epochs}`, or start again with a "
        f"lower learning rate (--overwrite --set lr={config.lr / 10:g})")


def describe(folder: Path) -> str:
    """The files of a run folder and how far it trained, for messages."""
    try:
        epochs = epochs_in(folder / "last.pt")
        trained = f"{epochs} epoch(s) trained"
    except (CheckpointError, KeyError):
        trained = "no finished epoch"
    return f"{listing(folder)}; {trained}"


def listing(folder: Path) -> str:
    """The names in ``folder`` (its lock file aside), the first six of them."""
    names = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def remove_folder(folder: Path) -> None:
    """Remove a run folder as one step: rename it aside (atomic), then delete the copy."""
    aside = folder.parent / f".{folder.name}.replaced-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)
