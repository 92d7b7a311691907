r"""Run-length encoding in the Data Science Bowl's format, submission files and the solution CSV.

The competition stores each nucleus as a string of "start length" pairs: pixels are numbered
**from 1, column-major** (down the first column, then down the second, ...), and "5 3" means
pixels 5, 6 and 7. In a 3x4 image (3 rows, 4 columns) pixel 5 is row 1, column 1 (0-indexed).

* :func:`rle_encode` / :func:`rle_decode` - one mask to a string and back.
* :func:`write_submission` - ``ImageId,EncodedPixels``, one row per nucleus; an image with no
  nucleus gets one row with empty ``EncodedPixels`` (so every image appears). Nuclei come from
  label images, so two nuclei never share a pixel.
* :func:`read_solution_csv` - the stage-1 solution (``ImageId,EncodedPixels,Height,Width,Usage``)
  to a label image per image: the course's **one** reader of stage1_test's labels.
  :func:`read_submission_csv` reads a submission back, given the image shapes.

Rules for reading: a missing column, a malformed run, a run outside the image, runs out of
order or overlapping, Height/Width that change between rows of one image or that exceed
``MAX_PIXELS`` raise a ``ValueError`` naming the file and line. Two nuclei of one image that
share pixels (the solution's masks are hand-drawn) keep each pixel for the nucleus listed
first, with a warning that counts the pixels; nothing is dropped without a word.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from .files import atomic_write

SOLUTION_COLUMNS = ("ImageId", "EncodedPixels", "Height", "Width")  # (and Usage, not needed)
SUBMISSION_COLUMNS = ("ImageId", "EncodedPixels")
# the most pixels an image may have: PIL's limit for image files (no image the reader opens
# is larger), so an absurd Height x Width is refused instead of allocating terabytes
MAX_PIXELS = 89_478_485


def rle_encode(mask: np.ndarray) -> str:
    """'start length' pairs of a 2-D mask (> 0 is set): 1-indexed, column-major; '' if empty.

    Built in notebook 09.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    return _encode_pixels(np.flatnonzero(mask.ravel(order="F") > 0))


def _encode_pixels(pixels: np.ndarray) -> str:
    """Runs of sorted 0-indexed column-major pixel numbers as 1-indexed 'start length' pairs."""
    if pixels.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1  # where a new run begins
    starts = pixels[np.concatenate([[0], breaks])]
    ends = pixels[np.concatenate([breaks - 1, [pixels.size - 1]])]
    pairs = np.stack([starts + 1, ends - starts + 1], axis=1).ravel()
    return " ".join(map(str, pairs.tolist()))


def rle_pixels(rle: str, n_pixels: int) -> np.ndarray:
    """The 0-indexed, column-major pixel numbers a run-length string covers, in order.

    Raises ``ValueError`` for an odd count of numbers, a start < 1, a length < 1, a run past
    pixel ``n_pixels``, or runs that are not in increasing order without overlaps.

    Not built in a notebook: :func:`rle_decode` and the CSV readers call it.
    """
    text = "" if rle is None or (isinstance(rle, float) and np.isnan(rle)) else str(rle)
    try:
        numbers = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError(f"run-length string must hold integers, got {text[:60]!r}") from None
    if numbers.size % 2:
        raise ValueError(f"run-length string has an odd count of numbers ({numbers.size}): "
                         "it must be 'start length' pairs")
    if numbers.size == 0:
        return numbers
    starts, lengths = numbers[0::2], numbers[1::2]
    if starts.min() < 1 or lengths.min() < 1:
        raise ValueError("run-length starts and lengths must be >= 1 (pixels are 1-indexed)")
    ends = starts + lengths - 1  # last pixel of each run, 1-indexed
    if ends.max() > n_pixels:
        raise ValueError(f"a run ends at pixel {ends.max()}, outside the image "
                         f"({n_pixels} pixels): check Height, Width and the column-major order")
    if np.any(starts[1:] <= ends[:-1]):
        raise ValueError("runs must be in increasing order without overlaps")
    # every covered pixel: 0, 1, ... along the runs, shifted to each run's start
    first = np.cumsum(lengths) - lengths  # position of each run's first pixel in the output
    return np.arange(lengths.sum()) + np.repeat(starts - 1 - first, lengths)


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of ``shape`` (H, W) from 'start length' pairs ('' or NaN: empty mask).

    Raises ``ValueError`` as :func:`rle_pixels` does.

    Built in notebook 09.
    """
    height, width = (int(s) for s in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive (H, W), got {shape}")
    mask = np.zeros(height * width, dtype=bool)
    mask[rle_pixels(rle, mask.size)] = True
    return mask.reshape(width, height).T  # column-major: columns were laid end to end


def submission_rows(image_id: str, labels: np.ndarray) -> list[tuple[str, str]]:
    """(ImageId, EncodedPixels) for every nucleus of a label image, in id order.

    An image with no nucleus gives one row with empty EncodedPixels. Each nucleus is encoded
    from its bounding box (``scipy.ndimage.find_objects``), not from a full-image mask.

    Not built in a notebook: :func:`write_submission` calls it.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"image {image_id}: expected an integer label image (H, W), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"image {image_id}: negative ids; use 0 for background")
    if labels.max(initial=0) > 4 * labels.size:  # huge ids: renumber 1..N, keeping the order
        labels = relabel_sequential(labels)[0]
    height = labels.shape[0]
    rows = []
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        rr, cc = np.nonzero(labels[box] == k)  # row-major order inside the box
        pixels = np.sort((cc + box[1].start) * height + rr + box[0].start)  # column-major
        rows.append((image_id, _encode_pixels(pixels)))
    return rows or [(image_id, "")]


