r"""The U-Net of Ronneberger, Fischer & Brox (MICCAI 2015, arXiv:1505.04597), one class per idea.

Read it top to bottom beside the paper's Figure 1 and section 2:

* :class:`DoubleConv` - two unpadded 3x3 convolutions, each followed by a ReLU (the blue arrows).
* :class:`Down` - a 2x2 max-pool with stride 2, then a double convolution that doubles the
  channels (red arrow, then blue arrows): one step of the *contracting path*.
* :class:`Bottleneck` - the lowest step (1024 channels) with the paper's drop-out "at the end of
  the contracting path".
* :class:`Up` - one step of the *expansive path*: a 2x2 "up-convolution" that halves the
  channels (green arrow), a centre crop of the matching contracting feature map (the crop is
  needed "due to the loss of border pixels in every convolution"), concatenation (grey arrow)
  and a double convolution.
* :class:`UNet` - the whole network with the final 1x1 convolution to ``num_classes`` maps.

The size arithmetic (legal tiles, the output size of a tile, Figure 1's sizes) lives in
:mod:`unet_lesson.sizes`; its functions are importable from here too.

Paper configuration: ``UNet(in_channels=1, num_classes=2)``: a 572x572 tile in, 388x388 out,
23 convolution layers, He initialisation (section 3). It has 31,030,658 parameters: computed
from Figure 1's layers (the paper does not give a count).

Where we depart from the paper, we say so and it is an option:

* ``padding="same"`` pads every 3x3 convolution so feature maps keep their size (no crop
  needed). Inputs whose size is not a multiple of ``2**depth`` are mirror-padded up to the next
  multiple and the output is cropped back, so any size works.
* ``batch_norm=True`` adds batch normalisation after each 3x3 convolution (Ioffe & Szegedy 2015;
  not in the paper, but it makes training far less sensitive to the learning rate).
* ``up_mode="bilinear"`` replaces the learned 2x2 up-convolution by bilinear up-sampling
  followed by a 1x1 convolution that halves the channels (fewer parameters, no checkerboard).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_range

# the size arithmetic (which tiles are legal, what comes out) has its own module; its names are
# part of this module's public face too: ``from unet_lesson.model import output_size`` works
from .sizes import (  # noqa: F401
    PADDINGS,
    UP_MODES,
    Stage,
    check_input_size,
    feature_shapes,
    feature_sizes,
    input_size_for_output,
    is_legal_size,
    legal_sizes_near,
    output_size,
)

# --------------------------------------------------------------------------------------------
# The building blocks
# --------------------------------------------------------------------------------------------


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (optionally batch norm before the ReLU).

    ``valid`` padding loses one pixel at each border per convolution: (B, C, 572, 572) ->
    (B, out, 568, 568).

    Built in notebook 02.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False):
        pad = 0 if padding == "valid" else 1
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            # with batch norm the convolution's bias is redundant (the norm's shift replaces it)
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """One step down the contracting path: 2x2 max-pool (stride 2), then a double convolution.

    (B, C, 568, 568) -> pool -> (B, C, 284, 284) -> (B, 2C, 280, 280) for valid padding.

    Built in notebook 03.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False):
        super().__init__(
            nn.MaxPool2d(kernel_size=2, stride=2),
            DoubleConv(in_channels, out_channels, padding, batch_norm),
        )


