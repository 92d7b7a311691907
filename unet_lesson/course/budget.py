"""How long notebooks 10-12 take, per mode and hardware: measured where it was, else estimated.

Each notebook's training is a list of :class:`Job` (:func:`notebook_jobs`: the
configurations of :mod:`.lessons` and :mod:`.experiments` for a mode). A job's time on a GPU
is estimated (:func:`job_seconds`) from what it computes:

* **the GPU**: the FLOPs of its training steps (:func:`~unet_lesson.course.costs.count_flops`
  of one forward pass of a training tile, times 3 for forward and backward, times the tiles it
  trains on) and of its predictions (validation during training, the scoring at the end: the
  tiles that cover the DSB images, :data:`DSB_SIZES`), divided by what the GPU achieves: its
  dense peak for the precision the course's rule picks there (T4: fp16, A100: bf16), times
  the fraction of it a training step reaches (:class:`Hardware`);
* **the CPUs**, which a Colab runtime has few of: making the training tiles in the DataLoader
  workers (in parallel with the GPU: the slower of the two counts), and choosing and applying
  the post-processing (watershed, one process), at the per-tile and per-image times
  :data:`CPU_SECONDS` measured on one core of this project's CPU;
* a fixed start per run (:data:`RUN_START_S`) and per notebook (``Hardware.start_s``).

**The fraction achieved is an assumption** until a GPU has run the course:
:data:`HARDWARE` states it (``achieved``) and where it comes from. ``benchmarks/
gpu_acceptance.py`` measures it for the practical U-Net (its throughput table's ``mfu``)
and times the notebooks themselves (``--notebooks``); measured times go to
``timings.json`` (:func:`record_time`) and are shown beside the estimates.

CPU times are measured, never estimated from FLOPs in the table: ``tools/time_notebooks.py``
executes a notebook and records its wall time here. The CPU's own line (``cpu`` in
:data:`HARDWARE`) is used only for a notebook not measured yet, and says so.

:func:`print_budget` prints the table at the top of notebooks 10-12, before any training.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import pandas as pd

from .. import env
from ..config import TrainConfig
from ..files import write_text
from ..networks import UNetConfig
from ..sizes import input_size_for_output
from . import experiments, lessons
from .compare import arch_config
from .costs import count_flops

NOTEBOOKS = ("10", "11", "11b", "12", "12b")
MAIN_NOTEBOOKS = ("10", "11", "12")  # each must fit GPU_BUDGET_MIN on a T4 in GPU mode
GPU_BUDGET_MIN = 30.0
TIMINGS_FILE = "timings.json"
TIMINGS_FORMAT = "unet-lesson-timings/1"


@dataclass(frozen=True)
class Hardware:
    """A machine the course may run on, as the estimate sees it."""

    name: str
    peak_tflops: float  # dense peak in the precision the course's rule picks there
    precision: str
    achieved: float  # fraction of the peak a training step reaches
    cpus: int  # CPUs of the runtime: DataLoader workers and post-processing
    source: str  # where `achieved` comes from
    # a notebook's start: in a fresh Colab runtime, installing the package and reading (the
    # first time, merging) the images' masks; the data's download is not counted
    start_s: float = 120.0


ASSUMED = ("assumed, not measured: about the share of the fp16/bf16 peak that mixed-precision "
           "training of convolutional networks reaches in PyTorch; gpu_acceptance.py's 'mfu' "
           "for the practical U-Net replaces it")
HARDWARE = {
    # Colab's free GPU runtime: a T4 (no native bf16: fp16 with loss scaling) and 2 vCPUs
    "T4": Hardware("T4 (Colab, free)", 65.0, "fp16", 0.10, 2, ASSUMED),
    # Colab's A100 runtime: 12 vCPUs
    "A100": Hardware("A100 (Colab)", 312.0, "bf16", 0.15, 12, ASSUMED),
    # this project's 2-core CPU, for a notebook whose CPU time was not measured yet: the
    # rate that makes notebook 10's estimate its measured CPU time
    "cpu": Hardware("2-core CPU", 0.2, "bf16", 1.0, 1, "calibrated on notebook 10's measured "
                    "CPU time", start_s=20.0),
}

# seconds on one core of this project's CPU (Intel Xeon), measured: a training tile made in a
# DataLoader worker (the practical pipeline per 256x256 input tile, with or without the
# paper's augmentations, which augment_on_device moves to the GPU; the paper's, weight map
# included, per 388x388 output tile), and per DSB image the post-processing of one
# prediction and the choice of the post-processing (its grid, on validation)
CPU_SECONDS = {"tile": 0.021, "tile_on_device": 0.016, "tile_weight_map": 0.113,
               "post": {"three_class": 0.013, "binary": 0.062},
               "tune": {"three_class": 0.30, "binary": 0.70}}
RUN_START_S = 10.0  # a run's start: building the network, the loader, the first batch
# the real stage1_train the course uses: image sizes (height, width) and how many of each
DSB_SIZES = {(256, 256): 304, (256, 320): 97, (360, 360): 80, (520, 696): 80,
             (1024, 1024): 12, (512, 640): 8, (603, 1272): 4, (260, 347): 1}
DSB_IMAGES = sum(DSB_SIZES.values())


@dataclass(frozen=True)
class Job:
    """Training runs of one configuration in a notebook, and what is scored afterwards.

    ``runs``: how many (seeds, splits); ``images``: the data set's images (the split's
    fractions give the validation and test images), of at most ``max_side`` pixels a side;
    ``scoring``: after training, ``"finish"`` (post-processing chosen on validation, test
    and val_seen scored: :meth:`Run.finish <unet_lesson.course.run.Run.finish>`), ``"fixed"``
    (validation and val_seen scored with fixed post-processing), ``"claims"``
    (``scored_images`` validation images, two fixed decodings) or ``None``.
    """

    name: str
    config: TrainConfig
    runs: int = 1
    images: int = DSB_IMAGES
    scoring: str | None = "finish"
    max_side: int | None = None
    scored_images: int = 0


def _forward_flops(cfg: TrainConfig, size: int) -> float:
    return _counted(json.dumps(asdict(cfg.model), sort_keys=True), size)


@functools.cache
def _counted(model: str, size: int) -> float:
    return float(count_flops(UNetConfig(**json.loads(model)), size))


def _train_tile(cfg: TrainConfig) -> int:
    """The input size of a training tile."""
    m = cfg.model
    return cfg.tile_size if m.padding == "same" else input_size_for_output(cfg.tile_size, m.depth)


def predict_flops(cfg: TrainConfig, max_side: int | None = None) -> float:
    """FLOPs to predict one DSB image on average (:data:`DSB_SIZES`, those of at most
    ``max_side`` pixels a side), tiled as prediction tiles it: same padding, tiles of
    ``predict_tile`` overlapping by a quarter (an image no larger is one pass, padded to a
    multiple of ``2**depth``); valid padding, output tiles of ``predict_tile`` with their
    mirrored context."""
    m = cfg.model
    step = 2 ** m.depth
    sizes = {hw: n for hw, n in DSB_SIZES.items() if max_side is None or max(hw) <= max_side}
    if m.padding == "valid":
        tile_in = input_size_for_output(cfg.predict_tile, m.depth)
        per_tile = _forward_flops(cfg, tile_in)
        tiles = {hw: math.ceil(hw[0] / cfg.predict_tile) * math.ceil(hw[1] / cfg.predict_tile)
                 for hw in sizes}
        return sum(n * tiles[hw] * per_tile for hw, n in sizes.items()) / sum(sizes.values())
    tile = step * math.ceil(cfg.predict_tile / step)
    per_pixel = _forward_flops(cfg, tile) / tile**2
    stride = tile - tile // 4
    total = 0.0
    for (height, width), n in sizes.items():
        def cover(length):  # pixels along one side that the tiles compute
            if length <= tile:
                return step * math.ceil(length / step)
            return tile * (1 + math.ceil((length - tile) / stride))
        total += n * per_pixel * cover(height) * cover(width)
    return total / sum(sizes.values())


def job_seconds(job: Job, hw: Hardware) -> dict:
    """The estimated seconds of one of ``job``'s runs on ``hw``, by part: ``gpu`` (training
    steps and predictions), ``data`` (tiles in the workers, in parallel with the training
    steps), ``post`` (post-processing on the CPU), ``total`` (with :data:`RUN_START_S`)."""
    cfg = job.config
    rate = hw.peak_tflops * 1e12 * hw.achieved
    steps = cfg.num_epochs * max(1, cfg.tiles_per_epoch // cfg.batch_size)
    tiles = steps * cfg.batch_size
    train_s = 3 * _forward_flops(cfg, _train_tile(cfg)) * tiles / rate  # UNet++: all heads
    n_val = round(cfg.val_fraction * job.images)
    n_test = round(cfg.test_fraction * job.images)
    n_seen = round(cfg.seen_fraction * (job.images - n_val - n_test)) if cfg.split == "group" else 0
    passes = math.ceil(cfg.num_epochs / cfg.val_every)
    per_pass = min(cfg.val_max_images or n_val, n_val)
    scored = {"finish": n_val + n_test + n_seen, "fixed": n_val + n_seen,
              "claims": job.scored_images, None: 0}[job.scoring]
    predicted = passes * per_pass + scored
    predict_s = predict_flops(cfg, job.max_side) * predicted / rate
    kind = "tile_weight_map" if cfg.loss == "weighted_ce" else (
        "tile_on_device" if cfg.augment_on_device else "tile")
    reference = 388 if kind == "tile_weight_map" else 256
    size = cfg.tile_size if kind == "tile_weight_map" else _train_tile(cfg)
    workers = max(1, min(cfg.num_workers, hw.cpus))
    data_s = tiles * CPU_SECONDS[kind] * (size / reference) ** 2 / workers
    post, tune = CPU_SECONDS["post"][cfg.target], CPU_SECONDS["tune"][cfg.target]
    decodings = 2 if job.scoring == "claims" else 1  # components and watershed
    post_s = post * (passes * per_pass + decodings * scored) + (
        tune * n_val if job.scoring == "finish" else 0.0)
    if cfg.num_workers == 0:  # tiles made in the training process: they add up
        train_part = train_s + data_s
    else:
        train_part = max(train_s, data_s)
    total = RUN_START_S + train_part + predict_s + post_s
    return {"gpu": train_s + predict_s, "data": data_s, "post": post_s, "total": total}


def notebook_jobs(notebook: str, mode: str) -> list[Job]:
    """Every training of ``notebook`` (``"10"``, ``"11"``, ``"11b"``, ``"12"``, ``"12b"``)
    in ``mode`` (``"fast"``, ``"cpu"``, ``"gpu"``), as :class:`Job` records, from the
    configurations of :mod:`.lessons` and :mod:`.experiments`. Notebook 11 counts notebook
    10's run as trained again: in a fresh runtime (Colab gives each notebook its own) it is.
    """
    if notebook == "10":
        cfg = lessons.course_config("practical", mode=mode)
        return [Job("practical run", cfg, scoring=None),
                Job("the loop by hand and fit", lessons.loop_config(cfg, mode=mode), runs=2,
                    scoring=None)]
    if notebook == "11":
        versus = lessons.versus_configs(mode=mode)
        shift, splits = lessons.shift_config(mode=mode)
        practical, paper = versus["practical"], versus["paper"]
        return [Job("practical: notebook 10's run (seed 0, split 0)", practical[0]),
                Job("practical: more seeds", practical[1], runs=len(practical) - 1),
                Job("practical: more group splits", shift, runs=len(splits) - 1),
                Job("paper: seeds", paper[0], runs=len(paper))]
    if notebook == "11b":
        plan = experiments.claims_plan(mode=mode)
        arms = {arm.key: arm for arm in experiments.paper_claim_arms(plan["sizes"])}
        return [Job(f"claims: {key}", arm.config(plan["base"], 0), runs=len(plan["seeds"]),
                    scoring="claims", scored_images=plan["n_val"]) for key, arm in arms.items()]
    if notebook in ("12", "12b"):
        plan = lessons.comparison_plan(mode=mode, full=notebook == "12b")
        kept = sum(n for hw, n in DSB_SIZES.items()
                   if plan.max_side is None or max(hw) <= plan.max_side)
        return [Job(f"{arch}, seeds", arch_config(plan.base, arch, pretrained=False),
                    runs=len(plan.seeds), images=-(-kept // plan.every), max_side=plan.max_side)
                for arch in plan.archs]
    raise ValueError(f"notebook must be one of {NOTEBOOKS}, got {notebook!r}")


def estimate_minutes(notebook: str, mode: str, hardware: str) -> float:
    """The estimated minutes of ``notebook`` in ``mode`` on ``hardware`` (a key of
    :data:`HARDWARE`): every job's runs, plus the notebook's start there."""
    hw = HARDWARE[hardware]
    seconds = hw.start_s
    for job in notebook_jobs(notebook, mode):
        sized = replace(job, config=_workers_for(job.config, hw))
        seconds += job.runs * job_seconds(sized, hw)["total"]
    return seconds / 60


def _workers_for(cfg: TrainConfig, hw: Hardware) -> TrainConfig:
    """The configuration as it would run there: as many workers as the course gives it."""
    if cfg.num_workers == 0:
        return cfg
    values = cfg.to_dict()
    values["num_workers"] = min(4, hw.cpus)
    return TrainConfig(**values)


# --------------------------------------------------------------------------------------------
# Measured times
# --------------------------------------------------------------------------------------------


def timings_path() -> Path:
    """The package's measured-times file (``unet_lesson/course/timings.json``)."""
    return Path(str(resources.files(__package__).joinpath(TIMINGS_FILE)))


