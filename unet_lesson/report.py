"""The end of a training run: choose the post-processing, score the held-out images, draw.

:func:`finish_run` is what ``python -m unet_lesson train`` and ``demo`` do after :func:`fit`:

1. load ``best.pt`` (the epoch with the best validation score);
2. choose the post-processing on the **validation** split (:func:`tune_postprocessing`);
3. score the **test** split once with that choice: overall and by modality;
4. write ``metrics.json``, ``test_scores.csv``, ``postprocess.json``, the training curves
   (``curves.png``) and the comparison figure (``comparison.png``: image, true mask,
   prediction, errors).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import env, plotting
from .evaluate import (
    PostProcess,
    predict_samples,
    score_samples,
    summarise,
    tune_postprocessing,
)
from .train import load_trained, split_samples


def pick_examples(scores: pd.DataFrame, n: int = 6) -> list[str]:
    """Image ids for a comparison figure: every modality in turn, each spanning its scores.

    Rows go round-robin over the modalities; within one modality the picks are spread evenly
    over its images ranked by DSB score (best, ..., worst), so a figure shows typical and bad
    cases too, not only the best.
    """
    groups = [list(g.sort_values("dsb", ascending=False)["image_id"])
              for _, g in scores.groupby("modality")]
    counts = [0] * len(groups)
    while sum(counts) < min(n, len(scores)):
        for i, g in enumerate(groups):
            if counts[i] < len(g) and sum(counts) < n:
                counts[i] += 1
    spread = [[g[round(j)] for j in np.linspace(0, len(g) - 1, k)] if k > 1 else g[:k]
              for g, k in zip(groups, counts, strict=True)]
    return [ids[r] for r in range(max(counts, default=0)) for ids in spread if r < len(ids)]


def comparison_figure(samples, probabilities, post: PostProcess, ids: list[str], title: str):
    """Rows of image | true mask | prediction | errors for the chosen ids."""
    by_id = {s.image_id: (s, p) for s, p in zip(samples, probabilities, strict=True)}
    chosen = [by_id[i] for i in ids]
    preds = [post(p) for _, p in chosen]
    fig = plotting.show_comparison([s.image for s, _ in chosen], [s.labels for s, _ in chosen],
                                   preds, row_titles=[i[:12] for i in ids], errors=True)
    fig.suptitle(title, y=1.0)
    return fig


def finish_run(out_dir: str | Path, samples, data_root: str | Path, device=None,
               tta: bool = False) -> dict:
    """Tune on validation, score the test split, write metrics and figures; returns metrics."""
    out_dir = Path(out_dir)
    device = device or env.pick_device()
    net, cfg, state = load_trained(out_dir / "best.pt", device)
    _, val, test, _ = split_samples(samples, cfg, Path(data_root))
    started = time.perf_counter()
    val_probs = predict_samples(net, val, cfg, device, tta, desc="validation images")
    post, grid = tune_postprocessing(val, val_probs, cfg.target)
    grid.to_csv(out_dir / "postprocess_grid.csv", index=False)
    (out_dir / "postprocess.json").write_text(json.dumps(post.to_dict(), indent=2) + "\n")
    held_out, name = (test, "test") if test else (val, "val")
    probs = val_probs if held_out is val else predict_samples(net, held_out, cfg, device, tta,
                                                              desc="test images")
    scores = score_samples(held_out, probs, post)
    scores.to_csv(out_dir / f"{name}_scores.csv", index=False)
    # the whole run: best.pt holds the history only up to the best epoch
    saved = out_dir / "history.csv"
    history = pd.read_csv(saved) if saved.is_file() else pd.DataFrame(state["history"])
    metrics = {
        "reported_split": name,
        name: summarise(scores),
        "val": summarise(score_samples(val, val_probs, post)),
        "postprocess": post.to_dict(),
        "best_epoch": int(state["epoch"]) + 1,
        "epochs_trained": len(history),
        "train_minutes": round(float(history["seconds"].sum()) / 60, 2),
        "evaluate_seconds": round(time.perf_counter() - started, 1),
        "device": env.describe(device)["device"],
        "tta": tta,
        "config": cfg.to_dict(),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    fig = plotting.plot_history(history)
    fig.savefig(out_dir / "curves.png", bbox_inches="tight")
    plt.close(fig)
    fig = comparison_figure(held_out, probs, post, pick_examples(scores),
                            f"{name} images: DSB score {metrics[name]['dsb']:.3f}")
    fig.savefig(out_dir / "comparison.png", bbox_inches="tight")
    plt.close(fig)
    return metrics


def format_metrics(metrics: dict) -> str:
    """A few lines for the terminal: overall and per-modality scores."""
    name = metrics["reported_split"]
    m = metrics[name]
    lines = [f"{name} split: DSB score {m['dsb']:.3f}, pixel Dice {m['dice']:.3f} "
             f"({m['n_images']} images)"]
    for modality, v in sorted(m["by_modality"].items()):
        lines.append(f"  {modality:<22} DSB {v['dsb']:.3f}  Dice {v['dice']:.3f}  "
                     f"({v['n_images']} images)")
    return "\n".join(lines)

