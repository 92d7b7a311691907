"""Charts of the lessons' experiments, and the paper's Figure 1 drawn from the sizes.

* :func:`draw_unet` - Figure 1, one box per feature map (:func:`unet_lesson.sizes.feature_shapes`);
* :func:`plot_groups` - the acquisition groups of a data set (notebook 01);
* :func:`plot_claim` - each arm of an experiment over seeds (notebook 11).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data.groups import clustering_matrix
from .sizes import Stage, feature_shapes


def plot_claim(table, measures: dict[str, str], arm: str = "arm", title: str = ""):
    """One panel per measure: each arm of an experiment (x), each seed's value (dots), their
    mean (a bar) and standard deviation over seeds (a line), so the spread a difference must
    beat is in view.

    ``table``: one row per run, with an ``arm`` column (order kept), a ``seed`` column and the
    measures' columns; ``measures``: ``{column: axis label}``.

    Used in notebook 11b.
    """
    df = pd.DataFrame(table)
    arms = list(dict.fromkeys(df[arm]))
    fig, axes = plt.subplots(1, len(measures), figsize=(0.9 + 1.3 * len(arms) * len(measures),
                                                       3.2), squeeze=False)
    for ax, (column, label) in zip(axes[0], measures.items(), strict=True):
        for x, name in enumerate(arms):
            values = df.loc[df[arm] == name, column].astype(float).to_numpy()
            ax.bar(x, values.mean(), width=0.6, color="#a9c8ec", edgecolor="black",
                   linewidth=0.6)
            if len(values) > 1:
                ax.errorbar(x, values.mean(), yerr=values.std(ddof=1), color="black",
                            capsize=4, linewidth=1)
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(x + np.asarray(offsets), values, color="#c0392b", s=14, zorder=3)
        ax.set_xticks(range(len(arms)), arms, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
    fig.suptitle(title + " (bars: mean over seeds; lines: +/- 1 s.d.; dots: seeds)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def typical_images(features: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """For each group, the image_id nearest its centroid in :func:`clustering_matrix`.

    Not built in a notebook: plot_groups uses it.
    """
    features = features.sort_values("image_id", ignore_index=True)
    points = clustering_matrix(features).to_numpy()
    names = groups.loc[features["image_id"]].to_numpy()
    typical = {}
    for name in sorted(set(names)):
        rows = np.flatnonzero(names == name)
        centre = points[rows].mean(axis=0)
        typical[name] = features["image_id"].iloc[
            rows[np.argmin(((points[rows] - centre) ** 2).sum(axis=1))]]
    return pd.Series(typical, name="image_id")


def plot_groups(features: pd.DataFrame, groups: pd.Series, samples=None,
                x: str = "grey_p50", y: str = "area_median", max_thumbnails: int = 32):
    """A scatter of two statistics coloured by group, and a typical image of each group.

    ``x``, ``y``: columns of ``features`` (log axes; by default the median grey level, which
    separates dark from bright backgrounds, and the median nucleus area in pixels, the
    magnification). Groups are numbered 1, 2, ... in name order; each number sits at its
    group's median. With ``samples`` (the DSBSample list, or a mapping image_id -> image), a
    strip below shows, per group, the image nearest the group's centroid
    (:func:`typical_images`, at most ``max_thumbnails``) titled with its number, name and
    size. Returns the figure.

    Used in notebook 01.
    """
    names = groups.loc[features["image_id"]].to_numpy()
    order = sorted(set(names))
    images = {}
    if samples is not None:
        images = dict(samples) if isinstance(samples, dict) else \
            {s.image_id: s.image for s in samples}
    typical = typical_images(features, groups)
    shown = [g for g in order if typical[g] in images][:max_thumbnails]
    ncols = min(max(len(shown), 1), 8)
    nrows = -(-len(shown) // ncols) if shown else 0
    fig = plt.figure(figsize=(12, 5 + 1.8 * nrows))
    grid = fig.add_gridspec(1 + nrows, ncols, height_ratios=[5] + [1.8] * nrows)
    ax = fig.add_subplot(grid[0, :])
    cmap = plt.get_cmap("tab20")
    markers = {"fluorescence": "o", "brightfield": "s", "stained": "^"}
    for i, name in enumerate(order):
        part = features[names == name]
        xs, ys = part[x].clip(lower=0.5), part[y].clip(lower=0.5)  # log axes: no zeros
        ax.scatter(xs, ys, s=14, color=cmap(i % 20), alpha=0.6,
                   marker=markers.get(part["modality"].iloc[0], "o"))
        ax.annotate(str(i + 1), (float(np.median(xs)), float(np.median(ys))), fontsize=9,
                    ha="center", va="center", weight="bold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{len(order)} acquisition groups of {len(features)} images\n(numbers: "
                 f"groups; markers: o fluorescence, s brightfield, ^ stained; thumbnails "
                 f"stretched to their 99.5th percentile)")
    for k, name in enumerate(shown):
        thumb = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        image = np.asarray(images[typical[name]], dtype=np.float32)
        thumb.imshow(np.clip(image / max(np.percentile(image, 99.5), 1.0), 0, 1))
        modality, rest = name.split("-", 1)
        thumb.set_title(f"{order.index(name) + 1}. {modality}\n{rest} "
                        f"({int((names == name).sum())} images)", fontsize=7)
        thumb.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Architecture lessons (notebooks 02-06): the paper's Figure 1, drawn from the size arithmetic
# --------------------------------------------------------------------------------------------

UNET_ARROWS = {  # the arrows of Figure 1 and their colours
    "conv 3x3, ReLU": "#1f5fa8",
    "copy and crop": "#8c8c8c",
    "max pool 2x2": "#c0392b",
    "up-conv 2x2": "#27ae60",
    "conv 1x1": "#16a5a5",
}


def _unet_box_position(stage: Stage, depth: int) -> tuple[int, float]:
    """(level, x) of a feature map in the U: contracting boxes at 2L + k, expansive mirrored.

    A level's pooled map sits under the conv above it (the max-pool arrow points straight down)
    and each up-convolution's output sits over the conv below it (its arrow points straight up).
    """
    if stage.path == "input":
        return 0, 0.0
    if stage.path == "output":
        return 0, 4.0 * depth + 3
    step = {"pool": 0, "up-conv": 0, "conv a": 1, "conv b": 2}[stage.op]
    if stage.path in ("down", "bottleneck"):
        return stage.level, 2.0 * stage.level + step
    return stage.level, 2.0 * depth + 2 + 2 * (depth - 1 - stage.level) + step


def draw_unet(input_size: int = 572, depth: int = 4, padding: str = "valid",
              base_channels: int = 64, in_channels: int = 1, num_classes: int = 2,
              until: str | None = None, ax=None):
    """The paper's Figure 1 drawn from :func:`unet_lesson.sizes.feature_shapes`.

    One box per feature map (height grows with its size, width with its channels), its size
    written at the lower left and its channels on top; white boxes are the cropped copies that
    the expansive path concatenates, and, as in Figure 1, the pair of a copy and an
    up-convolution's output is labelled with the channels of the concatenation (1024 at the
    lowest step up, 128 at the top). ``until`` stops after that stage (e.g.
    ``"bottleneck conv b"`` for the contracting path only). Returns the figure.

    Used in notebooks 03, 05 and 06.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    shapes = feature_shapes(input_size, depth, padding, base_channels, in_channels, num_classes)
    if until is not None:
        names = [s.name for s in shapes]
        if until not in names:
            raise ValueError(f"until={until!r} is not a stage; stages are {names}")
        shapes = shapes[: names.index(until) + 1]
    x_max = max(_unet_box_position(stage, depth)[1] for stage in shapes)
    levels = max(_unet_box_position(stage, depth)[0] for stage in shapes)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.75 * (x_max + 3), 1.3 * (levels + 1) + 0.6))
    fig = ax.figure
    largest = max(stage.size for stage in shapes)

    def width(channels: int) -> float:
        return 0.06 + 0.11 * max(0.0, np.log2(channels / min(base_channels, 4)) / 2)

    def height(size: int) -> float:
        return 0.3 + 0.55 * size / largest

    boxes: dict[Stage, tuple[float, float, float, float, float]] = {}  # left, right, top, bottom, x
    skips: dict[int, Stage] = {}  # the last map of each contracting level: the copied one
    for stage in shapes:
        channels, size = stage.channels, stage.size
        level, x = _unet_box_position(stage, depth)
        top, w, h = -1.3 * level, width(channels), height(size)
        left = x - w / 2
        if stage.op == "up-conv":  # the white copy (cropped skip) sits left of the up-conv output
            copy_w = width(skips[level].channels)
            left -= copy_w
            ax.add_patch(Rectangle((left, top - h), copy_w, h, facecolor="white",
                                   edgecolor="black", linewidth=0.8))
        ax.add_patch(Rectangle((x - w / 2, top - h), w, h, facecolor="#a9c8ec",
                               edgecolor="black", linewidth=0.8))
        boxes[stage] = (left, x + w / 2, top, top - h, x)
        if stage.path == "down" and stage.op == "conv b":
            skips[level] = stage
        ax.text((left + x + w / 2) / 2, top - h - 0.04, f"{size}\u00b2", ha="center", va="top",
                fontsize=7)
        if stage.op == "up-conv":  # as in Figure 1: the concatenated pair, copy + up-conv
            ax.text((left + x + w / 2) / 2, top + 0.04, str(channels + skips[level].channels),
                    ha="center", va="bottom", fontsize=7)
        elif stage.op != "pool":  # as in Figure 1: a pooled map keeps its channels
            ax.text(x, top + 0.04, str(channels), ha="center", va="bottom", fontsize=7)

    def arrow(start, end, kind):
        used.add(kind)
        ax.annotate("", xy=end, xytext=start, arrowprops={
            "arrowstyle": "-|>", "color": UNET_ARROWS[kind], "linewidth": 1.4,
            "shrinkA": 1, "shrinkB": 1})

    used = {"conv 3x3, ReLU"}
    for prev, stage in zip(shapes, shapes[1:], strict=False):
        a, b = boxes[prev], boxes[stage]
        if stage.op == "pool":
            arrow((a[4], a[3] - 0.14), (b[4], b[2]), "max pool 2x2")  # below the size
        elif stage.op == "up-conv":
            arrow((a[4], a[2] + 0.16), (b[4], b[3] - 0.14), "up-conv 2x2")  # clear of labels
            skip = boxes[skips[stage.level]]
            y = skip[2] - 0.15
            arrow((skip[1], y), (b[0], y), "copy and crop")
        else:
            y = a[2] - 0.15
            kind = "conv 1x1" if stage.path == "output" else "conv 3x3, ReLU"
            arrow((a[1], y), (b[0], y), kind)
    ax.legend(handles=[Line2D([], [], color=c, linewidth=2, label=k)
                       for k, c in UNET_ARROWS.items() if k in used],
              loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(-1.0, x_max + 2.0)
    ax.set_ylim(-1.3 * levels - 1.1, 0.3)
    ax.axis("off")
    ax.set_title(f"U-Net, {padding} padding: a {input_size}x{input_size} tile in, "
                 f"{shapes[-1].size}x{shapes[-1].size} out" if until is None else
                 f"U-Net up to {until}: {input_size} -> {shapes[-1].size} pixels", fontsize=10)
    return fig
