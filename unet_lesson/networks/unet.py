r"""The U-Net of Ronneberger, Fischer & Brox (MICCAI 2015, arXiv:1505.04597).

The network of Figure 1, assembled from the blocks of :mod:`unet_lesson.networks.blocks`:
a double convolution at full size, ``depth - 1`` steps down, the bottleneck, ``depth`` steps
up, and the final 1x1 convolution to ``num_classes`` maps.

Paper configuration: ``UNet(in_channels=1, num_classes=2)``: a 572x572 tile in, 388x388 out,
23 convolution layers, He initialisation (section 3). It has 31,030,658 parameters: computed
from Figure 1's layers (the paper does not give a count). The size arithmetic (legal tiles,
the output size of a tile, Figure 1's sizes) lives in :mod:`unet_lesson.sizes`.

With ``padding="same"`` (not in the paper) inputs whose size is not a multiple of
``2**depth`` are mirror-padded up to the next multiple and the output is cropped back, so
any size works.
"""

from __future__ import annotations

import torch
from torch import nn

from ..sizes import input_size_for_output, legal_sizes_near, output_size
from .base import Network
from .blocks import Bottleneck, DoubleConv, Down, Up, count_parameters, init_he
from .config import UNetConfig


def add_unet_blocks(net: nn.Module, c: UNetConfig) -> list[int]:
    """Give ``net`` the U-Net's blocks for ``c`` (``inc``, ``downs``, ``bottleneck``, ``ups``,
    ``head``), in this order, so that seeded networks built with them get the same weights;
    return the widths of the levels (64, 128, 256, 512, 1024 in the paper).

    Not built in a notebook: :class:`UNet` and the Attention U-Net are built with it.
    """
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


class UNet(Network):
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

    Built in notebook 06; used in notebooks 00, 04 and 05.
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
                             f"unet_lesson.networks.build_network(config)")
        self.config = config
        add_unet_blocks(self, config)
        self.apply(init_he)

    @classmethod
    def from_config(cls, config: UNetConfig | dict) -> UNet:
        return cls(config if isinstance(config, UNetConfig) else UNetConfig(**config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes, H', W').

        ``valid``: H' = output_size(H) (572 -> 388); illegal sizes raise a ``ValueError``.
        ``same``: H' = H; sizes that are not multiples of 2**depth are mirror-padded and the
        output cropped back.
        """
        x, height, width = self.prepare_input(x)
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


def parameters_per_block(net: UNet) -> dict[str, int]:
    """Trainable parameters of each block of a :class:`UNet`, in the order data flows.

    Keys are the attribute names: ``inc``, ``downs.0`` ... ``downs.2``, ``bottleneck``,
    ``ups.0`` (the lowest up step) ... ``ups.3``, ``head``. The values sum to
    :func:`~unet_lesson.networks.count_parameters` (31,030,658 for the paper's network).

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
