"""Shared test set-up: a non-interactive matplotlib, and the real DSB data when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

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
