"""Which notebook builds or uses each object of the package, computed from the notebooks' code.

d2l marks what a chapter defines; here every public function and class of a lesson module
ends its docstring with one provenance line, and this tool computes what that line must say
from the notebooks themselves, so a line cannot lie:

* ``Built in notebook 07.`` - notebook 07's code uses the object, and the notebook has a
  "Check against the package" section: it builds the idea by hand and checks it against the
  package;
* ``Used in notebooks 10 and 11.`` - those notebooks' code uses it (an import of it, or an
  attribute of an imported module: ``weights.weight_map(...)``), and no other notebook does;
* ``Built in notebook 08; used in notebook 10.`` - both;
* ``Not built in a notebook: <who uses it>.`` - no notebook's code uses it.

A module of the course's machinery (``unet_lesson.course``), or any module whose docstring
says ``Not built in a notebook: ...`` once at its top, needs no line per object; a line that
is there is checked all the same. Markdown does not count: only code that runs.

    python tools/provenance.py           # list what is wrong (exit 1 if anything)
    python tools/provenance.py --fix     # rewrite the Built/Used lines to what the notebooks do

``tests/test_provenance.py`` runs the check.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROVENANCE = re.compile(r"(Built|Used) in notebooks? \d\d|Not built in a notebook")
NUMBERS = re.compile(r"\bnotebooks?\s+(\d\d[a-z]?(?:(?:\s*,\s*|\s+and\s+)\d\d[a-z]?)*)")
CHECK_HEADING = re.compile(r"check against the package", re.I)


def numbers(text: str) -> set[str]:
    """``"notebooks 00, 07 and 10"`` -> {"00", "07", "10"}."""
    return {n for group in NUMBERS.findall(text) for n in re.findall(r"\d\d[a-z]?", group)}


@dataclass
class Line:
    """What an object's provenance line says."""

    built: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    not_built: bool = False
    text: str = ""


def parse(doc: str | None) -> Line | None:
    """The provenance line of a docstring, or None."""
    lines = [ln.strip() for ln in inspect.cleandoc(doc or "").splitlines()
             if PROVENANCE.search(ln)]
    if not lines:
        return None
    text = lines[-1]
    if text.startswith("Not built in a notebook"):
        return Line(not_built=True, text=text)
    built_part, _, used_part = text.partition("; used in")
    if built_part.startswith("Used in"):
        return Line(used=numbers(built_part), text=text)
    return Line(built=numbers(built_part), used=numbers(used_part), text=text)


def render(built: set[str], used: set[str]) -> str:
    """The line for these sets: ``Built in notebook 08; used in notebooks 10 and 11.``"""
    def names(ns: set[str]) -> str:
        ordered = sorted(ns)
        joined = ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " and " + \
            ordered[-1]
        return f"notebook{'s' if len(ordered) > 1 else ''} {joined}"

    if built and used:
        return f"Built in {names(built)}; used in {names(used)}."
    if built:
        return f"Built in {names(built)}."
    return f"Used in {names(used)}."


# --------------------------------------------------------------------------------------------
# The package
# --------------------------------------------------------------------------------------------


def modules() -> list:
    """The package and every module in it, imported (``__main__`` would run the CLI)."""
    import unet_lesson

    names = ["unet_lesson"] + sorted(
        info.name for info in pkgutil.walk_packages(unet_lesson.__path__, "unet_lesson.")
        if info.name.rsplit(".", 1)[-1] != "__main__")
    return [importlib.import_module(name) for name in names]


