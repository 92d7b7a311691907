r"""Attention U-Net (Oktay, Schlemper, Le Folgoc et al., MIDL 2018, arXiv:1804.03999).

An additive attention gate (:class:`AttentionGate`) scales every skip connection by
coefficients in [0, 1] computed from the skip and the coarser decoder map
(:class:`AttentionUNet`). ``padding="same"`` only, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Network
from .blocks import init_he
from .config import UNetConfig
from .unet import add_unet_blocks


class AttentionGate(nn.Module):
    r"""The additive attention gate of Oktay et al. 2018 (section 2, eq. 1-2, Figure 2).

    .. math::

        q_{att} = \psi^T\,\sigma_1\!\left(W_x^T x + W_g^T g + b_g\right) + b_\psi, \qquad
        \alpha = \sigma_2(q_{att})

    with :math:`\sigma_1` the ReLU and :math:`\sigma_2` the sigmoid. The skip x (B, F_l, H, W)
    goes through :math:`W_x`, a 2x2 convolution with stride 2 and no bias, which brings it onto
    the grid of the gating signal g (B, F_g, H/2, W/2) from the coarser level; :math:`W_g` and
    :math:`\psi` are 1x1 convolutions (their biases are :math:`b_g` and :math:`b_\psi`). The
    coefficients :math:`\alpha` (B, 1, H/2, W/2) are resampled bilinearly to (B, 1, H, W) and
    scale every channel of x. Returns the gated skip and :math:`\alpha`, in [0, 1].

    The paper draws :math:`W_x` as a 1x1 convolution and leaves the change of grid to its
    resampler; we follow the official code, whose :math:`W_x` is that strided 2x2 convolution.

    As the official code's ``GridAttentionBlock2D`` (ozan-oktay/Attention-Gated-Networks,
    ``models/layers/grid_attention_layer.py``, mode "concatenation": ``theta`` = W_x, ``phi``
    = W_g, ``psi``) but without its output transform ``W`` (a 1x1 convolution and batch norm
    after the multiplication), which is not in the paper's equations or Figure 2.

    Built in notebook 12.
    """

    def __init__(self, skip_channels: int, gating_channels: int, inter_channels: int):
        super().__init__()
        self.w_x = nn.Conv2d(skip_channels, inter_channels, kernel_size=2, stride=2, bias=False)
        self.w_g = nn.Conv2d(gating_channels, inter_channels, kernel_size=1)  # bias: b_g
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1)  # bias: b_psi

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.relu(self.w_x(x) + self.w_g(g))  # (B, F_int, H/2, W/2): sigma_1
        alpha = torch.sigmoid(self.psi(q))  # (B, 1, H/2, W/2): sigma_2 of q_att
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * alpha, alpha  # (B, F_l, H, W), (B, 1, H, W)


class AttentionUNet(Network):
    """Attention U-Net (Oktay et al. 2018, arXiv:1804.03999, Figure 1).

    Our U-Net (the same blocks and attribute names, so a U-Net's weights load into it with
    ``strict=False``) with an :class:`AttentionGate` on every skip connection: before the
    expansive path concatenates the copy of level l, the gate scales it by coefficients
    computed from the copy and the gating signal, the coarser map the decoder holds at that
    moment (the bottleneck's output for the lowest skip, then each up step's output).
    F_int = F_l channels inside the gate, as in the official networks.

    After each forward pass ``attention_maps`` holds the coefficients (detached, for plotting),
    one (B, 1, ceil(H/2^l), ceil(W/2^l)) map per skip level l, in the order the decoder meets
    them: coarse to fine, ``attention_maps[0]`` at level depth-1, ``attention_maps[-1]`` at
    level 0 (full size). Each is cropped to the input's area like the output.

    Args: those of :class:`~unet_lesson.networks.UNet` (``padding="same"`` only). Parameters:
    a U-Net's plus, per skip level l, 4*F_l*F_l (W_x) + F_{l+1}*F_l + F_l (W_g) + F_l + 1 (psi).

    Where we depart from the official code (ozan-oktay/Attention-Gated-Networks,
    ``models/networks/unet_CT_single_att_dsv_3D.py``, 3D): 2D; the U-Net's up-convolution
    rather than trilinear up-sampling; every skip gated (the code leaves the finest ungated);
    the gating signal is the decoder map itself (the code passes the bottleneck through one
    more 1x1 convolution, batch norm and ReLU first); no output transform in the gate and no
    extra 1x1 "combine_gates" convolution after it; no deep supervision; batch norm optional.

    Used in notebook 12.
    """

    arch = "attention_unet"

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64,
                 depth: int = 4, padding: str = "same", batch_norm: bool = False,
                 up_mode: str = "transpose", dropout: float = 0.5):
        super().__init__()
        self.config = c = UNetConfig(in_channels, num_classes, base_channels, depth, padding,
                                     batch_norm, up_mode, dropout, arch=self.arch)
        widths = add_unet_blocks(self, c)  # the U-Net, block for block: 64, 128, ... 1024
        # one gate per skip, in the decoder's order: level depth-1 first
        self.gates = nn.ModuleList(
            AttentionGate(widths[i], widths[i + 1], widths[i]) for i in reversed(range(c.depth))
        )
        self.attention_maps: list[torch.Tensor] = []
        self.apply(init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes, H, W); fills ``attention_maps``."""
        x, height, width = self.prepare_input(x)
        skips = [self.inc(x)]  # (B, 64, H, W)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, 128, H/2, W/2) ... (B, 512, H/8, W/8)
        x = self.bottleneck(skips[-1])  # (B, 1024, H/16, W/16)
        levels = reversed(range(self.config.depth))  # depth-1, ..., 0: coarse to fine
        self.attention_maps = []
        for level, gate, up in zip(levels, self.gates, self.ups, strict=True):
            # gate the copy of level l with the coarser map x, (B, 2F_l, H/2^(l+1), W/2^(l+1))
            skip, alpha = gate(skips[level], x)  # (B, F_l, H/2^l, W/2^l), (B, 1, H/2^l, W/2^l)
            crop = math.ceil(height / 2**level), math.ceil(width / 2**level)  # the input's area
            self.attention_maps.append(alpha.detach()[..., : crop[0], : crop[1]])
            x = up(x, skip)  # (B, F_l, H/2^l, W/2^l)
        return self.head(x)[..., :height, :width]  # (B, num_classes, H, W)


