"""The notebooks' setup cell: seeds, device, and what the environment is, printed.

Every notebook's first code cell calls :func:`setup`; :func:`describe` is what it prints
(mode, device, Colab or not, folders, versions), and :func:`show_source` brings the package's
code into a hosted notebook, where the package is installed out of sight. :func:`quoted`
prints a number the notebook's text quotes, so a test can hold the two together.

Not built in a notebook: the machinery of the notebooks' setup cell.
"""

from __future__ import annotations

import inspect
import platform
import re
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .. import env


def in_colab() -> bool:
    """True inside Google Colab.

    Not built in a notebook: :func:`describe` reports it.
    """
    return "google.colab" in sys.modules



def show_source(obj) -> None:
    """Show the source code of a function, class or module of the package.

    In Colab or Kaggle the package is installed out of sight (in ``site-packages``); this brings
    its code into the notebook: highlighted Markdown in a notebook, plain text elsewhere. For
    example ``env.show_source(env.setup)`` or ``env.show_source(UNet)``.

    Not built in a notebook: for students who want to read the package from a notebook.
    """
    lines, start = inspect.getsourcelines(obj)
    source = "".join(lines)
    where = _shown_file(Path(inspect.getsourcefile(obj) or "?"))
    where += f", line {max(start, 1)}"
    if env.in_notebook():
        from IPython.display import Markdown, display

        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
        display(Markdown(f"`{where}`\n\n{fence}python\n{source.rstrip()}\n{fence}"))
    else:
        print(f"# {where}\n{source.rstrip()}")


def _shown_file(path: Path) -> str:
    """A source file as ``unet_lesson/model.py`` (wherever the package is installed)."""
    try:
        return str(PurePosixPath(path.resolve().relative_to(env.PACKAGE_DIR.parent)))
    except ValueError:
        return str(path)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the course uses.

    Used in notebook 00.
    """
    import matplotlib
    import pandas
    import scipy
    import skimage

    from .. import __version__

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

    Not built in a notebook: run records and ``benchmarks/gpu_acceptance.py`` call it.
    """
    device = device or env.pick_device()
    return {
        "mode": env.mode(device) + (" (Apple MPS: the CPU sizing)" * (device.type == "mps")),
        "device": env.device_name(device),
        "colab": str(in_colab()),
        "cpu threads": str(torch.get_num_threads()),
        "data dir": _shown(env.data_dir()),
        "runs dir": _shown(env.runs_dir()),
        **versions(),
    }


def _shown(path: Path) -> str:
    """A folder as the notebooks print it: relative to the repository when inside it."""
    if not env.in_checkout():
        return str(path)
    try:
        return f"<repository>/{path.resolve().relative_to(env.REPO_DIR)}"
    except ValueError:
        return str(path)


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """What every notebook's setup cell calls: seed, pick the device, print the environment.

    Used in notebooks 00, 01, 02, 03, 04, 05, 06, 07, 08, 09, 10, 11, 11b, 12 and 12b.
    """
    from ..plotting import use_style

    use_style()
    env.seed_everything(seed)
    device = env.pick_device()
    if verbose:
        info = describe(device)
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
        print(f"{'seed':<{width}} : {seed}")
    return device


def quoted(name: str, value, fmt: str = ".3f") -> str:
    """Print ``[name] <value>`` and return the formatted value: a number the notebook's
    markdown quotes, written there as ``<value><!--q:name-->`` (the comment is invisible in
    the rendered notebook). ``tests/test_quoted_numbers.py`` checks that every quoted number
    equals the stored output of the same name, so the text cannot drift from the run."""
    text = format(value, fmt)
    print(f"[{name}] {text}")
    return text
