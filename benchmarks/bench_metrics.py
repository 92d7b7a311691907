"""Benchmark: the Data Science Bowl score over 65 images shaped like stage1_test.

65 synthetic label images (256x256 up to 520x696, three of 1024x1024; 15 to about 110 nuclei
each) are scored against watershed predictions from blurred, noisy probabilities, which split
and merge some nuclei as a real network does. Prints the time of ``mean_dsb_score`` (the IoU
matrices and the ten thresholds), of the one-pass IoU matrices alone, and of writing and reading
back a submission file, with the machine it ran on. Target: well under a second.

With ``--real-dsb PATH/stage1_train`` it also reproduces the choice of the watershed defaults in
``unet_lesson.instances``: every 10th real image, its true nuclei merged into one mask, blurred
and noised as the "probability", scored by connected components and by watershed settings.

    PYTHONPATH=$PWD python benchmarks/bench_metrics.py [--real-dsb PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine  # noqa: E402

from unet_lesson import metrics, rle
from unet_lesson.instances import connected_components, watershed_split
from unet_lesson.toy import fake_probability, synthetic_nuclei

# (height, width, how many images): roughly the mix of stage1_test's 65 images
SIZES = [(256, 256, 30), (256, 320, 8), (260, 347, 8), (512, 640, 6), (520, 696, 10),
         (1024, 1024, 3)]


def make_images():
    trues, preds = [], []
    seed = 0
    for height, width, count in SIZES:
        for _ in range(count):
            n = int(np.clip(height * width / 2500, 15, 110))  # tens to ~100 nuclei
            true = synthetic_nuclei((height, width), n, seed=seed)
            trues.append(true)
            preds.append(watershed_split(fake_probability(true, seed=seed)))
            seed += 1
    return trues, preds


def real_labels(folder: Path) -> np.ndarray:
    """One real image's nuclei as a label image (its one-PNG-per-nucleus masks; first wins)."""
    from skimage.io import imread

    masks = sorted((folder / "masks").glob("*.png"))
    labels = np.zeros(imread(masks[0]).shape[:2], np.int32)
    for k, path in enumerate(masks, start=1):
        labels[(imread(path) > 0) & (labels == 0)] = k
    return labels


def watershed_settings(root: Path) -> None:
    folders = sorted(p for p in root.iterdir() if p.is_dir())[::10]
    trues = [real_labels(f) for f in folders]
    probs = [fake_probability(t, seed=0) for t in trues]
    print(f"real images: {len(trues)} (every 10th of {root})")
    methods = {"connected components": connected_components}
    for smooth in (0.0, 1.0):
        for h in (0.5, 2.0):
            methods[f"watershed smooth={smooth:g} h={h:g}"] = (
                lambda p, s=smooth, h=h: watershed_split(p, h=h, smooth=s))
    for name, method in methods.items():
        score = metrics.mean_dsb_score(trues, [method(p) for p in probs])
        print(f"  {name:<28} DSB score {score:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-dsb", type=Path, help="a stage1_train folder (optional)")
    args = parser.parse_args()
    trues, preds = make_images()
    n_true = sum(int(t.max()) for t in trues)
    n_pred = sum(int(p.max()) for p in preds)
    print(f"machine : {machine()}")
    print("device  : cpu (numpy)")
    print(f"images  : {len(trues)}, {sum(t.size for t in trues) / 1e6:.1f} M pixels, "
          f"{n_true} true and {n_pred} predicted nuclei")
    score_s, score = best_of(lambda: metrics.mean_dsb_score(trues, preds))
    iou_s, _ = best_of(lambda: [metrics.iou_matrix(t, p) for t, p in zip(trues, preds,
                                                                          strict=True)])
    print(f"mean_dsb_score over {len(trues)} images: {score_s:.3f} s (score {score:.3f})")
    print(f"iou_matrix alone, {len(trues)} images:   {iou_s:.3f} s")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submission.csv"
        predictions = {f"image_{i:02d}": p for i, p in enumerate(preds)}
        write_s, _ = best_of(lambda: rle.write_submission(path, predictions))
        shapes = {k: v.shape for k, v in predictions.items()}
        read_s, back = best_of(lambda: rle.read_submission_csv(path, shapes))
        assert all(np.array_equal(back[k], v) for k, v in predictions.items())
    print(f"write_submission ({n_pred} rows):          {write_s:.3f} s")
    print(f"read_submission_csv (round trip exact):   {read_s:.3f} s")
    print("target (scoring well under 1 s):", "met" if score_s < 0.5 else "NOT met")
    if args.real_dsb:
        watershed_settings(args.real_dsb)


if __name__ == "__main__":
    main()