def public_objects(module) -> list[tuple[str, object]]:
    """Public functions and classes defined in ``module`` itself (not imported into it)."""
    return [(name, obj) for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def module_says_it_once(module) -> bool:
    """A machinery module: in ``unet_lesson.course``, or its docstring's own provenance line."""
    return module.__name__.startswith("unet_lesson.course") or bool(
        re.search(r"^Not built in a notebook", inspect.cleandoc(module.__doc__ or ""), re.M))


# --------------------------------------------------------------------------------------------
# The notebooks: which package objects their code uses
# --------------------------------------------------------------------------------------------


def _code_cells(path: Path) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell, shell and magic lines blanked in code."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                               for ln in source.splitlines())
        out.append((cell["cell_type"], source))
    return out


def _resolve(node: ast.AST, bound: dict[str, object]):
    """The object an expression ``name`` or ``name.attr.attr`` refers to, or None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, bound)
        if inspect.ismodule(base):
            return getattr(base, node.attr, None)
    return None


@cache
def references(number: str) -> tuple[frozenset[int], bool]:
    """``(ids of the objects notebook NN's code uses, whether it has a "Check against the
    package" heading)``."""
    paths = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    if len(paths) != 1:
        return frozenset(), False
    bound: dict[str, object] = {}
    used = set()
    has_check = False
    for kind, source in _code_cells(paths[0]):
        if kind == "markdown":
            has_check = has_check or bool(CHECK_HEADING.search(source))
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "unet_lesson":
                        module = importlib.import_module(alias.name)
                        bound[alias.asname or alias.name.split(".")[0]] = (
                            module if alias.asname else importlib.import_module("unet_lesson"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "unet_lesson"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    obj = getattr(module, alias.name, None)
                    if obj is None:
                        obj = importlib.import_module(f"{node.module}.{alias.name}")
                    bound[alias.asname or alias.name] = obj
                    used.add(id(obj))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Name, ast.Attribute)):
                obj = _resolve(node, bound)
                if obj is not None and not inspect.ismodule(obj):
                    used.add(id(obj))
    return frozenset(used), has_check


def all_numbers() -> list[str]:
    return sorted(p.name.split("_")[0] for p in NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


def used_in(obj) -> set[str]:
    return {n for n in all_numbers() if id(obj) in references(n)[0]}


def checked_in(obj) -> set[str]:
    """The notebooks that use ``obj`` and check what they build against the package."""
    return {n for n in all_numbers() if id(obj) in references(n)[0] and references(n)[1]}


# --------------------------------------------------------------------------------------------
# The check, and the fix
# --------------------------------------------------------------------------------------------


def problems() -> list[str]:
    """One message per object whose line is missing or says what the notebooks do not."""
    out = []
    for module in modules():
        once = module_says_it_once(module)
        for name, obj in public_objects(module):
            where = f"{module.__name__}.{name}"
            line = parse(obj.__doc__)
            actual = used_in(obj)
            if line is None:
                if not once:
                    want = render(set(), actual) if actual else \
                        "Not built in a notebook: <who uses it>."
                    out.append(f"{where}: no provenance line; end its docstring with {want!r}")
                continue
            if line.not_built:
                if actual:
                    out.append(f"{where}: says {line.text!r}, but notebook(s) "
                               f"{', '.join(sorted(actual))} use it; write "
                               f"{render(set(), actual)!r} (or Built in ...)")
                continue
            unchecked = line.built - checked_in(obj)
            if unchecked:
                out.append(f"{where}: says built in notebook(s) {', '.join(sorted(unchecked))}, "
                           f"which do not use it or have no 'Check against the package' section")
            named = line.built | line.used
            if named != actual:
                want = render(line.built & actual, actual - line.built) if actual else \
                    "Not built in a notebook: <who uses it>."
                out.append(f"{where}: says {line.text!r}; the notebooks' code uses it in "
                           f"{sorted(actual) or 'none'}: write {want!r} (tools/provenance.py "
                           f"--fix)")
    return out


def fix() -> int:
    """Rewrite every Built/Used line to the notebooks' use (Built kept where still true)."""
    changed = 0
    for module in modules():
        path = Path(inspect.getsourcefile(module))
        text = path.read_text(encoding="utf-8")
        new = text
        for _, obj in public_objects(module):
            line = parse(obj.__doc__)
            actual = used_in(obj)
            if line is None or line.not_built or not actual:
                continue
            built = line.built & checked_in(obj)
            wanted = render(built, actual - built)
            if wanted == line.text:
                continue
            # replace the line inside this object's own source, never another object's
            _, lineno = inspect.getsourcelines(obj)
            start = sum(len(row) for row in new.splitlines(keepends=True)[:lineno - 1])
            at = new.find(line.text, start)
            if at >= 0:
                new = new[:at] + wanted + new[at + len(line.text):]
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
            print(f"rewrote {path.relative_to(ROOT)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite the Built/Used lines")
    args = parser.parse_args(argv)
    if args.fix:
        fix()
        references.cache_clear()
    found = problems()
    print("\n".join(found) or "every provenance line agrees with the notebooks")
    return 1 if found else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
