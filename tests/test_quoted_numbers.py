"""Every number a notebook's text quotes equals the stored output it comes from.

A markdown cell quotes a number as ``0.417<!--q:val_dsb-->`` (the comment does not show when
the notebook is rendered); a code cell prints it with
``unet_lesson.course.notebook.quoted("val_dsb", value)``, which stores the line ``[val_dsb]
0.417`` in the cell's output. Re-executing a notebook changes the outputs: this test then says
which sentences to update.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from unet_lesson.course.notebook import quoted

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MARK = re.compile(r"([-+]?[\d.,]*\d%?)<!--q:([\w.]+)-->")
OUTPUT = re.compile(r"^\[([\w.]+)\] (\S+)$", re.M)


def quotes_and_outputs(path: Path) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """``([(number, name) quoted in markdown]), {name: [values in stored outputs]}``."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    quotes, outputs = [], {}
    for cell in cells:
        if cell["cell_type"] == "markdown":
            quotes += MARK.findall("".join(cell["source"]))
            continue
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", [])) if out.get("output_type") == "stream" else ""
            for name, value in OUTPUT.findall(text):
                outputs.setdefault(name, []).append(value)
    return quotes, outputs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_quoted_numbers_equal_the_stored_outputs(path):
    quotes, outputs = quotes_and_outputs(path)
    wrong = [f"{number}<!--q:{name}--> but the output says {outputs.get(name, 'nothing')}"
             for number, name in quotes if outputs.get(name) != [number]]
    assert not wrong, f"{path.name}: quoted numbers that are not the stored output:\n" + \
        "\n".join(wrong)


def test_quoted_prints_what_the_markdown_mark_reads(tmp_path, capsys):
    assert quoted("val_dsb", 0.41666) == "0.417"
    assert quoted("share", 0.5, ".0%") == "50%"
    printed = capsys.readouterr().out
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["the groups score 0.417<!--q:val_dsb--> and "
                                             "50%<!--q:share--> merge"]},
        {"cell_type": "code", "source": [], "outputs": [
            {"output_type": "stream", "name": "stdout", "text": [printed]}]}]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    quotes, outputs = quotes_and_outputs(path)
    assert quotes == [("0.417", "val_dsb"), ("50%", "share")]
    assert outputs == {"val_dsb": ["0.417"], "share": ["50%"]}
