r"""Reading the 2018 Data Science Bowl layout: one image, and one binary PNG per nucleus.

The competition (and :func:`~unet_lesson.data.make_synthetic_dsb`) stores each sample as::

    <root>/<image_id>/images/<image_id>.png   # the image
    <root>/<image_id>/masks/<mask_id>.png     # one binary PNG per nucleus

The U-Net of the paper (Ronneberger et al. 2015, section 3) learns from a label image, so we
**merge** the masks into one integer image: 0 is background and nucleus ``k`` (1-based, in the
sorted order of the mask file names) is the value ``k``.

Real files are messy, and the reader takes them as they come:

* images may be RGBA (the alpha is dropped: it is 255 everywhere in the DSB), RGB, grey,
  grey+alpha, palette, 16-bit (scaled so that the brightest pixel is 255) or floating point
  (values in [0, 1] times 255, others scaled like 16-bit); the result is always
  ``uint8 (H, W, 3)``. NaN, infinite or negative pixel values raise :class:`DSBDataError`;
* a mask pixel is "on" when it is non-zero (0/255 in the DSB, 0/1 elsewhere);
* **overlapping masks** (six of the 586 real ``stage1_train`` images have a few pixels claimed
  by two nuclei) follow one rule: *a pixel claimed by several masks goes to the smallest of
  them* (ties: the first mask file in sorted order). A small nucleus therefore keeps all of its
  pixels against a larger neighbour, and the larger one loses only the contested rim. After
  merging, every nucleus must still own at least one pixel; if one does not (a duplicated mask,
  or a mask covered entirely by smaller ones) the reader raises :class:`DSBDataError` naming it;
* a mask of the wrong size, an empty mask, a missing image file, an unreadable PNG or a
  symbolic link that leads nowhere raises :class:`DSBDataError` naming the file;
  :func:`read_dsb_folder` can instead skip such samples and report them (``on_error="skip"``;
  ``--skip-bad`` on the command line).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import env
from . import cache as label_cache

# how to go on past a bad sample, in Python and on the command line
SKIP = "or skip such samples (on_error='skip'; --skip-bad for train, evaluate and predict)"


class DSBDataError(ValueError):
    """A sample that cannot be read; ``path`` is the offending file or folder.

    Not built in a notebook: the reader raises it for a file or folder it cannot read.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class DSBSample:
    """One image of the data set with its merged label image.

    Not built in a notebook: :func:`read_dsb_folder` yields one per image.
    """

    image_id: str
    image: np.ndarray  # uint8 (H, W, 3)
    labels: np.ndarray  # int32 (H, W): 0 background, 1..N nuclei (sorted mask-file order)
    folder: Path  # the <image_id>/ folder it came from
    n_contested: int = 0  # pixels claimed by several masks (given to the smallest nucleus)

    @property
    def n_nuclei(self) -> int:
        return int(self.labels.max(initial=0))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def image_file(folder: str | Path) -> Path:
    """``<folder>/images/<image_id>.png`` (raises :class:`DSBDataError` if it is missing).

    Not built in a notebook: the reader and the label cache use it.
    """
    folder = Path(folder)
    path = folder / "images" / f"{folder.name}.png"
    if path.is_file():
        return path
    if path.is_symlink():
        raise DSBDataError(path, _LINK)
    if folder.name in ("images", "masks"):
        raise DSBDataError(folder, f"this is part of one sample, not a sample: the data "
                                   f"folder is {folder.parent.parent}, the one holding "
                                   f"<image_id>/ folders")
    if folder.is_dir() and any((sub / "images").is_dir() for sub in folder.iterdir()):
        raise DSBDataError(folder, f"this folder holds samples itself (one level deeper than "
                                   f"expected): use {folder} as the data folder")
    if folder.is_dir() and not (folder / "images").is_dir():
        raise DSBDataError(folder, f"not a sample (no images/ inside): the data folder must hold "
                                   f"only <image_id>/ folders; is {folder.parent} the right one?")
    raise DSBDataError(path, f"missing image file (the layout is <image_id>/images/"
                             f"<image_id>.png); the download may be incomplete: download "
                             f"again, {SKIP}")


_LINK = f"a symbolic link that leads nowhere (broken, or a loop): fix or delete it, {SKIP}"


def mask_files(folder: str | Path) -> list[Path]:
    """The sorted ``<folder>/masks/*.png`` (raises :class:`DSBDataError` without ``masks/``).

    Not built in a notebook: the reader and the label cache use it.
    """
    masks = Path(folder) / "masks"
    if not masks.is_dir():
        raise DSBDataError(
            masks,
            "no masks/ folder: this is not a training sample (stage1_test images have no masks;"
            " their labels are in stage1_solution.csv). Use read_dsb_image() for the image alone",
        )
    found = sorted(p for p in masks.iterdir() if p.suffix.lower() == ".png"
                   and not p.name.startswith("."))
    for path in found:
        if not path.is_file():
            raise DSBDataError(path, _LINK if path.is_symlink() else f"not a file; {SKIP}")
    return found


