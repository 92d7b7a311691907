"""What each command of ``python -m unet_lesson`` does (the parser is in :mod:`.cli`).

Each command is a few lines over a :class:`~unet_lesson.course.run.Run`, which owns the run
folder. Not built in a notebook: the command line.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .. import env, files, plotting
from ..config import load_config
from ..data import DSBDataError, load_dsb_folder, load_labelled, modality_of, read_dsb_image
from ..data.dsb import sample_folders
from ..data.label_files import PNG_MAX_ID, label_suffix, write_label_image
from ..evaluate import format_metrics, score_samples, summarise
from ..predict import predict_image, predict_samples
from . import distributed
from .datasets import dsb_dir, find_or_make_dataset
from .lessons import course_config
from .lock import RunLock
from .preflight import check_output_file, check_output_folder, check_run_writable
from .run import Run, RunError


def _elapsed(start: float) -> str:
    return f"{(time.perf_counter() - start) / 60:.1f} min"


def _read_labelled(root: Path, skip_bad: bool, masks: bool = False) -> list:
    """The labelled samples of ``root`` (``masks``: a folder of mask PNGs, not a solution
    CSV); with ``--skip-bad`` bad samples are skipped and counted (a warning names each)."""
    skipped: list = []
    read = load_dsb_folder if masks else load_labelled
    samples = read(root, on_error="skip" if skip_bad else "raise", skipped=skipped)
    if skipped:
        print(f"skipped {len(skipped)} bad sample(s) of {root} (--skip-bad; the warnings "
              f"above name them)")
    return samples


def demo_command(args) -> int:
    """Synthetic data -> a few minutes of training -> held-out score, figure and metrics.
    """
    start = time.perf_counter()
    device = env.pick_device(args.device)
    out = check_output_folder(args.out or env.runs_dir() / "demo", "--out")
    print(f"mode {env.mode(device)}, device {env.device_name(device)}")
    source = find_or_make_dataset(prefer="synthetic")
    print(f"data: {source.kind}, {source.n_images} images in {source.root}")
    samples = load_dsb_folder(source.root)
    run = Run.create(out, course_config("practical", device), source.root, samples,
                     overwrite=True)  # the demo's own folder: each demo replaces the last
    history = run.train(samples, device)
    last = history.iloc[-1]
    print(f"trained {len(history)} epochs in {_elapsed(start)}; last epoch: loss "
          f"{last['train_loss']:.4f}, validation DSB score {last['val_dsb']:.3f}")
    print(format_metrics(run.finish(samples, device)))
    print(f"\nwritten to {out}:")
    for name in ("comparison.png", "metrics.json", "curves.png", "history.csv", "best.pt"):
        print(f"  {out / name}")
    print(f"done in {_elapsed(start)}")
    return 0


def download_command(args) -> int:
    """Download and unpack the DSB 2018 data into ``--dest``.
    """
    from .download import download_dsb2018
    from .release import identify_release

    check_output_folder(args.dest or dsb_dir(), "--dest")
    dest = download_dsb2018(args.dest, source=args.source, release=args.release)
    print(f"the DSB 2018 data is in {dest}; stage1_train: "
          f"{identify_release(dest / 'stage1_train')['description']}")
    return 0


def train_command(args) -> int:
    """Create (or ``--resume``) a run, train it, then score it on its held-out images.

    Under ``torchrun`` every process runs this; rank 0 alone makes the run folder, writes
    and finishes, the others train their share (:mod:`unet_lesson.course.distributed`).
    """
    start = time.perf_counter()
    check_output_folder(args.out, "--out")  # before anything is read or trained
    device = distributed.init(env.pick_device(args.device))
    main = distributed.is_main()
    if args.resume:  # checked before the data is read: a refusal costs no time
        config = load_config(args.config) if args.config else None
        run = Run.resume(args.out, config, args.set, data_root=args.data, sweep=main)
        samples = _read_labelled(args.data, args.skip_bad, masks=True)
    else:
        config = load_config(args.config or "practical", args.set)
        samples = _read_labelled(args.data, args.skip_bad, masks=True)
        run = Run.create(args.out, config, args.data, samples,
                         overwrite=args.overwrite) if main else None
    distributed.barrier()  # the others open the run rank 0 made
    run = run or Run.open(args.out, sweep=False)
    # rank 0 holds the run folder's lock from training to the last result written
    with RunLock(run.folder) if main else contextlib.nullcontext():
        if main:
            print(f"training on {len(samples)} images of {args.data} with {device} "
                  f"({distributed.world_size()} process(es)); run folder {args.out}")
        run.train(samples, device, time_limit_s=args.minutes * 60 if args.minutes else None,
                  processes=distributed.processes())
        job = distributed.world_size() > 1
        distributed.shutdown()  # all together; rank 0 then scores alone, the others are done
        if main:
            print(format_metrics(run.finish(samples, device)))
            print(f"done in {_elapsed(start)}; metrics, curves and comparison figure in "
                  f"{args.out}")
    if job:
        distributed.leave()  # every file is written: end without the interpreter's teardown
    return 0


def _open(args) -> tuple[Run, str]:
    """The run of ``--run`` (its best.pt) or of ``--checkpoint RUN/NAME.pt`` (that one)."""
    if (args.run is None) == (args.checkpoint is None):
        raise ValueError("give exactly one of --run RUN_FOLDER or --checkpoint RUN_FOLDER/X.pt")
    if args.checkpoint is not None:
        return Run.open(args.checkpoint.parent), args.checkpoint.name
    return Run.open(args.run), "best.pt"


def evaluate_command(args) -> int:
    """Score a run's checkpoint on a split of its data (or every image of ``--data``).
    """
    run, checkpoint = _open(args)
    device = env.pick_device(args.device)
    if args.data is None and not run.data_root.is_dir():
        where = "" if run.data_root.is_absolute() else f" (a relative path: from {Path.cwd()})"
        raise RunError(f"{run.path('run.json')} names the data folder {run.data_root}, which "
                       f"is not there{where}: pass --data with the folder this run trained on")
    root = args.data or run.data_root
    own = Path(root).resolve() == run.data_root.resolve()
    split = args.split or ("test" if own else "all")
    if split != "all" and not own:
        raise RunError(f"--split {split} is a split of the data this run trained on "
                       f"({run.data_root}); to score every image of {root} use --split all")
    check_run_writable(run.folder, f"evaluate_{split}.csv")
    samples = _read_labelled(root, args.skip_bad)  # masks, or stage1_test with the solution
    if split != "all":
        samples = run.split(samples)[split]
    net = run.load_model(device, checkpoint)
    probs = predict_samples(net, samples, run.config, device, args.tta, desc="scoring")
    scores = score_samples(samples, probs, run.postprocess())
    out = files.write_csv(run.path(f"evaluate_{split}.csv"), scores)
    print(format_metrics({"reported_split": split, split: summarise(scores)}))
    print(f"per-image scores: {out}")
    return 0


def _predict_folder(args, what: str, skip_bad: bool = False):
    run, checkpoint = _open(args)
    device = env.pick_device(args.device)
    net, post = run.load_model(device, checkpoint), run.postprocess()
    for sample_dir in env.progress(sample_folders(args.images), desc=what):
        try:
            image = read_dsb_image(sample_dir)
        except DSBDataError as error:
            if not skip_bad:
                raise
            warnings.warn(f"skipped sample {sample_dir.name}: {error}", stacklevel=2)
            continue
        probs = predict_image(net, image, run.config, device, tta=args.tta)
        labels = post(probs, modality_of(image))  # the setting of its modality, if chosen
        yield sample_dir.name, image, labels


def predict_command(args) -> int:
    """Write label images and outlined overlays for every image of ``--images``.
    """
    check_output_folder(args.out, "--out")  # before the run is opened
    n, wide = 0, []
    for image_id, image, labels in _predict_folder(args, "predicting", args.skip_bad):
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = label_suffix(labels)  # a 32-bit TIFF for more than 65,535 nuclei
        write_label_image(args.out / f"{image_id}_labels{suffix}", labels)
        wide += [image_id] if suffix != ".png" else []
        overlay = plotting.overlay_outlines(image, labels, plotting.OUTLINE_PRED)
        Image.fromarray((overlay * 255).astype(np.uint8)).save(args.out / f"{image_id}.png")
        n += 1
    print(f"{n} predictions (labels and outlines) in {args.out}")
    if wide:
        print(f"{len(wide)} image(s) have more than {PNG_MAX_ID:,} nuclei, more than a 16-bit "
              f"PNG holds: their labels are 32-bit TIFFs (e.g. {wide[0]}_labels.tif)")
    return 0


def submit_command(args) -> int:
    """Write a Kaggle submission CSV for every image of ``--images``.
    """
    from ..rle import write_submission

    out = args.out or (args.run or args.checkpoint.parent) / "submission.csv"
    check_output_file(out, "--out")  # before predicting every image
    predictions = {image_id: labels for image_id, _, labels in _predict_folder(args, "submitting")}
    write_submission(out, predictions)
    print(f"submission for {len(predictions)} images: {out}")
    return 0
