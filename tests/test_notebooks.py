"""Every notebook follows the course skeleton; nbval (run by `pytest`) executes them.

These are structural checks on the stored notebooks: they catch a notebook that lost its
summary, exercises or check section, hard-codes a device, stores an error, or grew too heavy.
That its first code cell is the course's setup cell is checked in tests/test_setup_cell.py.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
MAX_BYTES = 2_000_000  # the course's limit per notebook, figures of real images included


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell):
    return "".join(cell["source"])


def test_notebooks_exist_and_are_numbered_uniquely():
    numbers = [re.match(r"\d\d[a-z]?", p.name).group() for p in NOTEBOOKS]  # 11 and 11b
    assert numbers, "no notebooks found"
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_skeleton(path):
    nb = _load(path)
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert re.search(r"^#+ .*Summary", markdown, re.M), "no Summary section"
    assert re.search(r"^#+ .*Exercises", markdown, re.M), "no Exercises section"
    assert "<details>" in markdown, "exercises need revealable solutions (<details>)"
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    # never hard-code a device: torch.device("cuda"), .to("cuda"), device="cuda", .cuda()
    hard_coded = r"""(device\(|\.to\(|device\s*=\s*)["']cuda|\.cuda\(\)"""
    assert not re.search(hard_coded, code), "never hard-code a device"
    if path.name.split("_")[0] not in {"00", "11b", "12b"}:  # the bonus notebooks build nothing
        assert re.search(r"^#+ .*[Cc]heck", markdown, re.M), "no check-against-the-package section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_one_clean_run(path):
    nb = _load(path)
    counts = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"stored error output: {out.get('ename')}"
            text = "".join(out.get("text", []))
            assert "Traceback" not in text
        if cell.get("execution_count") is not None:
            counts.append(cell["execution_count"])
    assert counts == list(range(1, len(counts) + 1)), "outputs are not from one top-to-bottom run"
    assert path.stat().st_size < MAX_BYTES


def test_links_between_notebooks_and_from_the_readme_point_to_real_files():
    root = Path(__file__).resolve().parents[1]
    names = {p.name for p in NOTEBOOKS}
    texts = {p.name: p.read_text(encoding="utf-8") for p in NOTEBOOKS}
    texts["README.md"] = (root / "README.md").read_text(encoding="utf-8")
    for where, text in texts.items():
        for link in re.findall(r"(\d\d[a-z]?_[a-z0-9_]+\.ipynb)", text):
            assert link in names, f"{where} links to {link}, which does not exist"
