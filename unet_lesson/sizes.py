r"""Size arithmetic of the U-Net: which tiles are legal, what comes out, what goes in.

Section 2 of the paper: "To allow a seamless tiling of the output segmentation map, it is
important to select the input tile size such that all 2x2 max-pooling operations are applied to
a layer with an even x- and y-size." With unpadded (valid) 3x3 convolutions every convolution
loses 2 pixels, so the sizes of Figure 1 follow from the input size alone: 572 -> 570 -> 568 ->
284 -> ... -> 388. These functions compute them, so a student (and the tiler) never has to.
All sizes are in pixels, for square tiles (apply them to height and width separately).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .checks import check_choice

PADDINGS = ("valid", "same")
UP_MODES = ("transpose", "bilinear")


class Stage(NamedTuple):
    """One feature map of Figure 1: a box of the drawing, with where it sits and its shape.

    ``path``: ``"input"``, ``"down"`` (contracting path), ``"bottleneck"``, ``"up"`` (expansive
    path) or ``"output"``. ``level``: 0 at the top, ``depth`` at the bottleneck. ``op``: what
    made the map: ``"input"``, ``"pool"``, ``"conv a"``, ``"conv b"`` (the two 3x3
    convolutions of a level), ``"up-conv"`` (before the cropped copy is concatenated) or
    ``"output"`` (the final 1x1 convolution). ``channels`` and ``size`` (pixels, square) are
    the map's shape. ``name`` is the label the lessons print, e.g. ``"down 1 conv a"``.

    Not built in a notebook: :func:`feature_shapes` returns it.
    """

    path: str
    level: int
    op: str
    channels: int
    size: int

    @property
    def name(self) -> str:
        if self.path in ("input", "output"):
            return self.path
        if self.op == "pool":
            return f"pool {self.level}"
        if self.path == "bottleneck":
            return f"bottleneck {self.op}"
        return f"{self.path} {self.level} {self.op}"


def feature_shapes(input_size: int, depth: int = 4, padding: str = "valid",
                   base_channels: int = 64, in_channels: int = 1,
                   num_classes: int = 2) -> list[Stage]:
    """Every feature map of the network for a square tile, in the order data flows.

    The boxes of Figure 1 as :class:`Stage` records: the input ``(572 px, 1 channel)``, the two
    convolutions of each level of the contracting path (``down 0 conv a`` 570, ``down 0 conv b``
    568), each max-pool (``pool 1`` 284, with the 64 channels of the level above), ...,
    ``bottleneck conv b`` (28 px, 1024 channels), each up-convolution (``up 3 up-conv`` 56 px,
    512 channels, before the cropped copy is concatenated) and its two convolutions, and the
    output (388 px, 2 channels) after the final 1x1 convolution.
    Raises ``ValueError`` if a max-pool meets an odd size or a size drops below 1.

    Used in notebook 04.
    """
    check_choice("padding", padding, PADDINGS)
    shrink = 2 if padding == "valid" else 0  # pixels lost per unpadded 3x3 convolution
    stages = [Stage("input", 0, "input", in_channels, input_size)]

    def add(path: str, level: int, op: str, channels: int, size: int) -> None:
        if size < 1:
            raise ValueError(f"input size {input_size} is too small: "
                             f"{Stage(path, level, op, channels, size).name} has size {size}")
        stages.append(Stage(path, level, op, channels, size))

    size = input_size
    for level in range(depth + 1):  # contracting path; level == depth is the bottleneck
        path = "bottleneck" if level == depth else "down"
        if level > 0:
            if size % 2:
                raise ValueError(
                    f"input size {input_size}: the max-pool before level {level} meets the odd "
                    f"size {size}"
                )
            size //= 2
            add(path, level, "pool", stages[-1].channels, size)  # a pool keeps the channels
        for op in ("conv a", "conv b"):
            size -= shrink
            add(path, level, op, base_channels * 2**level, size)
    for level in range(depth - 1, -1, -1):  # expansive path
        size *= 2
        add("up", level, "up-conv", base_channels * 2**level, size)
        for op in ("conv a", "conv b"):
            size -= shrink
            add("up", level, op, base_channels * 2**level, size)
    stages.append(Stage("output", 0, "output", num_classes, size))  # the 1x1 convolution
    return stages


def feature_sizes(input_size: int, depth: int = 4, padding: str = "valid") -> list[tuple[str, int]]:
    """Every spatial size the network passes through, as ``(stage name, size)`` pairs.

    For the paper's 572 tile: 570, 568 | 284, 282, 280 | ... | 32, 30, 28 | 56, 54, 52 | ... 388
    (the stages of :func:`feature_shapes` between the input and the output).
    Raises ``ValueError`` if a max-pool meets an odd size or a size drops below 1.

    Built in notebooks 03 and 06; used in notebook 05.
    """
    return [(stage.name, stage.size) for stage in feature_shapes(input_size, depth, padding)[1:-1]]


def output_size(input_size: int, depth: int = 4, padding: str = "valid") -> int:
    """Spatial size of the output map for a square input tile (572 -> 388 in the paper).

    With ``padding="same"`` the output always has the input's size (see :class:`UNet`).

    Built in notebook 06; used in notebook 10.
    """
    if padding == "same":
        if input_size < 1:
            raise ValueError(f"input size must be positive, got {input_size}")
        return input_size
    return feature_sizes(input_size, depth, padding)[-1][1]


def is_legal_size(input_size: int, depth: int = 4, padding: str = "valid") -> bool:
    """True if a tile of this size passes through the network without rounding.

    ``valid``: every pooled size even and every size positive (572 yes, 570 no).
    ``same``: a multiple of ``2**depth`` (other sizes still work, by padding).

    Built in notebook 06.
    """
    if padding == "same":
        return input_size >= 1 and input_size % 2**depth == 0
    try:
        feature_sizes(input_size, depth, padding)
    except ValueError:
        return False
    return True


def legal_sizes_near(
    input_size: int, depth: int = 4, padding: str = "valid"
) -> tuple[int | None, int]:
    """The nearest legal tile sizes at or below and at or above ``input_size``.

    For ``valid`` padding they are the sizes ``2**depth * m + 4 * (2**depth - 1)`` (572 = 16*32 +
    60 for depth 4). The first entry is ``None`` when no legal size lies below.

    Used in notebook 06.
    """
    check_choice("padding", padding, PADDINGS)
    step = 2**depth
    offset = 0 if padding == "same" else 4 * (step - 1)
    smallest = step if padding == "same" else _smallest_valid(depth)
    below = offset + step * math.floor((input_size - offset) / step)
    below = below if below >= smallest else None
    above = max(smallest, offset + step * math.ceil((input_size - offset) / step))
    return below, above


def _smallest_valid(depth: int) -> int:
    step, offset = 2**depth, 4 * (2**depth - 1)
    size = offset + step
    while not is_legal_size(size, depth, "valid"):
        size += step
    return size


def input_size_for_output(out_size: int, depth: int = 4, padding: str = "valid") -> int:
    """The smallest legal input tile whose output is at least ``out_size`` (for overlap-tiling).

    Used in notebook 10.
    """
    if padding == "same":
        return 2**depth * math.ceil(out_size / 2**depth)
    size = _smallest_valid(depth)
    while output_size(size, depth) < out_size:
        size += 2**depth
    return size


def check_input_size(height: int, width: int, depth: int = 4, padding: str = "valid") -> None:
    """Raise a ``ValueError`` naming the nearest legal sizes if a ``valid`` tile is illegal.

    Not built in a notebook: :class:`~unet_lesson.networks.UNet` calls it.
    """
    if padding == "same":
        return
    for axis, size in (("height", height), ("width", width)):
        if not is_legal_size(size, depth, padding):
            below, above = legal_sizes_near(size, depth, padding)
            nearest = f"{below} or {above}" if below is not None else f"{above}"
            raise ValueError(
                f"input {axis} {size} is not a legal tile size for a valid-padding U-Net of depth "
                f"{depth} (every max-pool needs an even size, every size must stay positive); "
                f"the nearest legal sizes are {nearest}. Crop or mirror-pad the image to one of "
                f"them, or use padding='same'."
            )