def sample_folders(root: str | Path) -> list[Path]:
    """The ``<image_id>/`` folders under ``root``, sorted (names starting . or _ skipped).

    Not built in a notebook: the reader, the stage-1 test set and the command line use it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no data set at {root}: download one with download_dsb2018() or generate one with "
            f"make_synthetic_dsb() (find_or_make_dataset() does either for you)"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._")
    if not folders:
        raise FileNotFoundError(f"{root} holds no <image_id>/ sample folders")
    return folders


def _open_png(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DSBDataError(
            path, f"unreadable PNG ({error}); download the data set again, {SKIP}") from error


def read_image(path: str | Path) -> np.ndarray:
    """Any PNG of the data set as ``uint8 (H, W, 3)`` (see the module docstring for the rules).

    Not built in a notebook: the reader reads every image with it.
    """
    path = Path(path)
    with _open_png(path) as image:
        if image.mode in ("P", "PA", "1"):
            image = image.convert("RGBA" if image.mode != "1" else "L")
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop the alpha channel
    if array.dtype != np.uint8:
        array = _to_uint8(array, path)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """16- or 32-bit values stretched so the brightest pixel is 255; floats in [0, 1] times
    255. Values that are not finite, or negative, are refused with the file named."""
    values = array.astype(np.float64)
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise DSBDataError(path, f"{bad} pixel(s) are NaN or infinite: the reader takes finite "
                                 f"values only; fix or delete the image, {SKIP}")
    if values.min(initial=0) < 0:
        raise DSBDataError(path, f"negative pixel values (down to {values.min():g}): the reader "
                                 f"takes values from 0 up; fix or delete the image, {SKIP}")
    top = values.max(initial=0)
    unit = array.dtype.kind == "f" and top <= 1  # a float image in [0, 1]
    scale = 255.0 if unit else 255.0 / top if top > 0 else 1.0
    return np.round(values * scale).astype(np.uint8)


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """One nucleus mask as the flat indices of its pixels (row-major, into an ``shape`` image).

    Raises :class:`DSBDataError` if the mask's size differs from ``shape`` or it is empty.

    Not built in a notebook: :func:`load_sample` reads every mask with it.
    """
    path = Path(path)
    with _open_png(path) as image:
        array = np.asarray(image)
    if array.ndim == 3:
        channels = array.shape[-1]
        array = array[..., : 3 if channels >= 3 else 1].max(axis=-1)  # ignore any alpha
    if array.shape != tuple(shape):
        raise DSBDataError(
            path, f"mask has size {array.shape[0]}x{array.shape[1]} but its image has size "
                  f"{shape[0]}x{shape[1]}; fix or delete this mask, {SKIP}")
    pixels = np.flatnonzero(array)
    if pixels.size == 0:
        raise DSBDataError(path, f"empty mask (no nucleus pixel); delete it, {SKIP}")
    return pixels


# --------------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------------


def merge_masks(masks: Sequence[np.ndarray], shape: tuple[int, int],
                names: Sequence[str | Path] | None = None) -> tuple[np.ndarray, int]:
    """Merge per-nucleus masks into one label image; returns ``(labels int32, n_contested)``.

    ``masks`` holds, per nucleus, either a boolean ``(H, W)`` mask or the flat indices of its
    pixels. Nucleus ``k`` (1-based, in the given order) gets the value ``k``. A pixel claimed
    by several masks goes to the smallest of them (ties: the earlier mask); ``n_contested``
    counts such pixels. Raises :class:`DSBDataError` if a nucleus is left with no pixel.

    Notebook 01 writes the same rule by hand and checks the reader's label images against it.

    Not built in a notebook on its own: :func:`load_sample` calls it.
    """
    height, width = shape
    flat = [np.flatnonzero(m) if np.asarray(m).dtype == bool else np.asarray(m) for m in masks]
    labels = np.zeros(height * width, dtype=np.int32)
    if not flat:
        return labels.reshape(shape), 0
    areas = np.array([f.size for f in flat])
    # paint the largest first, so smaller nuclei overwrite the pixels they share with larger ones
    order = sorted(range(len(flat)), key=lambda i: (-areas[i], -i))
    for i in order:
        labels[flat[i]] = i + 1
    claims = np.bincount(np.concatenate(flat), minlength=height * width)
    n_contested = int((claims > 1).sum())
    if n_contested:
        kept = np.bincount(labels, minlength=len(flat) + 1)[1:]
        lost = np.flatnonzero(kept == 0)
        if lost.size:
            which = [str(names[i]) if names is not None else f"mask {i + 1}" for i in lost]
            raise DSBDataError(
                Path(which[0]),
                f"{len(which)} mask(s) lie entirely under smaller masks and would vanish when "
                f"merged (duplicates?): {', '.join(which)}. Delete the duplicate, {SKIP}")
    return labels.reshape(shape), n_contested


# --------------------------------------------------------------------------------------------
# Samples and folders
# --------------------------------------------------------------------------------------------


def read_dsb_image(folder: str | Path) -> np.ndarray:
    """The image of one ``<image_id>/`` folder, ``uint8 (H, W, 3)`` (no masks needed).

    Used in notebook 08.
    """
    return read_image(image_file(folder))


def load_sample(folder: str | Path, cache_dir: str | Path | None | bool = None,
                executor: Executor | None = None) -> DSBSample:
    """Read one sample, using the label cache when ``cache_dir`` is not ``None``/``False``.

    ``cache_dir=True`` uses the default cache (``env.data_dir()/cache/labels``).

    Not built in a notebook: :func:`read_dsb_sample` and :func:`read_dsb_folder` call it.
    """
    folder = Path(folder)
    image_path = image_file(folder)
    masks = mask_files(folder)
    image = read_image(image_path)
    shape = image.shape[:2]
    entry = fp = None
    if cache_dir is not None and cache_dir is not False:
        base = None if cache_dir is True else cache_dir
        entry = label_cache.cache_folder(folder.parent, base) / f"{folder.name}.npz"
        try:
            fp = label_cache.fingerprint(image_path, masks)
        except OSError as error:  # a file that vanished or cannot be read since it was listed
            raise DSBDataError(error.filename or folder, f"cannot read it ({error.strerror}); "
                                                         f"{SKIP}") from None
        hit = label_cache.load_labels(entry, fp)
        if hit is not None and hit[0].shape == shape:
            return DSBSample(folder.name, image, hit[0], folder, hit[1])
    if executor is not None and len(masks) > 8:
        pixels = list(executor.map(lambda p: read_mask(p, shape), masks))
    else:
        pixels = [read_mask(p, shape) for p in masks]
    labels, n_contested = merge_masks(pixels, shape, names=masks)
    if entry is not None:
        label_cache.save_labels(entry, fp, labels, n_contested)
    return DSBSample(folder.name, image, labels, folder, n_contested)


def read_dsb_sample(folder: str | Path, cache: bool | str | Path = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One ``<image_id>/`` folder -> ``(image uint8 (H, W, 3), labels int32 (H, W))``.

    Labels: 0 background, 1..N the N nuclei in sorted mask-file order; overlapping pixels go to
    the smaller nucleus. ``cache=True`` uses (and fills) the label cache.

    Built in notebook 01.
    """
    sample = load_sample(folder, cache_dir=cache)
    return sample.image, sample.labels


