"""Where the course runs: fast mode, device, seeds, folders and progress bars.

This is the **one place** that reads the environment. Everything else asks it:

* ``UNET_LESSON_FAST=1`` - CI's fast mode: tiny data and models, every notebook in well under a
  minute on two CPU cores. :func:`mode` says ``"fast"``, ``"cpu"`` or ``"gpu"``, and
  :func:`by_mode` picks a setting for each, so notebooks never need rewriting for CI.
* ``UNET_LESSON_DATA`` - the data folder (default: the repository's ``data/``, or ``./data``).
* ``UNET_LESSON_RUNS`` - where training runs, checkpoints and figures go (default ``runs/``).
* ``UNET_LESSON_DEVICE`` - force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

The device is never hard-coded: :func:`pick_device` tries CUDA, then Apple's MPS, then the CPU.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parent


def fast_mode() -> bool:
    """True when ``UNET_LESSON_FAST`` is set to 1/true/yes (CI and quick checks).

    Not built in a notebook: :func:`mode` reads it.
    """
    return os.environ.get("UNET_LESSON_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: ``prefer`` or ``UNET_LESSON_DEVICE``, else cuda, mps, cpu.

    Not built in a notebook: :func:`setup`, training and the command line call it.
    """
    prefer = prefer or os.environ.get("UNET_LESSON_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def mode(device: torch.device | None = None) -> str:
    """``"fast"`` (CI), ``"gpu"`` (CUDA or MPS) or ``"cpu"`` (a laptop).

    Used in notebook 00.
    """
    if fast_mode():
        return "fast"
    device = device or pick_device()
    return "cpu" if device.type == "cpu" else "gpu"


def by_mode(*, fast, cpu, gpu, device: torch.device | None = None):
    """Pick the setting for the current mode: ``num_epochs = by_mode(fast=1, cpu=10, gpu=60)``.

    Used in notebook 00.
    """
    return {"fast": fast, "cpu": cpu, "gpu": gpu}[mode(device)]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a run can be repeated.

    Used in notebook 10.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (libraries still draw from the legacy global generator)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _default_dir(variable: str, name: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    # an editable install or a clone: the repository's own folder (git-ignored)
    if (_REPO_DIR / "pyproject.toml").is_file():
        return _REPO_DIR / name
    return Path.cwd() / name


def data_dir() -> Path:
    """The folder where data sets are downloaded or generated (``UNET_LESSON_DATA``).

    Used in notebook 00.
    """
    return _default_dir("UNET_LESSON_DATA", "data")


def runs_dir() -> Path:
    """The folder for training runs, checkpoints and figures (``UNET_LESSON_RUNS``).

    Used in notebook 00.
    """
    return _default_dir("UNET_LESSON_RUNS", "runs")


def in_colab() -> bool:
    """True inside Google Colab.

    Not built in a notebook: :func:`describe` reports it.
    """
    return "google.colab" in sys.modules


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where progress bars are widgets).

    Not built in a notebook: :func:`progress` asks it.
    """
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress(iterable=None, **kwargs):
    """A ``tqdm.auto`` progress bar that shows in notebooks and terminals and stays quiet in CI.

    It is off in fast mode, when the output is not a terminal (a CI log), and when tqdm's own
    ``TQDM_DISABLE=1`` is set (used when storing notebook outputs); pass ``disable=False`` to
    force it on.

    Not built in a notebook: the package's long loops (reading, training, prediction).
    """
    from tqdm.auto import tqdm

    if "disable" not in kwargs:
        quiet = os.environ.get("TQDM_DISABLE", "").lower() in {"1", "true", "yes"}
        kwargs["disable"] = quiet or fast_mode() or not (in_notebook() or sys.stderr.isatty())
    return tqdm(iterable, **kwargs)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the course uses.

    Used in notebook 00.
    """
    import matplotlib
    import pandas
    import scipy
    import skimage

    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "unet_lesson": __version__,
    }


def describe(device: torch.device | None = None) -> dict[str, str]:
    """Mode, device (with the GPU's name), folders and versions, for the notebooks' setup cell.

    Used in notebook 10.
    """
    device = device or pick_device()
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return {
        "mode": mode(device),
        "device": name,
        "colab": str(in_colab()),
        "cpu threads": str(torch.get_num_threads()),
        "data dir": _shown(data_dir()),
        "runs dir": _shown(runs_dir()),
        **versions(),
    }


def _shown(path: Path) -> str:
    """A folder as the notebooks print it: relative to the repository when inside it."""
    try:
        return f"<repository>/{path.resolve().relative_to(_REPO_DIR)}"
    except ValueError:
        return str(path)


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """What every notebook's setup cell calls: seed, pick the device, print the environment.

    Used in notebook 00 (and in the setup cell of every notebook).
    """
    from .plotting import use_style

    use_style()
    seed_everything(seed)
    device = pick_device()
    if verbose:
        info = describe(device)
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
        print(f"{'seed':<{width}} : {seed}")
    return device
