"""GPU acceptance in one command: what the course's training does on this device, measured.

    python benchmarks/gpu_acceptance.py --data DIR --minutes 4 --out gpu.json
    python benchmarks/gpu_acceptance.py --data DIR --test-images stage1_test --out gpu.json
    python benchmarks/gpu_acceptance.py --tiny --out /tmp/cpu.json      # the CPU smoke test

Prints, and writes as JSON:

1. the device, the torch, CUDA and cuDNN versions, and the precision the course's rule picks
   (:mod:`unet_lesson.precision`: bf16 from compute capability 8.0, else fp16 with loss
   scaling);
2. training throughput of the practical U-Net (same padding, batch norm, three classes) on
   256x256 tiles, for widths 32 and 64: fp32 eager, + channels_last, + mixed precision (the
   rule's), + ``torch.compile``. For each: images per second, the model FLOPs per image
   (forward and backward, counted by ``torch.utils.flop_counter.FlopCounterMode``), the
   model FLOPs utilisation (achieved FLOP/s divided by the GPU's dense peak for that
   precision, from the vendor's datasheet: see ``PEAK_TFLOPS``; fp32 convolutions run on
   TF32 tensor cores from capability 8.0 by PyTorch's default, so their peak is TF32's), and
   the peak GPU memory;
3. a time-boxed training run of the practical configuration on ``--data`` (a
   stage1_train-style folder: the group split, the course's pipeline), its validation and
   test DSB scores, and optionally the score on ``--test-images`` (images with masks, or
   stage1_test beside its ``stage1_solution.csv``). Its epochs are sized from the throughput
   measured in 2. (a tenth of the time box each, at most 4,000 tiles), so the box holds on a
   slow device too.

4. with ``--notebooks``: notebooks 10, 11 and 12 (or those named) executed top to bottom in
   this machine's mode (GPU mode on a GPU) on ``--data``, each one's wall time recorded in the
   JSON and, with ``--record-times``, in the notebooks' time table
   (``unet_lesson/course/timings.json``, printed at the top of notebooks 10-12). A lent GPU
   machine receives only the working tree: ``python tools/compact_data.py`` makes a compact
   copy of the real data to send along (``data/compact/dsb2018/stage1_train``)::

       python benchmarks/gpu_acceptance.py --data data/compact/dsb2018/stage1_train \
           --notebooks --record-times --out gpu.json

``--tiny`` shrinks everything (width 4, 64x64 tiles, a synthetic set, seconds of training;
notebook 00 in fast mode instead of 10-12) so the whole script runs on a CPU in a test. At
full size steps 1-3 are sized for about 8 minutes on one GPU (``--minutes`` is the training
run's share); ``--notebooks-only`` skips them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tools"))  # time_notebooks
from _common import device_description, time_steps  # noqa: E402

from unet_lesson import env, precision
from unet_lesson.config import apply_overrides, preset
from unet_lesson.networks import UNet, UNetConfig

# dense peak TFLOP/s by GPU name (vendor datasheets, without sparsity), per precision
PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "A10": {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2},
    "V100": {"fp16": 125.0, "fp32": 15.7},
    "T4": {"fp16": 65.0, "fp32": 8.1},
}
NOTEBOOKS = ("10", "11", "12")  # what --notebooks executes when given no numbers
# each training-step variant: (channels_last, mixed precision, torch.compile)
VARIANTS = {"fp32 eager": (False, False, False), "channels_last": (True, False, False),
            "channels_last + amp": (True, True, False),
            "channels_last + amp + compile": (True, True, True)}


def environment(device: torch.device) -> dict:
    info = {"device": device_description(device), "torch": torch.__version__,
            "python": platform.python_version(),
            "precision rule": precision.describe(precision.autocast_dtype(device))}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        info.update({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                     "compute capability": f"{major}.{minor}",
                     "memory GiB": round(torch.cuda.get_device_properties(device)
                                         .total_memory / 2**30, 1),
                     "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32})
    return info


def peak_tflops(device: torch.device, dtype: torch.dtype | None) -> tuple[float | None, str]:
    """The dense peak for ``dtype`` (``None``: fp32) on this GPU, and which peak it is."""
    if device.type != "cuda":
        return None, "no datasheet peak for a CPU"
    name = torch.cuda.get_device_name(device)
    table = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if table is None:
        return None, f"{name} is not in PEAK_TFLOPS"
    if dtype is None:
        tf32 = torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability(device) >= (
            8, 0) and "tf32" in table
        kind = "tf32" if tf32 else "fp32"
    else:
        kind = "bf16" if dtype == torch.bfloat16 else "fp16"
    return table.get(kind), kind


def throughput(width: int, variant: str, args, device: torch.device) -> dict:
    """Images/s, FLOPs per image, utilisation and peak memory of one training-step variant."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=3, num_classes=3, base_channels=width, padding="same",
                          batch_norm=True, dropout=0.0)).to(device)
    channels_last, amp, compiled = VARIANTS[variant]
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    dtype = precision.autocast_dtype(device, amp=amp, amp_cpu=amp)
    step_net = torch.compile(net) if compiled else net
    scaler = precision.grad_scaler(device, dtype)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (args.batch_size, args.size, args.size), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with precision.autocast(device, dtype):
            loss = F.cross_entropy(step_net(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    with FlopCounterMode(display=False) as counter:  # eager, once: the model's own FLOPs
        with precision.autocast(device, dtype):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
    flops_per_image = counter.get_total_flops() / args.batch_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    images_per_s = args.batch_size / time_steps(step, device, args.steps, args.warmup)
    peak, kind = peak_tflops(device, dtype)
    return {"width": width, "variant": variant, "precision": precision.describe(dtype),
            "images_per_s": round(images_per_s, 1),
            "gflops_per_image": round(flops_per_image / 1e9, 2),
            "mfu": None if peak is None else round(images_per_s * flops_per_image
                                                   / (peak * 1e12), 4),
            "peak_used": f"{peak} TFLOP/s ({kind})" if peak else kind,
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if device.type == "cuda" else None}


def epoch_tiles(images_per_s: float | None, minutes: float, batch_size: int,
                most: int = 4000) -> int:
    """Tiles per epoch for the time-boxed run: about a tenth of the time box at the measured
    throughput, a whole number of batches, at most ``most`` (the GPU size) and at least one
    batch. The time limit is checked between epochs, so the run overshoots it by about one
    epoch: with 4,000-tile epochs a CPU would overshoot by half an hour."""
    if not images_per_s:
        return most
    tiles = int(images_per_s * minutes * 60 / 10) // batch_size * batch_size
    return max(batch_size, min(most, tiles))


def measured_rate(rows: list[dict], cfg, device: torch.device) -> float | None:
    """The measured images/s of the training step the run's configuration will use (its
    width, channels_last, mixed precision and compile settings), or None if not measured."""
    amp = precision.autocast_dtype(device, cfg.amp, cfg.amp_cpu) is not None
    settings = (cfg.channels_last, amp, cfg.compile)
    for row in rows:
        if row["width"] == cfg.model.base_channels and VARIANTS[row["variant"]] == settings:
            return row.get("images_per_s")
    return None


def training_run(args, device: torch.device, rows: list[dict]) -> dict:
    """A time-boxed run of the practical configuration on real (or, tiny, synthetic) data,
    its epochs sized from the throughput measured in ``rows`` (:func:`epoch_tiles`)."""
    from unet_lesson.course.run import Run
    from unet_lesson.data import load_dsb_folder, load_labelled, make_synthetic_dsb
    from unet_lesson.evaluate import score_samples, summarise

    data = args.data
    if data is None:
        data = make_synthetic_dsb(Path(tempfile.mkdtemp()) / "tiny", n_images=24, seed=1,
                                  image_size=64, progress=False)
    overrides = ["num_epochs=1000", f"num_workers={args.workers}"] + (
        ["base_channels=4", "depth=2", "tile_size=32", "predict_tile=64", "batch_size=4",
         "tiles_per_epoch=8", "val_max_images=2", "split=random", "best_above_chance=false"]
        if args.tiny else [f"batch_size={args.batch_size}"])
    if not args.tiny:
        sized = apply_overrides(preset("practical"), overrides + args.set)
        tiles = epoch_tiles(measured_rate(rows, sized, device), args.minutes, args.batch_size)
        overrides.append(f"tiles_per_epoch={tiles}")
    cfg = apply_overrides(preset("practical"), overrides + args.set)
    samples = load_dsb_folder(data)
    folder = Path(tempfile.mkdtemp()) / "run"
    started = time.perf_counter()
    run = Run.create(folder, cfg, data, samples)
    history = run.train(samples, device, time_limit_s=args.minutes * 60)
    trained = time.perf_counter() - started
    metrics = run.finish(samples, device)
    out = {"config": "practical + " + " ".join(overrides + args.set), "data": str(data),
           "time_box_s": round(args.minutes * 60), "tiles_per_epoch": cfg.tiles_per_epoch,
           "epochs": len(history), "train_seconds": round(trained, 1),
           "seconds_per_epoch": round(float(history["seconds"].mean()), 1),
           "best_epoch": metrics["best_epoch"], "split": metrics["split"],
           **{f"{s}_dsb": round(metrics[s]["dsb"], 4) for s in ("val", "val_seen", "test")
              if s in metrics}}
    if args.test_images is not None:
        images = load_labelled(args.test_images)
        scores = score_samples(images, run.predict(images, device), run.postprocess())
        out["test_images"] = {"folder": str(args.test_images), **summarise(scores)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="stage1_train-style folder (default with "
                        "--tiny: a synthetic set)")
    parser.add_argument("--test-images", type=Path, help="labelled images to score, e.g. "
                        "stage1_test beside stage1_solution.csv")
    parser.add_argument("--minutes", type=float, default=4.0, help="the training run's time")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="changes to the training run's configuration")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized smoke test")
    parser.add_argument("--notebooks", nargs="*", metavar="NN", help="also execute these "
                        "notebooks top to bottom in this machine's mode on --data (given "
                        f"alone: {' '.join(NOTEBOOKS)}) and record their wall times; with "
                        "--tiny, notebook 00 in fast mode")
    parser.add_argument("--notebooks-only", action="store_true", help="only the notebooks: "
                        "no throughput table, no training run")
    parser.add_argument("--record-times", action="store_true", help="write the notebooks' "
                        "times into unet_lesson/course/timings.json (the notebooks' table)")
    args = parser.parse_args(argv)
    if args.notebooks is not None and not args.notebooks:
        args.notebooks = list(NOTEBOOKS)
    if args.notebooks_only and args.notebooks is None:
        parser.error("--notebooks-only needs --notebooks")
    if args.tiny:  # torch.compile's first call alone takes half a minute on a CPU: left out
        args.widths, args.batch_size, args.size, args.steps, args.warmup = [4], 2, 64, 2, 1
        args.workers, args.minutes = 0, min(args.minutes, 0.05)
        args.variants = [v for v in args.variants if not VARIANTS[v][2]]  # no compile
    device = env.pick_device()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "environment": environment(device)}
    print(json.dumps(results["environment"], indent=1), flush=True)
    if not args.notebooks_only:
        measure_training(args, device, results)
    if args.notebooks is not None:
        results["notebooks"] = notebook_times(args, device)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return results


