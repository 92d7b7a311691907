"""Which data set the course uses: the real DSB 2018, or (CI, the demo) the synthetic one.

* :func:`course_data` - what notebooks 10-12 train on, called by their data cell: the real
  ``stage1_train``, downloaded on first use (the course's release, :mod:`.download`); when it
  cannot be had, an error that says the one command to run, never a silent switch to
  synthetic nuclei. CI's fast mode keeps the synthetic set.
* :func:`find_or_make_dataset` - the real set when it is there, else the synthetic one (said
  aloud outside fast mode): the lessons that only look at images.

Both return a :class:`DataSource`; printing it says which data, where, and which release, so
it is always clear which data a figure or a score comes from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import env
from ..data.dsb import sample_folders
from ..data.synthetic import make_synthetic_dsb
from . import download as downloads
from .release import identify_release

# free space the course's data needs to download: the archives and what they unpack to
DOWNLOAD_BYTES = 500 * 2**20
DOWNLOAD_COMMAND = "python -m unet_lesson download"


@dataclass(frozen=True)
class DataSource:
    """A data set folder in the DSB layout and what it is.

    Not built in a notebook: :func:`find_or_make_dataset` returns it.
    """

    root: Path  # the folder holding the <image_id>/ samples
    kind: str  # "real" or "synthetic"
    n_images: int
    release: str = ""  # real data: which release, and how many of its images are here

    def __str__(self) -> str:
        try:  # the same on every machine: relative to the data folder the setup cell prints
            where = f"{self.root.relative_to(env.data_dir())} of the data folder"
        except ValueError:
            where = str(self.root)
        text = f"{self.kind} data: {self.n_images} images in {where}"
        return f"{text}; {self.release}" if self.release else text


def dsb_dir() -> Path:
    """``env.data_dir()/dsb2018``: where :func:`~unet_lesson.data.download_dsb2018` unpacks
    ``stage1_train/``, ``stage1_test/`` and ``stage1_solution.csv`` by default.

    Not built in a notebook: :func:`real_dsb_root` and the data downloads use it.
    """
    return env.data_dir() / "dsb2018"


def real_dsb_root() -> Path:
    """The real training set, ``env.data_dir()/dsb2018/stage1_train``.

    Not built in a notebook: :func:`find_or_make_dataset` and the tests look there.
    """
    return dsb_dir() / "stage1_train"


def synthetic_root(n_images: int, seed: int = 0) -> Path:
    """``env.data_dir()/synthetic/n<n_images>-seed<seed>``: one folder per set.

    Not built in a notebook: :func:`find_or_make_dataset` makes the synthetic set there.
    """
    return env.data_dir() / "synthetic" / f"n{n_images}-seed{seed}"


def default_synthetic_size() -> int:
    """Images in the default synthetic set: 24 in fast mode, 200 on a CPU, 600 on a GPU.

    Not built in a notebook: :func:`find_or_make_dataset` uses it.
    """
    return env.by_mode(fast=24, cpu=200, gpu=600)


def find_or_make_dataset(prefer: str = "auto", n_images: int | None = None, seed: int = 0
                         ) -> DataSource:
    """The data set to use.

    ``prefer="auto"``: the real ``env.data_dir()/dsb2018/stage1_train`` when it holds samples,
    else the synthetic set (generated on first use, a few seconds). ``"real"`` raises if the
    real data is absent; ``"synthetic"`` always uses the synthetic set. ``n_images`` and
    ``seed`` choose the synthetic set (default size: :func:`default_synthetic_size`).

    Used in notebook 08.
    """
    if prefer not in ("auto", "real", "synthetic"):
        raise ValueError(f"prefer must be 'auto', 'real' or 'synthetic', got {prefer!r}")
    real = real_dsb_root()
    if prefer in ("auto", "real"):
        try:
            return _real(real)
        except FileNotFoundError:
            if prefer == "real":
                raise FileNotFoundError(
                    f"the real DSB 2018 data is not at {real}: download it with "
                    f"unet_lesson.course.download.download_dsb2018() or `{DOWNLOAD_COMMAND}`, "
                    f"or set UNET_LESSON_DATA"
                ) from None
            if not env.fast_mode():
                print(f"no real data at {real}: the synthetic set instead (`{DOWNLOAD_COMMAND}`"
                      f" fetches the real one)")
    n_images = n_images if n_images is not None else default_synthetic_size()
    root = make_synthetic_dsb(synthetic_root(n_images, seed), n_images, seed)
    return DataSource(root, "synthetic", n_images)


def _real(root: Path) -> DataSource:
    """The real set at ``root`` (FileNotFoundError when it holds no samples)."""
    n_images = len(sample_folders(root))
    return DataSource(root, "real", n_images, identify_release(root)["description"])


class DataMissingError(FileNotFoundError):
    """The course's data is not here and could not be downloaded; the message says the one
    command to run."""


def course_data(parts: tuple[str, ...] = ("stage1_train",), download=None) -> DataSource:
    """The data notebooks 10-12 train and score on; their data cell calls it first.

    Fast mode (CI): :func:`find_or_make_dataset` (the synthetic set unless the real one is
    there). Otherwise the real ``stage1_train`` under ``env.data_dir()/dsb2018``: returned at
    once when it is there; else downloaded now (the course's release, verified, with a
    progress bar; ``parts`` of :func:`~unet_lesson.course.download.download_dsb2018`). When
    that fails (offline, too little space), :class:`DataMissingError` says the one command to
    run and how to keep the data on a Drive folder; it never falls back to synthetic nuclei.
    ``download``: the function that downloads (tests pass a fake).
    """
    if env.fast_mode():
        return find_or_make_dataset()
    real = real_dsb_root()
    try:
        return _real(real)
    except FileNotFoundError:
        pass
    download = download or downloads.download_dsb2018
    dest = dsb_dir()
    print(f"no real data at {real}: downloading the course's release of the DSB 2018 training "
          f"set into {dest} (once; a few minutes)", flush=True)
    try:
        _check_space(dest)
        download(dest, parts=parts)
        return _real(real)
    except (downloads.DownloadError, OSError) as error:
        raise DataMissingError(_missing_message(real, error)) from None


def _check_space(dest: Path) -> None:
    existing = next(p for p in (dest, *dest.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < DOWNLOAD_BYTES:
        raise OSError(f"{existing} has {free / 2**20:.0f} MiB free; the download needs about "
                      f"{DOWNLOAD_BYTES / 2**20:.0f} MiB")


def _missing_message(real: Path, error: Exception) -> str:
    return (f"the course's data is not at {real}, and downloading it failed: {error}. Run "
            f"`{DOWNLOAD_COMMAND}` where there is a network (in Colab, a cell with "
            f"`!{DOWNLOAD_COMMAND}`), then run this cell again; or point UNET_LESSON_DATA at a "
            f"folder that holds dsb2018/stage1_train (in Colab, a Google Drive folder, once "
            f"Drive is mounted: `%env UNET_LESSON_DATA=/content/drive/MyDrive/unet-lesson/data`"
            f")")
