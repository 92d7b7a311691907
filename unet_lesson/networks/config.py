"""The one description of a network: :class:`UNetConfig`, with every architecture's rules.

The U-Net's fields (the paper's network by default) and the three fields that select and
tune the networks of notebook 12 (``arch``, ``deep_supervision``, ``pretrained``). Values are
checked where they enter, each error naming the field; the rules of each architecture live
here too, beside the fields they constrain.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..checks import check_choice, check_range
from ..sizes import PADDINGS, UP_MODES

ARCHS = ("unet", "unet++", "attention_unet", "ternausnet11")

# why each network beyond the U-Net takes padding="same" only (the error message quotes it)
SAME_PADDING_ONLY = {
    "unet++": "a node X^{i,j} concatenates maps of level i made after different numbers of "
              "convolutions; unpadded, each would have another size and every node would need "
              "its own crop (the paper pads)",
    "attention_unet": "the gate's stride-2 W_x must bring the skip exactly onto the coarser "
                      "gating map's grid, which holds only when no convolution loses border "
                      "pixels (the paper pads)",
    "ternausnet11": "VGG11's convolutions were trained with padding 1, and its pre-trained "
                    "weights expect it",
}


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a network: the U-Net's fields and the architecture's.

    :class:`~unet_lesson.networks.UNet` takes it (or its fields as keywords), checkpoints save
    it, and the training configuration (:class:`unet_lesson.config.TrainConfig`) holds one.
    The defaults are the paper's network.

    Not built in a notebook: every network is built from one.
    """

    in_channels: int = 1  # 1 for the paper's grey images, 3 for RGB
    num_classes: int = 2  # output maps; softmax over them gives class probabilities
    base_channels: int = 64  # channels after the first double conv; doubled at each step down
    depth: int = 4  # number of 2x2 max-pools (4 in the paper)
    padding: str = "valid"  # "valid" as in the paper, or "same"
    batch_norm: bool = False  # not in the paper
    up_mode: str = "transpose"  # "transpose" (paper's up-convolution) or "bilinear"
    dropout: float = 0.5  # drop-out at the end of the contracting path (rate not in the paper)
    # beyond the U-Net (notebook 12): which network, and its options
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
        for name in ("batch_norm", "deep_supervision", "pretrained"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise TypeError(f"dropout must be a number, got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))
        check_choice("arch", self.arch, ARCHS)
        _check_arch_rules(self)
        check_range("in_channels", self.in_channels, 1)
        check_range("num_classes", self.num_classes, 1)
        check_range("base_channels", self.base_channels, 1)
        check_range("depth", self.depth, 1, 8)  # 2**8 = 256: deeper needs huge tiles
        check_range("dropout", self.dropout, 0.0, 1.0, high_open=True)


def _check_arch_rules(config: UNetConfig) -> None:
    """Each architecture's own rules: same padding beyond the U-Net, each option on its own
    network, TernausNet11's fixed input and depth. Raises ``ValueError`` naming the field."""
    if config.deep_supervision and config.arch != "unet++":
        raise ValueError(f"deep_supervision is a UNet++ option (arch='unet++'); {config.arch} "
                         f"has one head")
    if config.pretrained and config.arch != "ternausnet11":
        raise ValueError(f"pretrained is a TernausNet11 option (arch='ternausnet11'); "
                         f"{config.arch} has no pre-trained encoder")
    if config.arch == "unet":
        return
    if config.padding != "same":
        raise ValueError(
            f"padding must be 'same' for {config.arch}, got {config.padding!r}: "
            f"{SAME_PADDING_ONLY[config.arch]}. Use arch='unet' for the paper's valid padding."
        )
    if config.arch == "ternausnet11":
        if config.in_channels != 3:
            raise ValueError(
                f"in_channels must be 3 for ternausnet11, got {config.in_channels}: its "
                f"encoder is VGG11, whose first convolution takes RGB images; repeat a grey "
                f"channel three times"
            )
        if config.depth != 5:
            raise ValueError(f"depth must be 5 for ternausnet11 (VGG11 has five "
                             f"max-pools), got {config.depth}")
