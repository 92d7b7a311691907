"""The setup cell and the Open-in-Colab badges are in step with pyproject.toml.

pyproject.toml holds the course's version and its repository's address, once;
``tools/sync_setup_cell.py`` writes them into every notebook's setup cell, every notebook's
title badge and the README's lesson table. These tests fail with the command to run when
anything drifted. This is the one check that every notebook's setup cell is the template;
tests/test_notebooks.py checks the rest of each notebook's skeleton, and what the cell *does*,
installing in a fresh runtime, is tested in tests/test_wheel.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

import unet_lesson

pytest.importorskip("tomllib")  # Python 3.11+, as the tool needs

ROOT = Path(__file__).resolve().parents[1]
FIX = "run: python tools/sync_setup_cell.py"


def _tool():
    spec = importlib.util.spec_from_file_location("sync_setup_cell",
                                                  ROOT / "tools" / "sync_setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _tool()
VERSION, REPOSITORY = sync.project(ROOT)
NOTEBOOKS = sync.notebooks(ROOT)


def _cells(path, kind):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


def test_pyproject_names_a_github_repository_and_the_package_agrees_on_the_version():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPOSITORY), REPOSITORY
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", VERSION), VERSION
    assert unet_lesson.__version__ == VERSION, (
        "unet_lesson/__init__.py's __version__ must equal pyproject.toml's version: the setup "
        "cell compares it with the notebook's"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_setup_cell_is_the_template(path):
    cell = _cells(path, "code")[0]
    assert cell == sync.setup_cell(VERSION, REPOSITORY), f"{path.name}: setup cell drifted; {FIX}"


def test_the_template_installs_this_version_from_the_one_address():
    """What the template must keep saying (so a template edit cannot lose it)."""
    cell = sync.setup_cell(VERSION, REPOSITORY)
    assert f'VERSION = "{VERSION}"' in cell and f'REPOSITORY = "{REPOSITORY}"' in cell
    assert 'f"unet-lesson @ git+{REPOSITORY}@v{VERSION}"' in cell
    assert 'os.environ.get("UNET_LESSON_PIP_SPEC"' in cell
    assert "google.colab" not in cell, "the cell must install in any runtime, not only Colab"
    assert cell.rstrip().endswith("from unet_lesson.course.notebook import setup\n\n"
                                  "device = setup(seed=0)  # seeds everything, picks cuda > "
                                  "mps > cpu, prints the environment")
    assert "UNET_LESSON_PIP_SPEC=<path of the .whl>" in cell  # what to do when pip fails
    assert len(cell.splitlines()) <= 30, "keep the setup cell short enough to read"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_cell_has_one_colab_badge_for_this_notebook_at_this_version(path):
    title = _cells(path, "markdown")[0]
    urls = sync.BADGE_LINE.findall(title)
    assert urls == [sync.colab_url(REPOSITORY, VERSION, path.name)], f"{path.name}: {FIX}"
    assert all(u.startswith("https://colab.research.google.com/github/") for u in urls)
    stray = [u for u in re.findall(r"https://colab\.research\.google\.com/github/\S+", title)
             if u.rstrip(")") not in urls]
    assert not stray, f"{path.name}: other Colab links in the title cell: {stray}"


def test_every_row_of_the_readme_lesson_table_has_its_colab_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines()
            if re.match(r"^\| \[\d\d[a-z]? · .*\]\(notebooks/\d\d[a-z]?_\w+\.ipynb\)", line)]
    assert rows, "no lesson table rows found in the README"
    for row in rows:
        name = re.search(r"\(notebooks/(\d\d[a-z]?_\w+\.ipynb)\)", row).group(1)
        badge = sync.BADGE.format(url=sync.colab_url(REPOSITORY, VERSION, name))
        assert badge in row, f"README row of {name} needs its Open-in-Colab badge: {badge}"
    for match in sync.COLAB_URL.finditer(readme):  # any Colab link anywhere in the README
        assert match.group(0) == sync.colab_url(REPOSITORY, VERSION, match.group(1)), FIX
        assert (ROOT / "notebooks" / match.group(1)).is_file(), match.group(0)


def test_the_tool_rewrites_a_new_version_and_address_and_nothing_else(tmp_path):
    """On a copy: a new version and repository reach the setup cells, badges and README only."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    pyproject = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    pyproject = re.sub(r'(?m)^version = ".*"$', 'version = "9.8.7"', pyproject, count=1)
    pyproject = pyproject.replace(REPOSITORY, "https://github.com/a-fork/course")
    (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")

    assert sync.main(["--check", "--root", str(tmp_path)]) == 1
    before = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sync.notebooks(tmp_path)}
    assert sync.main(["--root", str(tmp_path)]) == 0
    assert sync.main(["--check", "--root", str(tmp_path)]) == 0  # idempotent

    for path in sync.notebooks(tmp_path):
        nb, old = json.loads(path.read_text(encoding="utf-8")), before[path.name]
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(nb, indent=1, ensure_ascii=False) + "\n"  # Jupyter's layout
        code = _cells(path, "code")[0]
        assert 'VERSION = "9.8.7"' in code and "https://github.com/a-fork/course" in code
        url = "https://colab.research.google.com/github/a-fork/course/blob/v9.8.7/notebooks/"
        assert sync.BADGE_LINE.findall(_cells(path, "markdown")[0]) == [url + path.name]
        first_md = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown")
        first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
        for i, (new_cell, old_cell) in enumerate(zip(nb["cells"], old["cells"], strict=True)):
            if i in (first_md, first_code):
                assert {k: v for k, v in new_cell.items() if k != "source"} == \
                    {k: v for k, v in old_cell.items() if k != "source"}
            else:
                assert new_cell == old_cell, f"{path.name}: cell {i} must not change"
        assert nb["metadata"] == old["metadata"]
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    links = len(sync.COLAB_URL.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    assert links and readme.count("/a-fork/course/blob/v9.8.7/notebooks/") == links
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


def test_a_title_cell_without_a_badge_gets_one_under_its_heading():
    url = sync.colab_url(REPOSITORY, VERSION, "12_next.ipynb")
    title = sync._with_badge("# 12 · Next\n\nText.\n", url)
    assert title == f"# 12 · Next\n\n{sync.BADGE.format(url=url)}\n\nText.\n"
    assert sync._with_badge(title, url) == title
    with pytest.raises(ValueError, match="not a GitHub repository"):
        sync.colab_url("https://gitlab.com/a/b", VERSION, "00_x.ipynb")
