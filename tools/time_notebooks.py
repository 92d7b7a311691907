"""Time notebooks as a student runs them, and record the times the notebooks print.

    python tools/time_notebooks.py 10 11 12                 # this machine's mode: print times
    python tools/time_notebooks.py 10 --record              # ... and record them
    UNET_LESSON_FAST=1 python tools/time_notebooks.py 00    # CI's fast mode

Each notebook runs top to bottom on a fresh kernel (``jupyter nbconvert --to notebook
--execute``, kernel start included) from a copy in a temporary folder, so the repository's
notebooks and their stored outputs stay as they are. ``--record`` writes each wall time into
the package's ``unet_lesson/course/timings.json`` (:func:`unet_lesson.course.budget.
record_time`), under the notebook, the mode (``fast``, ``cpu`` or ``gpu``) and the hardware
(``--hardware``, default: the GPU's name, or the CPU's cores and model); the table at the top
of notebooks 10-12 (:func:`unet_lesson.course.budget.print_budget`) shows it. Run one
notebook at a time on a quiet machine: two at once share the cores and both take longer.
``benchmarks/gpu_acceptance.py --notebooks`` does the same on a GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def notebook_path(number: str) -> Path:
    """``notebooks/<number>_*.ipynb`` (``"10"``, ``"11b"``...)."""
    found = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebook {number}_*.ipynb in {NOTEBOOKS}")
    return found[0]


def hardware_name() -> str:
    """The GPU's name, else ``"<n>-core CPU (<model>)"``."""
    import torch

    from unet_lesson import env

    device = env.pick_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{env.cpu_count()}-core CPU ({model})"


def execute(path: Path, timeout: float = 7200.0, environ: dict | None = None) -> dict:
    """Run the notebook at ``path`` top to bottom on a fresh kernel, from a copy in a
    temporary folder; returns ``{"notebook", "seconds", "ok", "error"}`` (``error``: the end
    of nbconvert's output when a cell failed)."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        shutil.copy(path, copy)
        command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                   "--execute", "--inplace", f"--ExecutePreprocessor.timeout={int(timeout)}",
                   "--ExecutePreprocessor.kernel_name=python3", str(copy)]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                                  env={**os.environ, **(environ or {})}, timeout=timeout + 60)
            ok, tail = done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            ok, tail = False, f"timed out after {timeout:.0f} s"
        seconds = time.perf_counter() - started
    return {"notebook": path.name, "seconds": round(seconds, 1), "ok": ok,
            "error": "" if ok else tail}


def main(argv: list[str] | None = None) -> int:
    from unet_lesson import env
    from unet_lesson.course import budget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebook numbers: 10 11 12 (or 00, 11b)")
    parser.add_argument("--record", action="store_true", help="write the times into "
                        "unet_lesson/course/timings.json")
    parser.add_argument("--hardware", help="the hardware's name in the record (default: the "
                        "GPU's name, or the CPU's cores and model)")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per notebook")
    args = parser.parse_args(argv)
    mode, hardware = env.mode(), args.hardware or hardware_name()
    failed = 0
    for number in args.notebooks:
        result = execute(notebook_path(number), args.timeout)
        print(f"notebook {number}, mode {mode}, {hardware}: {result['seconds'] / 60:.1f} min"
              + ("" if result["ok"] else f" FAILED\n{result['error']}"), flush=True)
        failed += not result["ok"]
        if args.record and result["ok"] and number in budget.NOTEBOOKS:
            budget.record_time(number, mode, hardware, result["seconds"] / 60,
                               "tools/time_notebooks.py: nbconvert, top to bottom")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
