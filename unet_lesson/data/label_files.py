"""Label images on disk: every nucleus id written, and read back, exactly.

A label image (0 = background, 1..N nuclei) is written as a **16-bit PNG** when its ids fit in
16 bits (up to 65,535 nuclei, every image of the DSB), else as a **32-bit TIFF** (PNG has no
32-bit grey mode in PIL). A PNG is never asked to hold what it cannot: a larger id is refused
with the file named, instead of wrapping around.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write

PNG_MAX_ID = 2**16 - 1  # the largest id a 16-bit PNG holds
TIFF_MAX_ID = 2**31 - 1  # PIL's 32-bit grey mode ("I") is signed


def label_suffix(labels: np.ndarray) -> str:
    """``".png"`` when every id of ``labels`` fits a 16-bit PNG, else ``".tif"``.

    Not built in a notebook: the command line's ``predict`` names its label files with it.
    """
    return ".png" if int(np.max(labels, initial=0)) <= PNG_MAX_ID else ".tif"


def write_label_image(path: str | Path, labels: np.ndarray) -> Path:
    """Write a 2-D label image to ``path`` (``.png``: 16-bit, ``.tif``/``.tiff``: 32-bit),
    atomically; returns the path. Ids that the format cannot hold raise ``ValueError``.

    Not built in a notebook: the command line's ``predict`` writes its label files with it.
    """
    path, labels = Path(path), np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected an integer label image (H, W), got {labels.dtype} "
                         f"{labels.shape}")
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    suffix = path.suffix.lower()
    limit = {".png": PNG_MAX_ID, ".tif": TIFF_MAX_ID, ".tiff": TIFF_MAX_ID}.get(suffix)
    if limit is None:
        raise ValueError(f"{path}: label images are written as .png or .tif, not {suffix!r}")
    if low < 0 or high > limit:
        hint = f"; write it as {path.with_suffix('.tif').name}" if suffix == ".png" else ""
        raise ValueError(f"{path}: ids from {low} to {high} do not fit a {suffix[1:]} label "
                         f"image (0 to {limit}){hint}")
    array = labels.astype(np.uint16 if suffix == ".png" else np.int32)
    with atomic_write(path, "wb") as handle:
        Image.fromarray(array).save(handle, format="PNG" if suffix == ".png" else "TIFF")
    return path


def read_label_image(path: str | Path) -> np.ndarray:
    """A label image written by :func:`write_label_image` (or any integer image), as int64.

    Not built in a notebook: for reading back what ``predict`` wrote.
    """
    with Image.open(path) as image:
        array = np.asarray(image)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{path}: not a label image (got {array.dtype} {array.shape})")
    return array.astype(np.int64)