def measure_training(args, device: torch.device, results: dict) -> None:
    """Steps 2 and 3: the throughput table and the time-boxed training run."""
    results["throughput"] = []
    print(f"\n{'width':>5} {'variant':<30} {'img/s':>8} {'GFLOP/img':>10} {'MFU':>6} "
          f"{'peak GiB':>8}")
    for width in args.widths:
        for variant in args.variants:
            try:
                r = throughput(width, variant, args, device)
            except Exception as err:  # e.g. no compiler for torch.compile
                r = {"width": width, "variant": variant, "error": f"{type(err).__name__}: "
                     f"{str(err).splitlines()[0][:120]}"}
                print(f"{width:>5} {variant:<30} failed: {r['error']}", flush=True)
            else:
                mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
                print(f"{width:>5} {variant:<30} {r['images_per_s']:>8.1f} "
                      f"{r['gflops_per_image']:>10.1f} {mfu:>6} {r['peak_memory_gib'] or '-':>8}",
                      flush=True)
            results["throughput"].append(r)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    print("\ntraining run:", flush=True)
    results["training"] = training_run(args, device, results["throughput"])
    print(json.dumps(results["training"], indent=1))
    args.out.write_text(json.dumps(results, indent=2))


def notebook_times(args, device: torch.device, execute=None) -> dict:
    """Step 4: each notebook of ``args.notebooks`` executed top to bottom (nbconvert, a
    fresh kernel) in this machine's mode on a fresh data folder holding ``--data`` as its
    ``dsb2018/stage1_train`` and a fresh runs folder, timed; with ``--record-times`` each
    time that ran to the end goes into the notebooks' time table. ``--tiny``: notebook 00
    in fast mode (every notebook is too long for a test). ``execute``: the function that
    runs one (tests pass a fake)."""
    from time_notebooks import execute as run_notebook
    from time_notebooks import hardware_name, notebook_path

    from unet_lesson.course import budget

    execute = execute or run_notebook
    numbers = ["00"] if args.tiny else args.notebooks
    work = Path(tempfile.mkdtemp(prefix="notebooks-"))
    (work / "data" / "dsb2018").mkdir(parents=True)
    if args.data is not None:
        (work / "data" / "dsb2018" / "stage1_train").symlink_to(Path(args.data).resolve())
    environ = {"UNET_LESSON_DATA": str(work / "data"), "UNET_LESSON_RUNS": str(work / "runs")}
    if args.tiny:
        environ["UNET_LESSON_FAST"] = "1"
    mode = "fast" if args.tiny else env.mode(device)
    images = len([p for p in Path(args.data).iterdir() if p.is_dir()]) if args.data else 0
    times = {"asked": list(args.notebooks), "mode": mode, "hardware": hardware_name()}
    for number in numbers:
        print(f"\nnotebook {number} ({mode} mode):", flush=True)
        result = execute(notebook_path(number), environ=environ)
        times[number] = result
        print(f"{result['seconds'] / 60:.1f} min" + ("" if result["ok"] else
                                                    f", FAILED:\n{result['error']}"), flush=True)
        if args.record_times and result["ok"] and number in budget.NOTEBOOKS:
            budget.record_time(number, mode, times["hardware"], result["seconds"] / 60,
                               f"gpu_acceptance.py --notebooks, data: {images} images of "
                               f"{Path(args.data).name if args.data else 'none'}")
    return times


if __name__ == "__main__":
    main()
