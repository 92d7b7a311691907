"""Where the course runs: fast mode, device, seeds, folders and progress bars.

This is the **one place** that reads the environment. Everything else asks it:

* ``UNET_LESSON_FAST=1`` - CI's fast mode: tiny data and models, every notebook in well under a
  minute on two CPU cores. :func:`mode` says ``"fast"``, ``"cpu"`` or ``"gpu"``, and
  :func:`by_mode` picks a setting for each, so notebooks never need rewriting for CI.
* ``UNET_LESSON_DATA`` - the data folder. Default: the repository's ``data/`` when the package
  runs from a clone (an editable install), else ``./data`` in the current folder (an installed
  wheel, e.g. in Colab: ``/content/data``); never inside ``site-packages``.
* ``UNET_LESSON_RUNS`` - where training runs, checkpoints and figures go (``runs/``, likewise).
* ``UNET_LESSON_DEVICE`` - force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

The device is never hard-coded: :func:`pick_device` tries CUDA, then Apple's MPS, then the CPU.
:func:`cpu_count` says how many CPUs this process may really use (for DataLoader workers), and
:func:`in_notebook` whether it runs in a Jupyter kernel (JupyterLab, Colab, Kaggle, ...).
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import torch

PACKAGE_DIR = Path(__file__).resolve().parent  # unet_lesson/
REPO_DIR = PACKAGE_DIR.parent  # the clone, when in_checkout()


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
    """``"fast"`` (CI), ``"gpu"`` (CUDA) or ``"cpu"`` (a laptop, also with Apple's MPS).

    Apple's MPS gets the CPU sizing: the GPU sizing is made for a CUDA GPU (mixed precision,
    several DataLoader workers, augmentation on the device), which a laptop's MPS does not
    match.

    Used in notebooks 00, 12 and 12b.
    """
    if fast_mode():
        return "fast"
    device = device or pick_device()
    return "gpu" if device.type == "cuda" else "cpu"


def device_name(device: torch.device) -> str:
    """``"cpu"``, ``"mps"`` or ``"cuda:0 (NVIDIA H200)"``: the device with the GPU's name.

    Not built in a notebook: run records and the setup cell print it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def by_mode(*, fast, cpu, gpu, device: torch.device | None = None):
    """Pick the setting for the current mode: ``num_epochs = by_mode(fast=1, cpu=10, gpu=60)``.

    Used in notebooks 00, 02, 04, 05, 06, 07, 09, 10, 11 and 12.
    """
    return {"fast": fast, "cpu": cpu, "gpu": gpu}[mode(device)]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a run can be repeated.

    Used in notebook 10.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (libraries still draw from the legacy global generator)
    torch.manual_seed(seed)  # also seeds every CUDA device


def in_checkout() -> bool:
    """True when the package runs from a clone of the course (an editable install).

    The folder above the package must hold *our* ``pyproject.toml``: an installed wheel sits in
    ``site-packages``, where another project's stray ``pyproject.toml`` must not count.

    Not built in a notebook: the folders and the setup cell's printout ask it.
    """
    try:
        text = (REPO_DIR / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'^name\s*=\s*"unet-lesson"', text, re.M) is not None


def _default_dir(variable: str, name: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    if in_checkout():  # a clone: the repository's own folder (git-ignored)
        return REPO_DIR / name
    return Path.cwd() / name  # an installed wheel: next to the notebook or the command


def data_dir() -> Path:
    """The folder where data sets are downloaded or generated (``UNET_LESSON_DATA``).

    Used in notebook 00.
    """
    return _default_dir("UNET_LESSON_DATA", "data")


def runs_dir() -> Path:
    """The folder for training runs, checkpoints and figures (``UNET_LESSON_RUNS``).

    Used in notebooks 00, 11, 12 and 12b.
    """
    return _default_dir("UNET_LESSON_RUNS", "runs")


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where progress bars are widgets.

    The kernel's shell is ipykernel's ``ZMQInteractiveShell`` or a subclass of it: Colab's is
    one, named ``Shell``, so the test is ``isinstance``, not the class's name. Consoles built on
    the same kernel (Qt console, Spyder) show no widgets and do not count.

    Not built in a notebook: :func:`progress` asks it.
    """
    zmqshell = sys.modules.get("ipykernel.zmqshell")  # imported by every Jupyter kernel
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    if any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ):
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def progress(iterable=None, **kwargs):
    """A progress bar: a widget in notebooks, text in terminals, nothing in CI logs.

    It is on in a notebook (JupyterLab, Colab, Kaggle: their stderr is not a terminal) and in a
    terminal, and off in fast mode, when tqdm's own ``TQDM_DISABLE=1`` is set (used when storing
    notebook outputs) and when stderr is not a terminal outside a notebook (a CI log). Pass
    ``disable=False`` to force it on. A notebook without ``ipywidgets`` gets a text bar.

    Not built in a notebook: the package's long loops (reading, training, prediction).
    """
    if "disable" not in kwargs:
        quiet = os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}
        kwargs["disable"] = quiet or fast_mode() or not (in_notebook() or _stderr_is_terminal())
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(iterable, **kwargs)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def cpu_count() -> int:
    """How many CPUs this process may use: for DataLoader workers and thread pools.

    ``os.cpu_count()`` counts the machine's CPUs; a container or a hosted runtime often gets
    fewer. This takes the CPUs the process is allowed to run on (its affinity mask,
    ``os.process_cpu_count`` on Python 3.13+), capped by the CPU quota of its cgroup (v2
    ``cpu.max``, v1 ``cpu.cfs_quota_us``) rounded down, and is at least 1.

    Not built in a notebook: :func:`unet_lesson.config.course_config` sizes the GPU path's
    DataLoader workers with it.
    """
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counter is not None:
        count = counter()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        count = os.cpu_count()
    count = count or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, int(quota))
    return max(1, count)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"),
                      membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """The smallest CPU quota (in CPUs) on this process's cgroup or its parents, or None.

    ``membership`` lists the process's cgroups (``id:controllers:path``); cgroup v2 (empty
    controllers) keeps ``cpu.max`` ("max 100000" or "150000 100000") in ``root/path``, v1 keeps
    ``cpu.cfs_quota_us`` (-1: none) and ``cpu.cfs_period_us`` under ``root/cpu``.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            mounts, files = [root], ("cpu.max",)
        elif "cpu" in controllers.split(","):
            mounts = [root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"]
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        parts = PurePosixPath(path.strip() or "/").parts[1:]
        for mount in mounts:
            for depth in range(len(parts), -1, -1):  # the cgroup itself, then its parents
                quota = _read_quota(mount.joinpath(*parts[:depth]), files)
                if quota is not None:
                    quotas.append(quota)
    return min(quotas) if quotas else None


def _read_quota(folder: Path, files: tuple[str, ...]) -> float | None:
    try:
        values = [(folder / name).read_text().split() for name in files]
        if len(values) == 1:  # v2: "quota period"
            quota, period = values[0][:2]
        else:  # v1: one number per file
            quota, period = values[0][0], values[1][0]
        if quota in {"max", "-1"}:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None
