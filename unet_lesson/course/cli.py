"""The command line: ``python -m unet_lesson demo|download|train|predict|evaluate|submit``.

Run ``python -m unet_lesson COMMAND --help`` for the details of each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
unet-lesson: the U-Net of Ronneberger et al. (2015) on the 2018 Data Science Bowl nuclei.

Start with `demo`: it needs no data, no account and no GPU. It generates synthetic nuclei,
trains a small U-Net for a few minutes, scores it on held-out images and writes a picture of
image | true mask | prediction.

With the real data:
  python -m unet_lesson download                        # stage1_train (fixed), test, solution
  python -m unet_lesson train --data data/dsb2018/stage1_train --config practical --out runs/p
  python -m unet_lesson evaluate --run runs/p           # DSB score overall and by modality
  python -m unet_lesson predict --run runs/p --images data/dsb2018/stage1_test --out runs/p/pred
  python -m unet_lesson submit --run runs/p --images data/dsb2018/stage1_test

Folders: UNET_LESSON_DATA (data/), UNET_LESSON_RUNS (runs/); device: UNET_LESSON_DEVICE.
"""


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")


def _add_skip_bad(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad", action="store_true", help="skip samples that cannot be read "
                   "(a warning names each) instead of stopping at the first")


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, help="a training run folder (uses its best.pt)")
    p.add_argument("--checkpoint", type=Path, help="another checkpoint of a run instead of "
                   "--run, e.g. RUN/last.pt")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average the "
                   "predictions of the 8 flips and 90-degree rotations of each image (about 8x "
                   "the prediction time)")
    _add_device(p)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m unet_lesson`` with one sub-command per command.

    Not built in a notebook: the command line.
    """
    parser = argparse.ArgumentParser(prog="python -m unet_lesson", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train a small U-Net on synthetic nuclei and show results",
                       description="Generate synthetic nuclei (DSB layout), train a small U-Net "
                       "for a few minutes (CPU or GPU), score it on held-out images and write "
                       "comparison.png and metrics.json.")
    p.add_argument("--out", type=Path, help="output folder (default: runs/demo)")
    _add_device(p)

    p = sub.add_parser("download", help="download the DSB 2018 data (the course's release)",
                       description="Download stage1_train, stage1_test and the stage-1 "
                       "solution. stage1_train is by default the course's release: the "
                       "community-fixed one (github.com/lopuhin/kaggle-dsbowl-2018-dataset-"
                       "fixes, at a pinned commit), verified file by file; --release original "
                       "takes the competition's own 670 images from --source. 'bbbc038' (the "
                       "Broad Institute's copy) needs no account; 'kaggle' needs a Kaggle API "
                       "token (KAGGLE_API_TOKEN or ~/.kaggle/access_token; the older "
                       "~/.kaggle/kaggle.json works too) and the competition's rules accepted.")
    p.add_argument("--dest", type=Path, help="target folder (default: data/dsb2018)")
    p.add_argument("--source", choices=["bbbc038", "kaggle"], default="bbbc038",
                   help="where from (default: bbbc038, no account needed)")
    p.add_argument("--release", choices=["fixed", "original"], default="fixed",
                   help="stage1_train: the community-fixed release (the course's, default) or "
                   "the original one")

    p = sub.add_parser("train", help="train a U-Net on a DSB-layout folder",
                       description="Train on a stage1_train-style folder into a new run folder "
                       "(--out). --config is a preset (paper, practical, laptop, demo) or a "
                       "JSON file; --set changes single fields, e.g. --set lr=0.01 "
                       "num_epochs=20. After training, post-processing is tuned on the "
                       "validation split and the test split is scored. A folder holding "
                       "another run is refused: --resume continues it (with the same "
                       "configuration; a larger num_epochs trains further), --overwrite "
                       "replaces it. Nothing is written before every check has passed.")
    p.add_argument("--data", type=Path, required=True, help="folder of <image_id>/ samples")
    p.add_argument("--config", help="preset name or .json file (default: practical; with "
                   "--resume: the run's own)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config changes")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, history)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in OUT from its "
                       "last.pt (its configuration must not change, but --set num_epochs=N "
                       "may raise the number of epochs)")
    group.add_argument("--overwrite", action="store_true", help="delete the run in OUT and "
                       "start a new one")
    p.add_argument("--minutes", type=float, help="stop after the epoch that passes this time")
    _add_skip_bad(p)
    _add_device(p)

    p = sub.add_parser("evaluate", help="DSB score of a trained run, overall and by modality",
                       description="Score a trained run on its test split (the default), its "
                       "validation split, or every image of another labelled folder (--data, "
                       "e.g. data/dsb2018/stage1_test, whose labels come from "
                       "stage1_solution.csv: there the default is --split all).")
    _add_run(p)
    p.add_argument("--data", type=Path, help="data folder (default: the one it trained on)")
    p.add_argument("--split", choices=["test", "val", "all"], help="which images (default: "
                   "test for the run's own data, all for another folder)")
    _add_skip_bad(p)

    p = sub.add_parser("predict", help="predict nuclei for a folder of images",
                       description="Write a label image (16-bit PNG, 0 = background; a "
                       "32-bit TIFF for an image with more than 65,535 nuclei) and an outline "
                       "overlay for every image of a DSB-layout folder.")
    _add_run(p)
    p.add_argument("--images", type=Path, required=True, help="folder of <image_id>/ samples")
    p.add_argument("--out", type=Path, required=True, help="folder for the predictions")
    _add_skip_bad(p)

    p = sub.add_parser("submit", help="write a Kaggle submission CSV for stage1_test",
                       description="Predict every image of --images and write ImageId,"
                       "EncodedPixels (run-length encoded, one row per nucleus).")
    _add_run(p)
    p.add_argument("--images", type=Path, required=True, help="e.g. data/dsb2018/stage1_test")
    p.add_argument("--out", type=Path, help="CSV path (default: RUN/submission.csv)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors the user can fix print as ``error: ...`` and return 2.

    Not built in a notebook: the command line, ``python -m unet_lesson``.
    """
    args = build_parser().parse_args(argv)
    from . import commands  # heavy imports only once the arguments are fine

    dispatch = {"demo": commands.demo_command, "download": commands.download_command,
                "train": commands.train_command, "evaluate": commands.evaluate_command,
                "predict": commands.predict_command, "submit": commands.submit_command}
    try:
        return dispatch[args.command](args)
    except (OSError, ValueError, RuntimeError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)  # OSError's text names its file
        return 2
