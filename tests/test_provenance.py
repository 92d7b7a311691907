"""Every public function and class of the lessons' modules says which notebook builds or uses
it, and the line agrees with the notebooks' code (d2l's "Defined in", computed rather than
written by hand: ``tools/provenance.py``, whose ``--fix`` rewrites the lines).

The rules, in full, are the tool's docstring. In short: ``Built in notebook NN`` only where
notebook NN uses the object and has a "Check against the package" section; ``Used in`` exactly
the notebooks whose code uses it; ``Not built in a notebook`` only where none does; the
course's machinery says it once at the top of each module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import provenance  # noqa: E402


def test_every_provenance_line_agrees_with_the_notebooks():
    found = provenance.problems()
    assert not found, f"{len(found)} provenance problem(s):\n" + "\n".join(found)


def test_the_check_sees_the_package_and_the_notebooks():
    """The walk finds the modules, objects and notebook uses it is meant to check."""
    objects = {f"{m.__name__}.{name}": obj for m in provenance.modules()
               for name, obj in provenance.public_objects(m)}
    assert {"unet_lesson.networks.unet.UNet", "unet_lesson.weights.weight_map",
            "unet_lesson.data.dsb.read_image"} <= set(objects)
    assert len(objects) > 150
    # notebook 07 imports the package's weight map module and calls weight_map through it
    assert "07" in provenance.used_in(objects["unet_lesson.weights.weight_map"])
    assert "06" in provenance.checked_in(objects["unet_lesson.networks.unet.UNet"])


@pytest.mark.parametrize(("line", "built", "used"), [
    ("Built in notebook 07.", {"07"}, set()),
    ("Used in notebooks 00 and 10.", set(), {"00", "10"}),
    ("Built in notebook 08; used in notebooks 10, 11 and 12.", {"08"}, {"10", "11", "12"}),
])
def test_lines_are_read_and_written_as_meant(line, built, used):
    parsed = provenance.parse(f"What it does.\n\n{line}\n")
    assert (parsed.built, parsed.used, parsed.not_built) == (built, used, False)
    assert provenance.render(built, used) == line
    assert provenance.parse("Not built in a notebook: the command line.").not_built
    assert provenance.parse("Notebook 10 uses it.") is None
