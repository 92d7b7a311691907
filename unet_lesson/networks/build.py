"""Any network of the course from its :class:`~unet_lesson.networks.UNetConfig`.

Training, checkpoints and the comparison of notebook 12 build every network through
:func:`build_network`, so a config (or its dict, as a checkpoint saves it) is all a network
needs to be rebuilt.
"""

from __future__ import annotations

from torch import nn

from .attention import AttentionUNet
from .base import Network
from .config import ARCHS, UNetConfig
from .ternausnet import TernausNet11
from .unet import UNet
from .unetpp import UNetPlusPlus

NETWORKS: dict[str, type[Network]] = {
    "unet": UNet,
    "unet++": UNetPlusPlus,
    "attention_unet": AttentionUNet,
    "ternausnet11": TernausNet11,
}
assert tuple(NETWORKS) == ARCHS


def build_network(config: UNetConfig | dict) -> nn.Module:
    """The network a :class:`~unet_lesson.networks.UNetConfig` (or its dict) describes:
    :class:`~unet_lesson.networks.UNet` for ``arch="unet"``, else UNet++, the Attention U-Net
    or TernausNet11. TernausNet11's ``pretrained`` flag is honoured (the VGG11 weights are
    fetched again); when a checkpoint's weights follow, they replace them anyway.

    Used in notebooks 10 and 12.
    """
    config = config if isinstance(config, UNetConfig) else UNetConfig(**config)
    return NETWORKS[config.arch].from_config(config)