class Bottleneck(nn.Sequential):
    """The lowest step: pool, double convolution to 1024 channels, and the paper's drop-out.

    "Drop-out layers at the end of the contracting path perform further implicit data
    augmentation" (section 3.1). (B, 512, 64, 64) -> (B, 1024, 28, 28) for the 572 tile.

    Built in notebook 04.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False, dropout: float = 0.5):
        super().__init__(
            nn.MaxPool2d(kernel_size=2, stride=2),
            DoubleConv(in_channels, out_channels, padding, batch_norm),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )


def center_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Cut the central ``height x width`` window out of a (B, C, H, W) feature map.

    Only the last two axes are cut, so it serves numpy arrays of any rank as well (the tile
    dataset crops its labels to the network's output size with it).

    Built in notebook 05.
    """
    h, w = features.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop a {h}x{w} map to {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return features[..., top : top + height, left : left + width]


class Up(nn.Module):
    """One step up the expansive path: up-convolution, crop-and-concatenate, double convolution.

    (B, 1024, 28, 28) -> up-conv -> (B, 512, 56, 56); the skip (B, 512, 64, 64) is cropped to
    56x56; concatenated (B, 1024, 56, 56) -> double conv -> (B, 512, 52, 52).

    Built in notebook 05.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False, up_mode: str = "transpose"):
        super().__init__()
        check_choice("up_mode", up_mode, UP_MODES)
        if up_mode == "transpose":
            # the paper's 2x2 up-convolution: doubles the size, halves the channels
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
            )
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C/2, 2H, 2W)
        skip = center_crop(skip, *x.shape[-2:])  # the copy from the contracting path
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C/2 + C_skip, 2H, 2W) -> conv


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


ARCHS = ("unet", "unet++", "attention_unet", "ternausnet11")


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a :class:`UNet`: the one description of the network.

    :class:`UNet` takes it (or its fields as keywords), checkpoints save it, and the training
    configuration (:class:`unet_lesson.config.TrainConfig`) holds one. The defaults are the
    paper's network. Values are checked here, where they enter, with errors naming the field.

    Used in notebook 10.
    """

    in_channels: int = 1  # 1 for the paper's grey images, 3 for RGB
    num_classes: int = 2  # output maps; softmax over them gives class probabilities
    base_channels: int = 64  # channels after the first double conv; doubled at each step down
    depth: int = 4  # number of 2x2 max-pools (4 in the paper)
    padding: str = "valid"  # "valid" as in the paper, or "same"
    batch_norm: bool = False  # not in the paper
    up_mode: str = "transpose"  # "transpose" (paper's up-convolution) or "bilinear"
    dropout: float = 0.5  # drop-out at the end of the contracting path (rate not in the paper)
    # beyond the U-Net (unet_lesson/variants.py, notebook 12): which network, and its options
    arch: str = "unet"  # "unet", or "unet++", "attention_unet", "ternausnet11"
    deep_supervision: bool = False  # unet++ only: a 1x1 head on every top node X^{0,j}
    pretrained: bool = False  # ternausnet11 only: the encoder starts from VGG11 ImageNet weights

    def __post_init__(self):
        check_choice("padding", self.padding, PADDINGS)
        check_choice("up_mode", self.up_mode, UP_MODES)
        for name in ("in_channels", "num_classes", "base_channels", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers become plain ints
        if not isinstance(self.batch_norm, bool | np.bool_):
            raise TypeError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        object.__setattr__(self, "batch_norm", bool(self.batch_norm))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise TypeError(f"dropout must be a number, got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))
        check_choice("arch", self.arch, ARCHS)
        for name in ("deep_supervision", "pretrained"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.arch == "unet" and (self.deep_supervision or self.pretrained):
            raise ValueError("deep_supervision (arch='unet++') and pretrained "
                             "(arch='ternausnet11') are options of the variants; the U-Net has "
                             "one head and no pre-trained encoder")
        if self.arch != "unet":
            from .variants import check_variant  # the variants' own rules live beside them

            check_variant(self)
        check_range("in_channels", self.in_channels, 1)
        check_range("num_classes", self.num_classes, 1)
        check_range("base_channels", self.base_channels, 1)
        check_range("depth", self.depth, 1, 8)  # 2**8 = 256: deeper needs huge tiles
        check_range("dropout", self.dropout, 0.0, 1.0, high_open=True)


def _add_unet_blocks(net: nn.Module, c: UNetConfig) -> list[int]:
    """Give ``net`` the U-Net's blocks for ``c`` (``inc``, ``downs``, ``bottleneck``, ``ups``,
    ``head``), in this order, so that seeded networks built with them get the same weights;
    return the widths of the levels (64, 128, 256, 512, 1024 in the paper). The U-Net and
    the Attention U-Net (:mod:`unet_lesson.variants`) are built with it."""
    widths = [c.base_channels * 2**i for i in range(c.depth + 1)]  # 64, 128, 256, 512, 1024
    # contracting path: a double conv at full size, then depth-1 steps down
    net.inc = DoubleConv(c.in_channels, widths[0], c.padding, c.batch_norm)
    net.downs = nn.ModuleList(
        Down(widths[i], widths[i + 1], c.padding, c.batch_norm) for i in range(c.depth - 1)
    )
    net.bottleneck = Bottleneck(widths[-2], widths[-1], c.padding, c.batch_norm, c.dropout)
    # expansive path: depth steps up, each halving the channels
    net.ups = nn.ModuleList(
        Up(widths[i + 1], widths[i], c.padding, c.batch_norm, c.up_mode)
        for i in reversed(range(c.depth))
    )
    net.head = nn.Conv2d(widths[0], c.num_classes, kernel_size=1)  # the final 1x1 conv
    return widths


class UNet(nn.Module):
    """The U-Net. Defaults are the paper's network (1 input channel, 2 classes, valid padding).

    Args (the fields of :class:`UNetConfig`; pass a config, or the fields as keywords):
        in_channels: input channels (1 in the paper, 3 for RGB).
        num_classes: output maps (2 in the paper: background and cell).
        base_channels: channels of the top level (64 in the paper), doubled at each level.
        depth: number of 2x2 max-pools (4 in the paper).
        padding: ``"valid"`` (the paper: every 3x3 convolution loses a pixel at each border;
            only some tile sizes are legal, see :func:`unet_lesson.sizes.legal_sizes_near`) or
            ``"same"`` (any size: inputs are mirror-padded to a multiple of ``2**depth``).
        batch_norm: batch normalisation after every 3x3 convolution (not in the paper).
        up_mode: ``"transpose"`` (the paper's 2x2 up-convolution) or ``"bilinear"``.
        dropout: drop-out rate at the end of the contracting path (0 turns it off).

    ``UNet(in_channels=1, num_classes=2)`` is the paper's network: 572x572 in, 388x388 out,
    23 convolution layers (31,030,658 parameters, computed: the paper gives no count).

    Built in notebook 06, from the blocks of the lessons before it.
    """

    def __init__(self, config: UNetConfig | None = None, /, **fields):
        super().__init__()
        if config is not None and fields:
            raise TypeError("give a UNetConfig or keyword fields, not both")
        config = config if config is not None else UNetConfig(**fields)
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
        if config.arch != "unet":
            raise ValueError(f"arch={config.arch!r} is not the U-Net: build it with "
                             f"unet_lesson.model.build_model(config)")
        self.config = config
        _add_unet_blocks(self, config)
        self.apply(init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes, H', W').

        ``valid``: H' = output_size(H) (572 -> 388); illegal sizes raise a ``ValueError``.
        ``same``: H' = H; sizes that are not multiples of 2**depth are mirror-padded and the
        output cropped back.
        """
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected a (batch, {self.config.in_channels}, height, width) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        check_input_size(height, width, self.config.depth, self.config.padding)
        if self.config.padding == "same":
            x = _pad_to_multiple(x, 2**self.config.depth)

        skips = [self.inc(x)]  # (B, 64, 568, 568)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, 128, 280, 280) (B, 256, 136, 136) (B, 512, 64, 64)
        x = self.bottleneck(skips[-1])  # (B, 1024, 28, 28)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            # (B, 512, 52, 52) -> (B, 256, 100, 100) -> (B, 128, 196, 196) -> (B, 64, 388, 388)
            x = up(x, skip)
        logits = self.head(x)  # (B, num_classes, 388, 388)
        if self.config.padding == "same":
            logits = logits[..., :height, :width]
        return logits

    # size arithmetic for this network's depth and padding
    def output_size(self, input_size: int) -> int:
        """Output size for a square tile of ``input_size`` pixels."""
        return output_size(input_size, self.config.depth, self.config.padding)

    def legal_sizes_near(self, input_size: int) -> tuple[int | None, int]:
        """Nearest legal tile sizes below and above ``input_size``."""
        return legal_sizes_near(input_size, self.config.depth, self.config.padding)

    def input_size_for_output(self, out_size: int) -> int:
        """Smallest legal tile whose output covers ``out_size`` pixels."""
        return input_size_for_output(out_size, self.config.depth, self.config.padding)


def build_model(config: UNetConfig) -> nn.Module:
    """The network a :class:`UNetConfig` describes: :class:`UNet`, or for another ``arch`` one
    of the variants of :mod:`unet_lesson.variants` (UNet++, Attention U-Net, TernausNet11).

    Not built in a notebook: training and checkpoints build every network through it.
    """
    if config.arch == "unet":
        return UNet(config)
    from .variants import build_variant  # the variants build on this module's blocks

    return build_variant(config)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad the bottom and right of (B, C, H, W) up to multiples of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    # reflection needs the pad to be smaller than the image; tiny images repeat the edge instead
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def init_he(module: nn.Module) -> None:
    r"""He initialisation as in the paper (section 3): weights from a Gaussian with standard
    deviation :math:`\sqrt{2/N}`, N the number of incoming nodes of one neuron (for a 3x3
    convolution with 64 input channels, N = 9 * 64 = 576). Biases start at zero.

    For a 2x2 up-convolution with stride 2 each output pixel sees exactly one kernel position
    of every input channel, so N is the number of input channels.

    Built in notebook 02.
    """
    if isinstance(module, nn.ConvTranspose2d):
        fan_in = module.in_channels
    elif isinstance(module, nn.Conv2d):
        fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
    else:
        return
    nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters.

    Used in notebook 00.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameters_per_block(net: UNet) -> dict[str, int]:
    """Trainable parameters of each block of a :class:`UNet`, in the order data flows.

    Keys are the attribute names: ``inc``, ``downs.0`` ... ``downs.2``, ``bottleneck``,
    ``ups.0`` (the lowest up step) ... ``ups.3``, ``head``. The values sum to
    :func:`count_parameters` (31,030,658 for the paper's network).

    Used in notebook 04.
    """
    blocks: dict[str, int] = {}
    for name, child in net.named_children():
        if isinstance(child, nn.ModuleList):
            for i, block in enumerate(child):
                blocks[f"{name}.{i}"] = count_parameters(block)
        else:
            blocks[name] = count_parameters(child)
    return blocks


def conv_layers(module: nn.Module) -> list[nn.Module]:
    """All convolution layers (3x3, 2x2 up-convolutions and 1x1), in order.

    Not built in a notebook: the tests.
    """
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
