"""What each command of ``python -m unet_lesson`` does (the parser is in :mod:`.cli`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import env, plotting
from .config import course_config, load_config
from .data import find_or_make_dataset, load_dsb_folder, load_labelled, read_dsb_image
from .data.dsb import sample_folders
from .evaluate import PostProcess, predict_probabilities, score_samples, summarise
from .report import finish_run, format_metrics
from .train import fit, load_trained, split_samples


def _elapsed(start: float) -> str:
    return f"{(time.perf_counter() - start) / 60:.1f} min"


def demo(args) -> int:
    """Synthetic data -> a few minutes of training -> held-out score, figure and metrics."""
    start = time.perf_counter()
    device = env.pick_device(args.device)
    out = args.out or env.runs_dir() / "demo"
    print(f"mode {env.mode(device)}, device {env.describe(device)['device']}")
    source = find_or_make_dataset(prefer="synthetic")
    print(f"data: {source}")
    cfg = course_config("practical", device)
    samples = load_dsb_folder(source.root)
    history = fit(cfg, source.root, out, device=device, samples=samples)
    last = history.iloc[-1]
    print(f"trained {len(history)} epochs in {_elapsed(start)}; last epoch: loss "
          f"{last['train_loss']:.4f}, validation DSB score {last['val_dsb']:.3f}")
    metrics = finish_run(out, samples, source.root, device)
    print(format_metrics(metrics))
    print(f"\nwritten to {out}:")
    for name in ("comparison.png", "metrics.json", "curves.png", "history.csv", "best.pt"):
        print(f"  {out / name}")
    print(f"done in {_elapsed(start)}")
    return 0


def download(args) -> int:
    from .data import download_dsb2018

    dest = download_dsb2018(args.dest, source=args.source)
    print(f"the DSB 2018 data is in {dest}")
    return 0


def train(args) -> int:
    start = time.perf_counter()
    device = env.pick_device(args.device)
    cfg = load_config(args.config, args.set)
    samples = load_dsb_folder(args.data)
    print(f"training on {len(samples)} images of {args.data} with {device}; run folder {args.out}")
    fit(cfg, args.data, args.out, device=device, resume=args.resume, samples=samples,
        time_limit_s=args.minutes * 60 if args.minutes else None)
    metrics = finish_run(args.out, samples, args.data, device)
    print(format_metrics(metrics))
    print(f"done in {_elapsed(start)}; metrics, curves and comparison figure in {args.out}")
    return 0


def _load(args):
    """(net, config, post-processing, run folder) from --run or --checkpoint."""
    if (args.run is None) == (args.checkpoint is None):
        raise ValueError("give exactly one of --run RUN_FOLDER or --checkpoint FILE")
    path = args.checkpoint or args.run / "best.pt"
    net, cfg, state = load_trained(path, env.pick_device(args.device))
    folder = path.parent
    post_file = folder / "postprocess.json"
    post = (PostProcess(**json.loads(post_file.read_text())) if post_file.is_file()
            else PostProcess.for_target(cfg.target))
    return net, cfg, post, state, folder


def evaluate(args) -> int:
    net, cfg, post, state, folder = _load(args)
    root = args.data or Path(state["data_root"])
    samples = load_labelled(root)  # masks, or stage1_test with the solution CSV
    if args.split != "all":
        train_set, val_set, test_set, _ = split_samples(samples, cfg, root)
        samples = {"val": val_set, "test": test_set}[args.split]
    probs = [predict_probabilities(net, s.image, cfg, tta=args.tta)
             for s in env.progress(samples, desc="scoring")]
    scores = score_samples(samples, probs, post)
    out = folder / f"evaluate_{args.split}.csv"
    scores.to_csv(out, index=False)
    print(format_metrics({"reported_split": args.split, args.split: summarise(scores)}))
    print(f"per-image scores: {out}")
    return 0


def _predict_folder(args, folder_kind: str):
    net, cfg, post, _, folder = _load(args)
    for sample_dir in env.progress(sample_folders(args.images), desc=folder_kind):
        image = read_dsb_image(sample_dir)
        labels = post(predict_probabilities(net, image, cfg, tta=args.tta))
        yield sample_dir.name, image, labels


def predict(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    n = 0
    for image_id, image, labels in _predict_folder(args, "predicting"):
        Image.fromarray(labels.astype(np.uint16)).save(args.out / f"{image_id}_labels.png")
        overlay = plotting.overlay_outlines(image, labels, plotting.OUTLINE_PRED)
        Image.fromarray((overlay * 255).astype(np.uint8)).save(args.out / f"{image_id}.png")
        n += 1
    print(f"{n} predictions (labels and outlines) in {args.out}")
    return 0


def submit(args) -> int:
    from .rle import write_submission

    predictions = {image_id: labels for image_id, _, labels in _predict_folder(args, "submitting")}
    out = args.out or (args.run or args.checkpoint.parent) / "submission.csv"
    write_submission(out, predictions)
    print(f"submission for {len(predictions)} images: {out}")
    return 0
