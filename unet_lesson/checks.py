"""Argument checks and conversions shared by the package, each written once.

Every error names the argument, what it got and what it takes, so a student knows what to fix.

Not built in a notebook: notebooks 07 and 09 use these checks through the weight map and the
metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    Not built in a notebook: the package checks its arguments with it.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_range(name: str, value, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (``<`` where the end is open).

    ``None`` means no bound. NaN is never in range.

    Not built in a notebook: the package checks its arguments with it.
    """
    bad = isinstance(value, float) and math.isnan(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        left = "" if low is None else f"{low} {'<' if low_open else '<='} "
        right = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must satisfy {left}{name}{right}, got {value!r}")


def to_numpy(value) -> np.ndarray:
    """A numpy array from a numpy array, a list, or a torch tensor on any device.

    Not built in a notebook: the package converts its inputs with it.
    """
    if hasattr(value, "detach"):  # a torch tensor (no torch import needed here)
        value = value.detach().cpu()
    return np.asarray(value)


def check_label_image(labels, name: str = "labels") -> np.ndarray:
    """A 2-D integer label image (0 = background, 1..N nuclei) as a numpy array, or an error.

    Accepts numpy arrays and torch tensors; booleans count as one nucleus. Raises
    ``ValueError`` for another number of dimensions or negative ids and ``TypeError`` for
    floating-point values (a probability map is not a label image).

    Not built in a notebook: the metrics and the weight map check their inputs with it.
    """
    labels = to_numpy(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be a 2-D label image (H, W), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(
            f"{name} must hold integer nucleus ids (0 = background), got dtype {labels.dtype}; "
            "label a binary mask first (scipy.ndimage.label), or turn a probability map into "
            "nuclei with unet_lesson.instances"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} has negative ids; use 0 for background and 1..N for nuclei")
    return labels