def measured_times(path: str | Path | None = None) -> list[dict]:
    """The measured times: one record per notebook, mode and hardware (``notebook``,
    ``mode``, ``hardware``, ``minutes``, ``date``, ``how``)."""
    path = Path(path) if path is not None else timings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    if data.get("format") != TIMINGS_FORMAT:
        raise ValueError(f"{path} is not a timings file (format {data.get('format')!r})")
    return list(data["times"])


def record_time(notebook: str, mode: str, hardware: str, minutes: float, how: str,
                path: str | Path | None = None) -> Path:
    """Record a measured time, replacing the one of the same notebook, mode and hardware."""
    if notebook not in NOTEBOOKS or mode not in ("fast", "cpu", "gpu"):
        raise ValueError(f"notebook must be one of {NOTEBOOKS} and mode fast, cpu or gpu; got "
                         f"{notebook!r}, {mode!r}")
    path = Path(path) if path is not None else timings_path()
    times = [t for t in measured_times(path)
             if (t["notebook"], t["mode"], t["hardware"]) != (notebook, mode, hardware)]
    times.append({"notebook": notebook, "mode": mode, "hardware": hardware,
                  "minutes": round(float(minutes), 1), "date": time.strftime("%Y-%m-%d"),
                  "how": how})
    times.sort(key=lambda t: (NOTEBOOKS.index(t["notebook"]), t["mode"], t["hardware"]))
    lines = ",\n".join("  " + json.dumps(t) for t in times)
    return write_text(path, f'{{"format": "{TIMINGS_FORMAT}",\n "times": [\n{lines}\n ]}}\n')


