"""A cache for merged label images, so a second read of ~26,000 mask PNGs takes seconds.

Merging the masks of the real ``stage1_train`` (586 images, 25,721 mask PNGs) takes tens of
seconds; loading the merged label images back from this cache, a few (``docs/benchmarks.md``
has both times). The cache:

* lives **outside** the data set (the source folder may be read-only): by default under
  ``env.data_dir()/cache/labels/<set name>-<hash of the set's absolute path>/``, one compressed
  ``<image_id>.npz`` per image;
* stores a *fingerprint* of the files it was made from (the name and a hash of the bytes of
  the image and of every mask, plus the merge rule's version), and is ignored when the
  fingerprint no longer matches, so editing, adding or removing a mask invalidates it, even
  an edit that keeps the file's size and modification time (a copy that keeps the bytes
  keeps the entry);
* is written atomically (a temporary file in the same folder, then ``os.replace``), so a
  reader never sees half a file, and a corrupt or unreadable entry is simply a cache miss.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import env
from ..files import atomic_write, folder_key

# Bump when the merge rule, the fingerprint or the stored format changes: old entries then miss.
CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """``env.data_dir()/cache/labels`` (follows ``UNET_LESSON_DATA``).

    Not built in a notebook: the label cache of :func:`~unet_lesson.data.dsb.load_sample`.
    """
    return env.data_dir() / "cache" / "labels"


def cache_folder(root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder for one data set root, keyed by the root's absolute path.

    Not built in a notebook: the label cache of :func:`~unet_lesson.data.dsb.load_sample`.
    """
    root = Path(root).resolve()
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"{root.name}-{folder_key(root)}"


def fingerprint(image_file: Path, mask_files: list[Path]) -> str:
    """A hash of the name and the bytes of every source file (and the cache version).

    Raises ``OSError`` for a file that cannot be read.

    Not built in a notebook: the label cache of :func:`~unet_lesson.data.dsb.load_sample`.
    """
    digest = hashlib.sha1(f"unet-lesson labels v{CACHE_VERSION}\n".encode())
    for path in [image_file, *mask_files]:
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def load_labels(cache_file: Path, expected: str) -> tuple[np.ndarray, int] | None:
    """``(labels int32, n_contested)`` from a cache entry, or None if absent, stale or corrupt.

    Not built in a notebook: the label cache of :func:`~unet_lesson.data.dsb.load_sample`.
    """
    try:
        with np.load(cache_file, allow_pickle=False) as entry:
            if str(entry["fingerprint"]) != expected:
                return None
            return entry["labels"].astype(np.int32), int(entry["n_contested"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a corrupt entry is a miss; it is rewritten below


def save_labels(cache_file: Path, fp: str, labels: np.ndarray, n_contested: int) -> bool:
    """Write one entry atomically. Returns False (with a warning) if the cache is not writable.

    Not built in a notebook: the label cache of :func:`~unet_lesson.data.dsb.load_sample`.
    """
    # the smallest unsigned type that holds the ids: less to compress and to read back
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    try:
        with atomic_write(cache_file, "wb") as handle:
            np.savez_compressed(handle, labels=labels.astype(dtype), fingerprint=np.array(fp),
                                n_contested=np.array(n_contested))
        return True
    except OSError as error:
        warnings.warn(
            f"could not write the label cache {cache_file} ({error}); reading goes on without "
            f"it. Set UNET_LESSON_DATA to a writable folder, or pass cache=False.",
            stacklevel=3,
        )
        return False
