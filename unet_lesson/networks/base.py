"""What every network of the course shares: its config, a check of the input, the padding.

Not built in a notebook: :class:`~unet_lesson.networks.UNet` and the networks of notebook 12
derive from :class:`Network`.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from ..sizes import check_input_size
from .blocks import pad_to_multiple
from .config import UNetConfig

# the constructor keywords every network shares with the U-Net
UNET_FIELDS = ("in_channels", "num_classes", "base_channels", "depth", "padding",
               "batch_norm", "up_mode", "dropout")


class Network(nn.Module):
    """A network described by a :class:`~unet_lesson.networks.UNetConfig` (``.config``) that
    maps (B, in_channels, H, W) to logits (B, num_classes, H', W').

    Not built in a notebook: the base of every network.
    """

    arch: str = "unet"  # the config's ``arch`` this class builds
    options: tuple[str, ...] = ()  # its constructor keywords beyond the U-Net's
    config: UNetConfig

    @classmethod
    def from_config(cls, config: UNetConfig | dict) -> nn.Module:
        """Rebuild from a ``UNetConfig`` (or its dict, as a checkpoint saves it)."""
        config = config if isinstance(config, UNetConfig) else UNetConfig(**config)
        if config.arch != cls.arch:
            raise ValueError(f"this config is for arch={config.arch!r}, not {cls.arch!r}; "
                             f"build it with unet_lesson.networks.build_network(config)")
        keywords = UNET_FIELDS + cls.options
        return cls(**{k: v for k, v in asdict(config).items() if k in keywords})

    def prepare_input(self, x: torch.Tensor, multiple: int | None = None
                      ) -> tuple[torch.Tensor, int, int]:
        """Check that ``x`` is (B, in_channels, H, W) of a size the network takes; with
        same padding, mirror-pad it to a multiple of ``multiple`` (default ``2**depth``).
        Returns the input to compute on and the height and width to crop the output to."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"expected a (batch, {c.in_channels}, height, width) tensor, "
                             f"got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        check_input_size(height, width, c.depth, c.padding)
        if c.padding == "same":
            x = pad_to_multiple(x, multiple or 2**c.depth)
        return x, height, width
