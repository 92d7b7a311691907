"""A fresh runtime with no data: notebook 10's data cell downloads the course's release, or,
offline, stops with the one command to run; it never trains on synthetic nuclei instead.

The notebook's own first cells (setup, data and time budget), exactly as stored, run in a
Jupyter kernel in CPU mode with an empty data folder. The download is faked inside the kernel
(a ``sitecustomize`` module on its path replaces ``download_dsb2018``): offline it fails as
an unreachable server does; online it writes a small set in the competition's layout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "10_training_on_the_data_science_bowl.ipynb"

FAKES = {
    "offline": """
        from unet_lesson.course import download

        def fake(dest, *args, **kwargs):
            raise download.DownloadError("could not reach github.com: [Errno -3] Temporary "
                                         "failure in name resolution (fake)")

        download.download_dsb2018 = fake
    """,
    "online": """
        from pathlib import Path

        from unet_lesson.course import download
        from unet_lesson.data import make_synthetic_dsb

        def fake(dest, *args, **kwargs):
            make_synthetic_dsb(Path(dest) / "stage1_train", n_images=3, seed=0, image_size=64,
                               progress=False)
            return Path(dest)

        download.download_dsb2018 = fake
    """,
}


def _first_cells(tmp_path: Path) -> Path:
    """Notebook 10's cells up to and including its data cell, as stored, outputs cleared."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = nb["cells"]
    data_cell = next(i for i, c in enumerate(cells)
                     if c["cell_type"] == "code" and "course_data()" in "".join(c["source"]))
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["cells"] = cells[: data_cell + 1]
    path = tmp_path / "first_cells.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _run(tmp_path: Path, case: str) -> tuple[subprocess.CompletedProcess, Path]:
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / "sitecustomize.py").write_text(textwrap.dedent(FAKES[case]), encoding="utf-8")
    data = tmp_path / "empty_data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "UNET_LESSON_FAST"}  # CPU mode
    env.update(UNET_LESSON_DATA=str(data), UNET_LESSON_RUNS=str(tmp_path / "runs"),
               UNET_LESSON_DEVICE="cpu", TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join([str(fakes), env.get("PYTHONPATH", "")]))
    out = tmp_path / "executed.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=300", "--ExecutePreprocessor.kernel_name=python3",
         "--output", str(out), str(_first_cells(tmp_path))],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    return done, out


def test_offline_the_data_cell_stops_with_the_one_command(tmp_path):
    done, _ = _run(tmp_path, "offline")
    assert done.returncode != 0, "the data cell must stop, not carry on without data"
    assert "DataMissingError" in done.stderr
    assert "python -m unet_lesson download" in done.stderr
    assert not (tmp_path / "empty_data" / "synthetic").exists(), "no synthetic fallback"


def test_online_the_data_cell_downloads_the_release(tmp_path):
    done, out = _run(tmp_path, "online")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = "".join("".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"]
                      if c["cell_type"] == "code" for o in c["outputs"])
    assert "downloading the course's release" in printed
    assert "real data: 3 images in dsb2018/stage1_train of the data folder" in printed
    assert "time per mode" in printed  # the budget table, before anything trains
    assert (tmp_path / "empty_data" / "dsb2018" / "stage1_train").is_dir()


pytestmark = pytest.mark.skipif(not NOTEBOOK.is_file(), reason="notebook 10 is not here")
