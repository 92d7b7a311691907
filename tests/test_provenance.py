"""Every public function and class says which notebook builds it (d2l's "Defined in").

A reader who meets ``unet_lesson.weights.weight_map`` should find, at the end of its docstring,
the lesson where the idea is written out by hand. One line, in one of three forms:

* ``Built in notebook 07.``: the notebook builds the idea in plain view and checks it against
  the package;
* ``Used in notebook 10.``: the notebook calls it but does not build it;
* ``Not built in a notebook: <who uses it>.``: plumbing for the command line, training, tests.

Every ``notebook NN`` on that line must exist and must mention the object by name (for
``Built in``, its module's name followed by a dot, e.g. ``weights.``, also counts), so a line
cannot point at a lesson that never shows the thing.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from functools import cache
from pathlib import Path

import unet_lesson

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

PROVENANCE = re.compile(r"(Built|Used) in notebooks? \d\d|Not built in a notebook")
# "notebook 07", "notebooks 00 and 10", "notebooks 02-05", "notebooks 07, 08 and 09"
REFERENCE = re.compile(r"\bnotebooks?\s+(\d\d(?:(?:\s*[,-]\s*|\s+and\s+|\s+to\s+)\d\d)*)")
FIX = ('add a line at the end of its docstring: "Built in notebook NN." (built by hand there and '
       'checked against the package), "Used in notebook NN." (called there) or "Not built in a '
       'notebook: <who uses it>."')


def _modules():
    """The package and every module in it, imported (``__main__`` would run the CLI)."""
    names = ["unet_lesson"] + sorted(
        info.name for info in pkgutil.walk_packages(unet_lesson.__path__, "unet_lesson.")
        if info.name.rsplit(".", 1)[-1] != "__main__")
    return [importlib.import_module(name) for name in names]


def _public_objects(module):
    """Public functions and classes defined in ``module`` itself (not imported into it)."""
    return [(name, obj) for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__]


@cache
def _notebook_text(number: str) -> str | None:
    """The source of every cell (code and markdown) of ``notebooks/NN_*.ipynb``, or None."""
    paths = sorted(NOTEBOOK_DIR.glob(f"{number}_*.ipynb"))
    if len(paths) != 1:
        return None
    cells = json.loads(paths[0].read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


def _numbers(reference: str) -> list[str]:
    """``"02-05"`` -> 02, 03, 04, 05; ``"00 and 10"`` -> 00, 10."""
    numbers = []
    for part in re.split(r"\s*,\s*|\s+and\s+", reference):
        bounds = [int(n) for n in re.findall(r"\d\d", part)]
        numbers += [f"{n:02d}" for n in range(bounds[0], bounds[-1] + 1)]
    return numbers


def _mentions(text: str, word: str) -> bool:
    """``word`` as a whole name (``weight_map`` counts in ``weights.weight_map(...)``)."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def _problems(module, name: str, obj) -> list[str]:
    """What is wrong with one object's provenance line, as messages with the fix."""
    where = f"{module.__name__}.{name}"
    doc = inspect.cleandoc(obj.__doc__ or "")
    lines = [line for line in doc.splitlines() if PROVENANCE.search(line)]
    if not lines:
        return [f"{where}: no provenance line; {FIX}"]
    short = module.__name__.rsplit(".", 1)[-1]
    problems = []
    for line in lines:
        built = line.lstrip().startswith("Built in")
        for reference in REFERENCE.findall(line):
            for number in _numbers(reference):
                text = _notebook_text(number)
                if text is None:
                    problems.append(f"{where}: names notebook {number}, but there is no single "
                                    f"notebooks/{number}_*.ipynb; fix the number in {line!r}")
                elif not (_mentions(text, name)
                          or (built and re.search(rf"\b{re.escape(short)}\.", text))):
                    problems.append(f"{where}: names notebook {number}, which never mentions "
                                    f"`{name}`; point {line!r} at the notebook that builds or "
                                    "calls it, or say who uses it (\"Not built in a notebook: "
                                    "...\")")
    return problems


def test_every_public_function_and_class_names_its_notebook():
    problems = []
    for module in _modules():
        for name, obj in _public_objects(module):
            problems += _problems(module, name, obj)
    assert not problems, f"{len(problems)} provenance problem(s):\n" + "\n".join(problems)


def test_the_check_sees_the_package():
    """The walk finds the modules and objects it is meant to check (not an empty pass)."""
    checked = {module.__name__: _public_objects(module) for module in _modules()}
    assert {"unet_lesson.model", "unet_lesson.weights", "unet_lesson.data.dsb"} <= set(checked)
    assert sum(len(objects) for objects in checked.values()) > 150


def test_references_are_read_as_meant():
    assert _numbers("02-05") == ["02", "03", "04", "05"]
    assert _numbers("00 and 10") == ["00", "10"]
    line = "Built in notebook 03 (the way down) and notebook 06 (all of Figure 1)."
    assert [n for r in REFERENCE.findall(line) for n in _numbers(r)] == ["03", "06"]
    assert PROVENANCE.search("Used in notebooks 00 and 10.")
    assert PROVENANCE.search("Not built in a notebook: the command line.")
    assert not PROVENANCE.search("Notebook 10 uses it.")
