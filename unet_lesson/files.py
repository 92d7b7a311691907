"""Files that are whole or absent: the one atomic-write helper, and folder keys.

Every file the package writes (checkpoints, run records, the label cache, splits, downloads)
goes through :func:`atomic_write`: the bytes go to a hidden temporary file in the same folder
(``.<name>.<random>.tmp``), are flushed to disk, and the temporary file is renamed over the
target with ``os.replace``, which is atomic. A reader therefore sees the old file or the new
one, never half of one; an error (or Ctrl-C) while writing removes the temporary file and
leaves the old file untouched. Only a ``kill -9`` or a power cut can leave a temporary file
behind; :func:`remove_stale_temporaries` deletes those (a run folder calls it when it starts).

Not built in a notebook: the plumbing under notebooks 01 and 10.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"w"`` (text, UTF-8 by default) or ``"wb"``. The file gets the permissions of a
    normal new file (the umask's), not the private ones of a temporary file. Any exception in
    the ``with`` block deletes the temporary file and leaves ``path`` as it was.

    >>> with atomic_write("metrics.json") as f:  # doctest: +SKIP
    ...     f.write("{}")

    Not built in a notebook: every file the package writes goes through it.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path.

    Not built in a notebook: :func:`write_json` and the tests write with it.
    """
    with atomic_write(path) as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented JSON (with a final newline) atomically; returns the path.

    Not built in a notebook: the run folder and configurations write with it.
    """
    return write_text(path, json.dumps(value, indent=2) + "\n")


def write_csv(path: str | Path, table) -> Path:
    """Write a pandas table (without its index) atomically; returns the path.

    Not built in a notebook: the run folder, split files and the command line write with it.
    """
    with atomic_write(path, newline="") as handle:
        table.to_csv(handle, index=False)
    return Path(path)


def is_temporary(path: Path) -> bool:
    """True for the temporary files :func:`atomic_write` makes (``.<name>.<random>.tmp``).

    Not built in a notebook: :func:`remove_stale_temporaries` uses it.
    """
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files an interrupted write left in ``folder``; returns them.

    Call it only where no other process is writing into ``folder`` at the same time (a run
    folder belongs to one training process).

    Not built in a notebook: the run folder cleans up with it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and is_temporary(p)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def folder_key(path: str | Path) -> str:
    """A short, stable key for a folder: 12 hex digits of the SHA-1 of its absolute path.

    The label cache and the saved splits use it to keep data sets with the same name apart.

    Not built in a notebook: the label cache and the split files name folders with it.
    """
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