def write_submission(path, predictions: Mapping[str, np.ndarray] | Iterable) -> Path:
    """Write a Kaggle submission CSV: ``ImageId,EncodedPixels``, one row per nucleus.

    ``predictions``: ``{image_id: label image}`` or an iterable of ``(image_id, labels)``.
    Returns the path written.

    Used in notebook 09.
    """
    path = Path(path)
    items = predictions.items() if isinstance(predictions, Mapping) else predictions
    with atomic_write(path, newline="") as f:  # whole or absent, never half a submission
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(SUBMISSION_COLUMNS)
        for image_id, labels in items:
            writer.writerows(submission_rows(str(image_id), labels))
    return path


def _read_rle_csv(path, required: tuple[str, ...], shapes: Mapping | None,
                  usage: frozenset[str] | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    flat: dict[str, np.ndarray] = {}  # column-major label images, (H * W,)
    sizes: dict[str, tuple[int, int]] = {}
    counts: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        required = (*required, "Usage") if usage is not None else required
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}, "
                             f"expected {list(required)}")
        for row in reader:
            if usage is not None and row["Usage"] not in usage:
                continue
            image_id = row["ImageId"]
            where = f"{path}, line {reader.line_num} (ImageId {image_id})"
            try:
                shape = _row_shape(row, shapes, image_id)
                if sizes.setdefault(image_id, shape) != shape:
                    raise ValueError(f"image size {shape} differs from the earlier rows' "
                                     f"{sizes[image_id]}")
                labels = flat.setdefault(image_id, np.zeros(shape[0] * shape[1], np.int32))
                pixels = rle_pixels(row["EncodedPixels"], labels.size)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            if pixels.size:
                taken = labels[pixels] > 0
                if taken.any():
                    warnings.warn(f"{where}: {int(taken.sum())} pixel(s) already belong to an "
                                  "earlier nucleus and stay with it", stacklevel=3)
                counts[image_id] = counts.get(image_id, 0) + 1  # nuclei numbered in file order
                labels[pixels[~taken]] = counts[image_id]
    return {key: np.ascontiguousarray(labels.reshape(sizes[key][::-1]).T)  # (H, W)
            for key, labels in flat.items()}


def _row_shape(row: dict, shapes: Mapping | None, image_id: str) -> tuple[int, int]:
    if shapes is None:
        values = (row.get("Height"), row.get("Width"))
    elif image_id in shapes:
        values = tuple(shapes[image_id])[:2]
    else:
        raise ValueError("no shape given for this image (pass shapes={image_id: (H, W)})")
    try:
        height, width = (int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"Height and Width must be integers, got {values}") from None
    if height < 1 or width < 1:
        raise ValueError(f"Height and Width must be positive, got {height}x{width}")
    if height * width > MAX_PIXELS:
        raise ValueError(f"Height x Width = {height}x{width} is larger than any image (at most "
                         f"{MAX_PIXELS:,} pixels); check the Height and Width columns")
    return height, width


def read_solution_csv(path, usage: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The stage-1 solution CSV as ``{ImageId: int32 label image (H, W)}``.

    Columns ``ImageId, EncodedPixels, Height, Width`` (and ``Usage``). Nuclei are numbered
    1..N in file order; a row with empty EncodedPixels adds an image with no nucleus. With
    ``usage`` (e.g. ``{"Private"}`` for stage 2's ``stage2_solution_final.csv``, whose
    ``Ignored`` rows are not scored) only rows whose Usage is in it are read; by default all
    are. Errors name the file and line (see the module docstring for the rules).

    Not built in a notebook: the labelled stage-1 test set reads it (notebook 09 describes it).
    """
    keep = None if usage is None else frozenset([usage] if isinstance(usage, str) else usage)
    return _read_rle_csv(path, SOLUTION_COLUMNS, None, keep)


def read_submission_csv(path, shapes: Mapping[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """A submission CSV (``ImageId, EncodedPixels``) as label images; ``shapes``: (H, W) per id.

    Used in notebook 09.
    """
    return _read_rle_csv(path, SUBMISSION_COLUMNS, shapes)