# --------------------------------------------------------------------------------------------
# The table at the top of a notebook
# --------------------------------------------------------------------------------------------


def budget_table(notebook: str, times: list[dict] | None = None) -> pd.DataFrame:
    """Rows of mode, hardware, minutes and how they were had: CI's fast mode and the CPU
    mode as measured (the CPU estimated only while no measurement exists), the GPU mode
    estimated on a T4 and an A100, and every measured GPU time."""
    times = measured_times() if times is None else times
    mine = [t for t in times if t["notebook"] == notebook]
    rows = []
    for mode in ("fast", "cpu"):
        measured = [t for t in mine if t["mode"] == mode]
        rows += [{"mode": mode, "hardware": t["hardware"], "minutes": t["minutes"],
                  "how": f"measured {t['date']}"} for t in measured]
        if mode == "cpu" and not measured:
            rows.append({"mode": "cpu", "hardware": HARDWARE["cpu"].name,
                         "minutes": round(estimate_minutes(notebook, "cpu", "cpu"), 1),
                         "how": "rough estimate from FLOPs: not measured yet"})
    for key in ("T4", "A100"):
        hw = HARDWARE[key]
        rows.append({"mode": "gpu", "hardware": hw.name,
                     "minutes": round(estimate_minutes(notebook, "gpu", key), 1),
                     "how": f"estimated: FLOPs at {hw.achieved:.0%} of {hw.peak_tflops:g} "
                            f"TFLOP/s ({hw.precision})"})
    rows += [{"mode": "gpu", "hardware": t["hardware"], "minutes": t["minutes"],
              "how": f"measured {t['date']}"} for t in mine if t["mode"] == "gpu"]
    return pd.DataFrame(rows, columns=["mode", "hardware", "minutes", "how"])


def print_budget(notebook: str, device=None) -> pd.DataFrame:
    """Print, before any training, how long ``notebook`` takes in each mode and on which
    hardware, and which mode runs here; returns the table."""
    device = device or env.pick_device()
    table = budget_table(notebook)
    mps = " (Apple MPS: the CPU sizing)" if getattr(device, "type", "") == "mps" else ""
    print(f"notebook {notebook}, time per mode (this machine runs mode {env.mode(device)!r}"
          f"{mps} on {env.device_name(device)}):")
    print(table.to_string(index=False))
    return table