def read_dsb_folder(root: str | Path, *, ids: Iterable[str] | None = None,
                    cache: bool | str | Path = True, on_error: str = "raise",
                    skipped: list[DSBDataError] | None = None, workers: int | None = None,
                    progress: bool | None = None) -> Iterator[DSBSample]:
    """Iterate a ``stage1_train/``-style folder, yielding a :class:`DSBSample` per image.

    Parameters
    ----------
    ids : read only these image ids (in this order); default all, sorted by id.
    cache : ``True`` (default) for the label cache under ``env.data_dir()/cache``, a folder for
        another place, ``False`` to always merge the mask PNGs again.
    on_error : ``"raise"`` (default) stops at the first bad sample with a
        :class:`DSBDataError` naming the file; ``"skip"`` skips it with a warning and appends
        the error to ``skipped`` (when given), so nothing is dropped silently.
    workers : threads decoding mask PNGs when the cache misses (default: up to 4).
    progress : show a progress bar (default: when some labels must be merged, as
        :func:`unet_lesson.env.progress` decides).

    Not built in a notebook: :func:`load_dsb_folder` calls it.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    root = Path(root)
    if ids is None:
        folders = sample_folders(root)
    else:
        folders = [root / i for i in ids]
        missing = [f.name for f in folders if not f.is_dir()]
        if missing:
            raise FileNotFoundError(f"{root} has no sample folder for the ids {missing[:5]}"
                                    f"{' ...' if len(missing) > 5 else ''}")
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if progress is None and cache is not False and _all_cached(root, folders, cache):
        progress = False  # a cached read takes seconds: no bar
    bar_kwargs = {} if progress is None else {"disable": not progress}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:
        for folder in env.progress(folders, desc=f"reading {root.name}", unit="image",
                                   **bar_kwargs):
            try:
                yield load_sample(folder, cache_dir=cache, executor=executor if workers > 1
                                  else None)
            except DSBDataError as error:
                if on_error == "raise":
                    raise
                warnings.warn(f"skipped sample {folder.name}: {error}", stacklevel=2)
                if skipped is not None:
                    skipped.append(error)


def _all_cached(root: Path, folders: list[Path], cache: bool | str | Path) -> bool:
    """Whether every sample has a cache entry (fresh or not: only to decide on a progress bar)."""
    entries = label_cache.cache_folder(root, None if cache is True else cache)
    return all((entries / f"{f.name}.npz").is_file() for f in folders)


def load_dsb_folder(root: str | Path, **kwargs) -> list[DSBSample]:
    """:func:`read_dsb_folder` into a list (same arguments).

    Used in notebooks 01, 08, 10, 12 and 12b.
    """
    return list(read_dsb_folder(root, **kwargs))

