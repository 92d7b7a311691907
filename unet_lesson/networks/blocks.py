r"""The U-Net's building blocks, one class per idea of the paper (Figure 1, section 2).

Read it top to bottom beside Figure 1:

* :func:`conv_relu` - one 3x3 convolution and its ReLU (batch norm between them if asked);
* :class:`DoubleConv` - two of them (the blue arrows);
* :class:`Down` - a 2x2 max-pool with stride 2, then a double convolution that doubles the
  channels (red arrow, then blue arrows): one step of the *contracting path*;
* :class:`Bottleneck` - the lowest step with the paper's drop-out "at the end of the
  contracting path";
* :func:`center_crop` and :class:`Up` - one step of the *expansive path*: a 2x2
  "up-convolution" (:func:`up_convolution`) that halves the channels (green arrow), a centre
  crop of the matching contracting feature map (needed "due to the loss of border pixels in
  every convolution"), concatenation (grey arrow) and a double convolution;
* :func:`init_he` - the paper's initialisation (section 3).

Where we depart from the paper, it is an option: ``padding="same"`` pads every 3x3
convolution; ``batch_norm=True`` adds batch normalisation after each 3x3 convolution (Ioffe &
Szegedy 2015); ``up_mode="bilinear"`` replaces the learned 2x2 up-convolution by bilinear
up-sampling and a 1x1 convolution (fewer parameters, no checkerboard).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice
from ..sizes import UP_MODES


def conv_relu(in_channels: int, out_channels: int, padding: str = "valid",
              batch_norm: bool = False) -> list[nn.Module]:
    """A 3x3 convolution and a ReLU, with batch norm between them if asked: three layers or
    two. ``valid`` loses one pixel at each border; ``same`` pads by one.

    Not built in a notebook: :class:`DoubleConv` and TernausNet's decoder call it.
    """
    # with batch norm the convolution's bias is redundant (the norm's shift replaces it)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3,
                                         padding=0 if padding == "valid" else 1,
                                         bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return [*layers, nn.ReLU(inplace=True)]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (optionally batch norm before the ReLU).

    ``valid`` padding loses one pixel at each border per convolution: (B, C, 572, 572) ->
    (B, out, 568, 568).

    Built in notebook 02; used in notebooks 03, 04, 05, 06 and 12.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False):
        super().__init__(*conv_relu(in_channels, out_channels, padding, batch_norm),
                         *conv_relu(out_channels, out_channels, padding, batch_norm))


class Down(nn.Sequential):
    """One step down the contracting path: 2x2 max-pool (stride 2), then a double convolution.

    (B, C, 568, 568) -> pool -> (B, C, 284, 284) -> (B, 2C, 280, 280) for valid padding.

    Built in notebook 03; used in notebooks 06 and 12.
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

    Built in notebook 04; used in notebooks 06 and 12.
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


def up_convolution(in_channels: int, out_channels: int, up_mode: str = "transpose"
                   ) -> nn.Module:
    """Double the size: the paper's 2x2 up-convolution (stride 2), or bilinear up-sampling
    followed by a 1x1 convolution (``up_mode="bilinear"``, not in the paper).

    Not built in a notebook: :class:`Up` and UNet++ call it.
    """
    check_choice("up_mode", up_mode, UP_MODES)
    if up_mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


class Up(nn.Module):
    """One step up the expansive path: up-convolution, crop-and-concatenate, double convolution.

    (B, 1024, 28, 28) -> up-conv -> (B, 512, 56, 56); the skip (B, 512, 64, 64) is cropped to
    56x56; concatenated (B, 1024, 56, 56) -> double conv -> (B, 512, 52, 52).

    Built in notebook 05; used in notebook 06.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "valid",
                 batch_norm: bool = False, up_mode: str = "transpose"):
        super().__init__()
        # doubles the size, halves the channels
        self.up = up_convolution(in_channels, in_channels // 2, up_mode)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C/2, 2H, 2W)
        skip = center_crop(skip, *x.shape[-2:])  # the copy from the contracting path
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C/2 + C_skip, 2H, 2W) -> conv


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad the bottom and right of (B, C, H, W) up to multiples of ``multiple`` (what
    a same-padding network does to inputs of any size; the output is cropped back).

    Not built in a notebook: the networks' ``forward`` calls it.
    """
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

    Built in notebook 02; used in notebooks 03, 04, 05, 06 and 12.
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

    Used in notebooks 00, 04, 05, 06 and 12.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
