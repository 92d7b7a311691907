"""Shared test set-up: a non-interactive matplotlib, one torch thread for tiny networks, the
tiny synthetic set and the one finished run that the tests of run folders read, and the real
DSB data when it is present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib
import pytest
import tiny

matplotlib.use("Agg")


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what they will
def pytest_collection_modifyitems(config, items):
    """Each notebook runs once per ``pytest``: nbval leaves to the browser test
    (tests/test_browser.py) the notebooks that test runs in JupyterLab, where it is collected
    and can run here (Chromium and selenium installed: tests/browser_setup.sh). Where it is
    skipped or deselected (``-m "not browser"``), nbval runs them as every other notebook."""
    in_browser = {config.rootpath / notebook for item in items
                  if item.get_closest_marker("browser")
                  and getattr(item.module, "_MISSING", "missing") is None
                  for notebook in item.module.NOTEBOOKS}
    if not in_browser:
        return
    keep, leave = [], []
    for item in items:
        (leave if item.path in in_browser and item.path.suffix == ".ipynb" else keep).append(item)
    if leave:
        config.hook.pytest_deselected(items=leave)
        items[:] = keep

# The real Data Science Bowl training images, when this machine has them (never in the repo).
REAL_DSB = Path(
    os.environ.get(
        "UNET_LESSON_REAL_DSB",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dsb2018" / "stage1_train",
    )
)


def _one_torch_thread():
    """Run a test with one torch thread: the networks of the tests are a few channels wide,
    too small for several threads to help, and on a busy 2-core machine keeping threads in
    step made such tests several (up to 10-50) times slower. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``; ``one_thread_module`` holds it
    for a module-scoped fixture. The thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


one_thread = pytest.fixture(_one_torch_thread, name="one_thread")
one_thread_module = pytest.fixture(_one_torch_thread, scope="module", name="one_thread_module")


@pytest.fixture(scope="session")
def real_dsb_root() -> Path:
    """The real stage1_train folder; tests that use it skip cleanly where it is absent."""
    if not REAL_DSB.is_dir():
        pytest.skip(f"real DSB 2018 data not found at {REAL_DSB} (set UNET_LESSON_REAL_DSB)")
    return REAL_DSB


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``(root, samples)``: the 10 synthetic 64x64 images of :func:`tiny.tiny_set` in a folder
    named ``tiny``, made once for the whole session."""
    return tiny.tiny_set(tmp_path_factory.mktemp("shared") / "tiny", seed=4)


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="session")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    """A run folder as ``python -m unet_lesson train`` leaves it: :func:`tiny.tiny_config` (the
    practical preset, 2 epochs) trained on :func:`tiny_data`, its post-processing tuned and its
    test split scored. The label cache and split files go to a folder of the session, not the
    repository's data/.

    Shared by every test that reads a finished run (tests/test_run.py, tests/test_cli.py): read
    it, never change it; a test that changes a run takes :func:`finished_copy`. A change is
    caught when the session ends."""
    from unet_lesson.course.cli import main

    root, _ = tiny_data
    folder = tmp_path_factory.mktemp("shared") / "finished"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNET_LESSON_DATA", str(tmp_path_factory.mktemp("shared-data")))
        code = main(["train", "--data", str(root), "--out", str(folder),
                     "--set", *tiny.tiny_overrides()])
    assert code == 0, "the train command failed on the tiny set"
    before = _files(folder)
    yield folder
    assert _files(folder) == before, (
        "a test changed the shared finished run: take the finished_copy fixture instead")


@pytest.fixture
def finished_copy(finished_run, tmp_path) -> Path:
    """A copy of :func:`finished_run` (``tmp_path/run``) for a test to change."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))
