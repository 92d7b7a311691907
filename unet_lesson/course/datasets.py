"""Which data set the course uses: the real DSB 2018 when it is there, else the synthetic one.

Every notebook and the command line call :func:`find_or_make_dataset` and print what it
returns, so it is always clear which data a figure or a score comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import env
from ..data.dsb import sample_folders
from ..data.synthetic import make_synthetic_dsb


@dataclass(frozen=True)
class DataSource:
    """A data set folder in the DSB layout and what it is.

    Not built in a notebook: :func:`find_or_make_dataset` returns it.
    """

    root: Path  # the folder holding the <image_id>/ samples
    kind: str  # "real" or "synthetic"
    n_images: int

    def __str__(self) -> str:
        try:  # shorter, and the same on every machine: relative to the data folder
            where = Path("<data dir>") / self.root.relative_to(env.data_dir())
        except ValueError:
            where = self.root
        return f"{self.kind} data: {self.n_images} images in {where}"


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

    Used in notebook 01.
    """
    if prefer not in ("auto", "real", "synthetic"):
        raise ValueError(f"prefer must be 'auto', 'real' or 'synthetic', got {prefer!r}")
    real = real_dsb_root()
    if prefer in ("auto", "real"):
        try:
            return DataSource(real, "real", len(sample_folders(real)))
        except FileNotFoundError:
            if prefer == "real":
                raise FileNotFoundError(
                    f"the real DSB 2018 data is not at {real}: download it with "
                    f"unet_lesson.data.download_dsb2018() (source='bbbc038' needs no account) "
                    f"or `python -m unet_lesson download`, or set UNET_LESSON_DATA"
                ) from None
    n_images = n_images if n_images is not None else default_synthetic_size()
    root = make_synthetic_dsb(synthetic_root(n_images, seed), n_images, seed)
    return DataSource(root, "synthetic", n_images)
