"""Write the course's version and address into the notebooks and the README, from pyproject.toml.

pyproject.toml is the one place for both: ``[project] version`` and ``[project.urls] Repository``.
This script writes them into

* the first code cell of every notebook (the setup cell, from ``TEMPLATE`` below): it installs
  ``unet-lesson @ git+<Repository>@v<version>`` where the package is missing or at another version;
* the Open-in-Colab badge under the title of every notebook (its first markdown cell):
  ``https://colab.research.google.com/github/<owner>/<repo>/blob/v<version>/notebooks/<file>``;
* the Open-in-Colab badges of the README's lesson table (their addresses only).

Nothing else in a notebook is touched: each file is read, those two cells changed, and written
back whole (same JSON layout as Jupyter's) through a temporary file, so it is never half-written.

    python tools/sync_setup_cell.py            # write
    python tools/sync_setup_cell.py --check    # only report what is out of step (exit 1 if any)

``tests/test_setup_cell.py`` fails until this has been run after a change of either value.
A release: change the version in pyproject.toml (and ``unet_lesson/__init__.py``), run this, commit,
tag the commit ``v<version>`` and push the tag: the cell and the badges point at that tag.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]

TEMPLATE = '''\
# Setup (safe to re-run). This notebook is version {version} of the course. Where the package is
# missing or at another version (Colab, Kaggle, a fresh JupyterLab), pip installs that version
# (the tag v{version} of the course's repository), or UNET_LESSON_PIP_SPEC (a wheel, a fork).
import importlib
import os
import subprocess
import sys

VERSION = "{version}"
REPOSITORY = "{repository}"
try:
    import unet_lesson
    installed = unet_lesson.__version__
except ImportError:
    installed = None
if installed != VERSION:
    spec = os.environ.get("UNET_LESSON_PIP_SPEC", f"unet-lesson @ git+{{REPOSITORY}}@v{{VERSION}}")
    print(f"unet_lesson {{installed or 'not installed'}}: installing {{spec}}")
    if subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", spec]).returncode:
        sys.exit(f"pip could not install {{spec}}. Offline, or no git? Upload a wheel (python "
                 "-m build), %env UNET_LESSON_PIP_SPEC=<path of the .whl> and rerun (Kaggle: "
                 "switch Internet on)")
    for module in [m for m in sys.modules if m.split(".")[0] == "unet_lesson"]:
        del sys.modules[module]  # forget the old version: the import below loads the new one
    importlib.invalidate_caches()

from unet_lesson import env  # noqa: F401 (the lessons read modes and folders through it)
from unet_lesson.course.notebook import setup

device = setup(seed=0)  # seeds everything, picks cuda > mps > cpu, prints the environment'''

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE = "[![Open In Colab](" + BADGE_IMAGE + ")]({url})"
# a badge line in a title cell, and any Colab address of a notebook in the README
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\(([^)\s]*)\)$",
                        re.M)
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*?/notebooks/"
                       r"(\d\d[a-z]?_[A-Za-z0-9_]+\.ipynb)")


def project(root: Path = ROOT) -> tuple[str, str]:
    """``(version, repository)`` from ``root/pyproject.toml``."""
    if tomllib is None:
        raise SystemExit("reading pyproject.toml needs Python 3.11+ (tomllib)")
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return data["version"], data["urls"]["Repository"].rstrip("/")


def setup_cell(version: str, repository: str) -> str:
    """The source of every notebook's first code cell."""
    return TEMPLATE.format(version=version, repository=repository)


def colab_url(repository: str, version: str, notebook: str) -> str:
    """Colab's address of ``notebooks/<notebook>`` at the tag ``v<version>`` of ``repository``."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", repository)
    if match is None:
        raise ValueError(f"Colab opens notebooks from GitHub; {repository!r} is not a GitHub "
                         f"repository address (https://github.com/<owner>/<repo>)")
    owner, repo = match.groups()
    return (f"https://colab.research.google.com/github/{owner}/{repo}/blob/v{version}/"
            f"notebooks/{notebook}")


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _with_badge(title: str, url: str) -> str:
    """The title cell with one badge line for ``url``: replaced in place, else under the title."""
    badge = BADGE.format(url=url)
    if BADGE_LINE.search(title):
        return BADGE_LINE.sub(lambda _: badge, title, count=1)
    heading, _, rest = title.partition("\n")
    rest = rest.lstrip("\n")
    return f"{heading}\n\n{badge}" + (f"\n\n{rest}" if rest else "")


def synced_notebook(nb: dict, name: str, version: str, repository: str) -> dict:
    """``nb`` with its setup cell and title badge in step (changes ``nb`` itself)."""
    cells = nb["cells"]
    title = next(c for c in cells if c["cell_type"] == "markdown")
    title["source"] = _lines(_with_badge("".join(title["source"]),
                                         colab_url(repository, version, name)))
    code = next(c for c in cells if c["cell_type"] == "code")
    code["source"] = _lines(setup_cell(version, repository))
    return nb


def synced_readme(text: str, version: str, repository: str) -> str:
    return COLAB_URL.sub(lambda m: colab_url(repository, version, m.group(1)), text)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (a temporary file renamed over it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync(root: Path = ROOT, write: bool = True) -> list[Path]:
    """Bring every notebook and the README in step; returns the files that were (or would be)
    changed."""
    version, repository = project(root)
    changed = []
    for path in notebooks(root):
        before = path.read_text(encoding="utf-8")
        nb = synced_notebook(json.loads(before), path.name, version, repository)
        after = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if after != before:
            changed.append(path)
            if write:
                _write(path, after)
    readme = root / "README.md"
    before = readme.read_text(encoding="utf-8")
    after = synced_readme(before, version, repository)
    if after != before:
        changed.append(readme)
        if write:
            _write(readme, after)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    changed = sync(args.root, write=not args.check)
    for path in changed:
        verb = "out of step" if args.check else "updated"
        print(f"{verb}: {path.relative_to(args.root)}")
    if args.check and changed:
        print("run: python tools/sync_setup_cell.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
