"""The networks: the U-Net, block by block, and three of its descendants (notebook 12).

Read the modules in this order:

* :mod:`.config` - :class:`UNetConfig`, the one description of every network and its rules;
* :mod:`.blocks` - the paper's blocks (double convolution, down, bottleneck, up) and He
  initialisation;
* :mod:`.unet` - :class:`UNet`, Figure 1 assembled;
* :mod:`.unetpp`, :mod:`.attention`, :mod:`.ternausnet` - UNet++, Attention U-Net,
  TernausNet11, built from the same blocks;
* :mod:`.build` - :func:`build_network`: any of them from its config.
"""

from .attention import AttentionGate, AttentionUNet
from .blocks import (
    Bottleneck,
    DoubleConv,
    Down,
    Up,
    center_crop,
    conv_relu,
    count_parameters,
    init_he,
    up_convolution,
)
from .build import NETWORKS, build_network
from .config import ARCHS, SAME_PADDING_ONLY, UNetConfig
from .ternausnet import VGG11_LAYERS, DecoderBlock, TernausNet11, VGG11Encoder, vgg11_state_dict
from .unet import UNet, parameters_per_block
from .unetpp import NestedNode, UNetPlusPlus, deep_supervision_loss

__all__ = [
    "ARCHS", "SAME_PADDING_ONLY", "UNetConfig",
    "Bottleneck", "DoubleConv", "Down", "Up", "center_crop", "conv_relu", "count_parameters",
    "init_he", "up_convolution",
    "UNet", "parameters_per_block",
    "NestedNode", "UNetPlusPlus", "deep_supervision_loss",
    "AttentionGate", "AttentionUNet",
    "VGG11_LAYERS", "DecoderBlock", "TernausNet11", "VGG11Encoder", "vgg11_state_dict",
    "NETWORKS", "build_network",
]
