r"""Beyond the U-Net: three descendants, one class per idea, built from the U-Net's own blocks.

Read it beside the papers; each network plugs into the course's training, prediction and
checkpoints like :class:`~unet_lesson.model.UNet` (same constructor keywords, a ``.config``,
``forward`` from (B, C, H, W) of any size to logits (B, num_classes, H, W)).

* **UNet++** (Zhou, Rahman Siddiquee, Tajbakhsh & Liang, DLMIA 2018, arXiv:1807.10165; the
  redesign in IEEE TMI 2019, arXiv:1912.05074). The plain skip connection is replaced by a
  nested, dense pathway of nodes :math:`X^{i,j}` (:class:`NestedNode`), deep supervision puts
  a 1x1 head on every top node :math:`X^{0,j}`, and a network trained so can be *pruned*: at
  level :math:`l` only the nodes with :math:`i + j \le l` are needed (:class:`UNetPlusPlus`).
* **Attention U-Net** (Oktay, Schlemper, Le Folgoc et al., MIDL 2018, arXiv:1804.03999).
  An additive attention gate (:class:`AttentionGate`) scales every skip connection by
  coefficients in [0, 1] computed from the skip and the coarser decoder map
  (:class:`AttentionUNet`).
* **TernausNet** (Iglovikov & Shvets 2018, arXiv:1801.05746). The contracting path is VGG11's
  convolutional part (:class:`VGG11Encoder`), which can start from ImageNet weights; the
  decoder uses transposed convolutions (:class:`DecoderBlock`, :class:`TernausNet11`).

What the three share with the course's U-Net, and where they depart from it:

* ``padding="same"`` only (every paper pads its 3x3 convolutions; the reason for each network
  is in :data:`SAME_PADDING_ONLY`). Inputs whose size is not a multiple of ``2**depth`` are
  mirror-padded and the output cropped back, exactly as ``UNet`` does.
* He initialisation (:func:`~unet_lesson.model.init_he`) everywhere except pre-trained weights.
* Their configuration is the U-Net's :class:`~unet_lesson.model.UNetConfig` (the one
  description of a network), whose ``arch``, ``deep_supervision`` and ``pretrained`` fields
  select them; :func:`~unet_lesson.model.build_model` builds any of them.

Built in notebook 12 (beyond the U-Net).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice
from .model import (
    Bottleneck,
    DoubleConv,
    Down,
    UNetConfig,
    _add_unet_blocks,
    _pad_to_multiple,
    init_he,
)
from .sizes import UP_MODES

# --------------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------------


# why each variant takes padding="same" only (the error message quotes it)
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

# the constructor keywords every variant shares with UNet
_UNET_FIELDS = ("in_channels", "num_classes", "base_channels", "depth", "padding",
                "batch_norm", "up_mode", "dropout")


def check_variant(config: UNetConfig) -> None:
    """The variants' own rules for a :class:`~unet_lesson.model.UNetConfig` (which calls it
    for every ``arch`` but ``"unet"``): same padding, each option on its own network,
    TernausNet11's fixed input and depth. Raises ``ValueError`` naming the field.

    Not built in a notebook: ``UNetConfig`` checks every variant's configuration with it.
    """
    if config.padding != "same":
        raise ValueError(
            f"padding must be 'same' for {config.arch}, got {config.padding!r}: "
            f"{SAME_PADDING_ONLY[config.arch]}. Use arch='unet' for the paper's valid padding."
        )
    if config.deep_supervision and config.arch != "unet++":
        raise ValueError(f"deep_supervision is a UNet++ option; {config.arch} has one head")
    if config.pretrained and config.arch != "ternausnet11":
        raise ValueError(f"pretrained is a TernausNet11 option; {config.arch} has no "
                         f"pre-trained encoder (use arch='ternausnet11')")
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


def build_variant(config: UNetConfig | dict) -> nn.Module:
    """Rebuild a variant from a :class:`~unet_lesson.model.UNetConfig` or its dict (as saved in
    a checkpoint); :func:`unet_lesson.model.build_model` calls it for every ``arch`` but
    ``"unet"``.

    The pre-trained flag is honoured (TernausNet11 fetches the VGG11 weights again); when a
    checkpoint's weights follow, they replace them anyway.

    Not built in a notebook: :func:`~unet_lesson.model.build_model` calls it.
    """
    config = config if isinstance(config, UNetConfig) else UNetConfig(**config)
    if config.arch not in VARIANTS:
        raise ValueError(f"arch {config.arch!r} is not a variant: one of {tuple(VARIANTS)}")
    return VARIANTS[config.arch].from_config(config)


class _Variant(nn.Module):
    """What the three networks share: the config, the input check, the padding and the crop."""

    arch: str  # this class's name in VARIANTS
    options: tuple[str, ...] = ()  # its keywords beyond the U-Net's
    config: UNetConfig

    @classmethod
    def from_config(cls, config: UNetConfig | dict) -> nn.Module:
        """Rebuild from a ``UNetConfig`` (or its dict) whose ``arch`` is this class's."""
        config = config if isinstance(config, UNetConfig) else UNetConfig(**config)
        if config.arch != cls.arch:
            raise ValueError(f"this config is for arch={config.arch!r}, not {cls.arch!r}; "
                             f"use build_variant(config)")
        keywords = _UNET_FIELDS + cls.options  # the constructor's keywords
        return cls(**{k: v for k, v in asdict(config).items() if k in keywords})

    def _pad(self, x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
        """Check (B, in_channels, H, W), mirror-pad it to a multiple; also return H and W."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected a (batch, {self.config.in_channels}, height, width) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        return _pad_to_multiple(x, multiple), height, width


def _up_convolution(in_channels: int, out_channels: int, up_mode: str) -> nn.Module:
    """Double the size: the U-Net's 2x2 up-convolution, or bilinear + 1x1 (as in ``Up``)."""
    check_choice("up_mode", up_mode, UP_MODES)
    if up_mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


# --------------------------------------------------------------------------------------------
# UNet++: nested, dense skip pathways, deep supervision, pruning
# --------------------------------------------------------------------------------------------


def _node(i: int, j: int) -> str:
    return f"x{i}_{j}"  # the name of node X^{i,j} in the module dicts


class NestedNode(nn.Module):
    r"""One node :math:`X^{i,j}`, :math:`j \ge 1`, of UNet++'s nested skip pathways.

    Zhou et al. 2018, section 2, eq. (1):

    .. math:: X^{i,j} = H\big(\big[X^{i,0}, \dots, X^{i,j-1}, U(X^{i+1,j-1})\big]\big)

    U is the up-sampling (the U-Net's 2x2 up-convolution, which halves the channels of level
    i+1 to those of level i), [.] the concatenation along channels, and H the U-Net's double
    convolution (:class:`~unet_lesson.model.DoubleConv`). For node :math:`X^{i,j}` with
    :math:`C_i` channels per level-i map: (B, j*C_i + C_i, H, W) -> H -> (B, C_i, H, W).
    With j = 1 it is exactly the U-Net's up step (:class:`~unet_lesson.model.Up`).

    Built in notebook 12.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 padding: str = "same", batch_norm: bool = False, up_mode: str = "transpose"):
        super().__init__()
        self.up = _up_convolution(in_channels, out_channels, up_mode)  # U
        self.conv = DoubleConv(skip_channels + out_channels, out_channels, padding, batch_norm)

    def forward(self, same_level: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        up = self.up(below)  # (B, C_{i+1}, H/2, W/2) -> (B, C_i, H, W)
        return self.conv(torch.cat([*same_level, up], dim=1))  # (B, (j+1) C_i, H, W) -> H


class UNetPlusPlus(_Variant):
    r"""UNet++ (Zhou et al. 2018, arXiv:1807.10165; redesign arXiv:1912.05074).

    Nodes :math:`X^{i,j}`: i counts the down-sampling steps (the level, 0 at the top), j the
    convolution blocks along the skip pathway. Column j = 0 is the U-Net's contracting path
    (``encoder``: :class:`DoubleConv`, :class:`Down`, ..., :class:`Bottleneck`); every other
    node is a :class:`NestedNode`; there are (depth+1)(depth+2)/2 nodes in all (15 for
    depth 4). Widths ``base_channels * 2**i`` per level (32, 64, 128, 256, 512 in the paper).

    Deep supervision (section 2, "Deep supervision"): with ``deep_supervision=True`` each top
    node :math:`X^{0,j}`, j = 1..depth, gets its own 1x1 convolution head; train with
    :func:`deep_supervision_loss` on :meth:`head_logits` (the mean of the heads' losses). The
    paper's two inference modes:

    * *accurate*: the heads' outputs averaged; ``forward(x)`` does this. We average the
      heads' **logits**, because ``forward`` must return logits (the course's losses and
      predictor apply the softmax themselves); the softmax of the mean logits is the
      normalised geometric mean of the heads' probabilities (the paper averages its sigmoid
      probabilities arithmetically; both ensembles agree where the heads agree).
    * *fast*: one head only. ``forward(x, level=l)`` computes only the nodes with
      :math:`i + j \le l` and returns the head on :math:`X^{0,l}` (the pruned "UNet++ L^l"
      of the redesign); :meth:`prune` copies that sub-network out, smaller and
      faster. Only a network trained with deep supervision can be pruned so.

    Without deep supervision there is one head, on :math:`X^{0,depth}`.

    Args: those of :class:`~unet_lesson.model.UNet` (``padding="same"`` only), plus
    ``deep_supervision``. ``UNetPlusPlus(in_channels=1, num_classes=1, base_channels=32,
    depth=4)`` is the paper's network: 9,041,601 parameters (9,041,700 with deep
    supervision), as the official Keras ``Nest_Net``.

    Where we depart from the paper and its official code (MrGiovanni/UNetPlusPlus,
    ``model_logic.py``): the concatenation puts the up-sampled map last (eq. 1's order; the
    code puts it first: same parameters); drop-out only at the bottleneck as in our U-Net (the
    code drops after every convolution); heads give logits, not sigmoids; optional batch norm
    and bilinear up-sampling as in our U-Net.

    Built in notebook 12.
    """

    arch = "unet++"
    options = ("deep_supervision",)

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 32,
                 depth: int = 4, padding: str = "same", batch_norm: bool = False,
                 up_mode: str = "transpose", dropout: float = 0.5,
                 deep_supervision: bool = False):
        super().__init__()
        self.config = c = UNetConfig(in_channels, num_classes, base_channels, depth, padding,
                                     batch_norm, up_mode, dropout, arch=self.arch,
                                     deep_supervision=deep_supervision)
        widths = [c.base_channels * 2**i for i in range(c.depth + 1)]  # 32, 64, 128, 256, 512

        # column j = 0: the U-Net's contracting path, X^{0,0} ... X^{depth,0}
        self.encoder = nn.ModuleList(
            [DoubleConv(c.in_channels, widths[0], c.padding, c.batch_norm)]
            + [Down(widths[i - 1], widths[i], c.padding, c.batch_norm)
               for i in range(1, c.depth)]
            + [Bottleneck(widths[-2], widths[-1], c.padding, c.batch_norm, c.dropout)]
        )
        # columns j >= 1: the nested, dense skip pathways; X^{i,j} sees j maps of its level
        self.nodes = nn.ModuleDict({
            _node(i, j): NestedNode(widths[i + 1], j * widths[i], widths[i], c.padding,
                                    c.batch_norm, c.up_mode)
            for j in range(1, c.depth + 1) for i in range(c.depth + 1 - j)
        })
        # the 1x1 heads: on every X^{0,j} with deep supervision, else on X^{0,depth} only
        self.heads = nn.ModuleDict({
            _node(0, j): nn.Conv2d(widths[0], c.num_classes, kernel_size=1)
            for j in self._head_levels(c.depth)
        })
        self.apply(init_he)

    def _head_levels(self, level: int) -> list[int]:
        return list(range(1, level + 1)) if self.config.deep_supervision else [level]

    def _check_level(self, level: int | None) -> int:
        depth = self.config.depth
        if level is None:
            return depth
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= depth:
            raise ValueError(f"level must be an integer in 1..{depth} (the depth), got {level!r}")
        if level != depth and not self.config.deep_supervision:
            raise ValueError(
                f"level={level} needs deep_supervision=True: only a network trained with a "
                f"head on every top node X^{{0,j}} can be pruned to X^{{0,{level}}}"
            )
        return level

    def _top_row(self, x: torch.Tensor, level: int) -> list[torch.Tensor]:
        r"""Compute the nodes with :math:`i + j \le` level; return :math:`X^{0,1..level}`."""
        X: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(level + 1):  # column 0: (B, 32, H, W) (B, 64, H/2, W/2) ...
            X[i, 0] = self.encoder[i](x if i == 0 else X[i - 1, 0])
        for j in range(1, level + 1):  # then column by column along the skip pathways
            for i in range(level + 1 - j):  # X^{i,j}: (B, C_i, H/2^i, W/2^i)
                same_level = [X[i, k] for k in range(j)]
                X[i, j] = self.nodes[_node(i, j)](same_level, X[i + 1, j - 1])
        return [X[0, j] for j in range(1, level + 1)]

    def head_logits(self, x: torch.Tensor, level: int | None = None) -> list[torch.Tensor]:
        """Logits (B, num_classes, H, W) of every head, X^{0,1} first (for the loss).

        With deep supervision: the heads on X^{0,1} ... X^{0,level} (level = depth by
        default); without: a list of one, the head on X^{0,depth}.
        """
        level = self._check_level(level)
        x, height, width = self._pad(x, 2**level)
        top = self._top_row(x, level)  # X^{0,1} ... X^{0,level}: (B, C_0, H, W) each
        return [self.heads[_node(0, j)](top[j - 1])[..., :height, :width]
                for j in self._head_levels(level)]

    def forward(self, x: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes, H, W).

        ``level=None``: the accurate mode (the mean of the heads' logits with deep
        supervision; the one head without). ``level=l``: the fast mode, only the nodes with
        i + j <= l and the head on X^{0,l}; the input is mirror-padded to a multiple of
        ``2**l`` (all the pruned network needs), so it equals ``prune(l)(x)``.
        """
        if level is None:
            logits = self.head_logits(x)
            return logits[0] if len(logits) == 1 else torch.stack(logits).mean(dim=0)
        level = self._check_level(level)
        x, height, width = self._pad(x, 2**level)
        top = self._top_row(x, level)
        return self.heads[_node(0, level)](top[-1])[..., :height, :width]

    def prune(self, level: int) -> UNetPlusPlus:
        r"""A copy of the sub-network "UNet++ L^level": the nodes with :math:`i + j \le`
        level and the head on :math:`X^{0,level}`, as a UNet++ of depth ``level`` with one head.

        Its output equals ``self(x, level=level)`` in eval mode (in training mode the copy's
        bottleneck drop-out acts at level ``level``, where ours has none). Fewer parameters,
        fewer convolutions: the point of pruning.
        """
        level = self._check_level(level)
        pruned = UNetPlusPlus.from_config(replace(self.config, depth=level,
                                                  deep_supervision=False))
        # the pruned network's names are a subset of ours: same encoder, nodes and head keys
        ours = self.state_dict()
        pruned.load_state_dict({key: ours[key] for key in pruned.state_dict()})
        return pruned.train(self.training)


def deep_supervision_loss(head_logits: list[torch.Tensor], target: torch.Tensor,
                          loss_fn) -> torch.Tensor:
    """The mean of ``loss_fn(logits, target)`` over the heads (UNet++ section 2).

    Used in notebook 12.
    """
    if not head_logits:
        raise ValueError("head_logits is empty: pass UNetPlusPlus.head_logits(x)")
    return torch.stack([loss_fn(logits, target) for logits in head_logits]).mean()


# --------------------------------------------------------------------------------------------
# Attention U-Net: additive attention gates on the skip connections
# --------------------------------------------------------------------------------------------


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


class AttentionUNet(_Variant):
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

    Args: those of :class:`~unet_lesson.model.UNet` (``padding="same"`` only). Parameters:
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
        widths = _add_unet_blocks(self, c)  # the U-Net, block for block: 64, 128, ... 1024
        # one gate per skip, in the decoder's order: level depth-1 first
        self.gates = nn.ModuleList(
            AttentionGate(widths[i], widths[i + 1], widths[i]) for i in reversed(range(c.depth))
        )
        self.attention_maps: list[torch.Tensor] = []
        self.apply(init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes, H, W); fills ``attention_maps``."""
        x, height, width = self._pad(x, 2**self.config.depth)
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


# --------------------------------------------------------------------------------------------
# TernausNet: a VGG11 encoder, pre-trained on ImageNet if you wish
# --------------------------------------------------------------------------------------------

# torchvision's configuration "A" (VGG11): output channels of each 3x3 convolution, "M" a pool
VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11Encoder(nn.Module):
    """VGG11's convolutional part (Simonyan & Zisserman 2015, configuration A) as the
    contracting path (TernausNet, Iglovikov & Shvets 2018, section II, Figure 1).

    ``features`` is laid out exactly as torchvision's ``vgg11().features`` (a 3x3 convolution
    with padding 1 and a ReLU per number in :data:`VGG11_LAYERS`, a 2x2 max-pool per "M"), so
    torchvision's key ``features.N.weight`` is our ``features.N.weight``. The skips are the
    maps just before each max-pool: (B, 3, H, W) -> (B, 64, H, W), (B, 128, H/2, W/2),
    (B, 256, H/4, W/4), (B, 512, H/8, W/8), (B, 512, H/16, W/16); and (B, 512, H/32, W/32)
    after the last pool.

    Built in notebook 12.
    """

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        for v in VGG11_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1),
                           nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                skips.append(x)  # the end of a VGG block, just before its pool
            x = layer(x)
        return skips, x

    def load_vgg11_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load VGG11 weights: a torchvision ``vgg11().state_dict()`` (``features.N.*``; the
        classifier's keys are ignored) or ``vgg11().features.state_dict()`` (``N.*``).

        Every encoder weight must be there with its shape, else a ``ValueError`` lists what is
        missing, unexpected or mis-shaped.
        """
        if not isinstance(state, dict):
            raise ValueError(f"expected a state dict, got {type(state).__name__}")
        mapped = {}
        for key, value in state.items():
            if key.startswith("classifier."):
                continue  # VGG's fully connected layers: not part of the encoder
            mapped[key if key.startswith("features.") else f"features.{key}"] = value
        own = self.state_dict()
        missing = sorted(own.keys() - mapped.keys())
        unexpected = sorted(mapped.keys() - own.keys())
        misshaped = sorted(k for k in own.keys() & mapped.keys()
                           if tuple(mapped[k].shape) != tuple(own[k].shape))
        if missing or unexpected or misshaped:
            raise ValueError(
                f"these are not VGG11 weights: missing {missing}, unexpected {unexpected}, "
                f"wrong shape {misshaped}. Save torchvision.models.vgg11(weights=...)"
                f".state_dict() (or its .features.state_dict()) to the file"
            )
        self.load_state_dict(mapped)


def vgg11_state_dict(weights_path: str | Path | None = None) -> dict[str, torch.Tensor] | None:
    """VGG11's ImageNet weights from ``weights_path``, else from torchvision (downloaded once
    into torch's cache). ``None``, with one warning that says what to do, when torchvision is
    not installed or the download fails; a missing ``weights_path`` file raises.

    Used in notebook 12.
    """
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"no VGG11 weights at {path}: check weights_path")
        return torch.load(path, map_location="cpu", weights_only=True)
    fallback = ("the encoder starts from random He initialisation instead. Install torchvision "
                "(pip install torchvision, the build matching your torch), or pass "
                "weights_path= a file saved with torch.save(vgg11(weights='IMAGENET1K_V1')"
                ".state_dict(), path), or use pretrained=False to silence this")
    try:
        from torchvision.models import VGG11_Weights, vgg11
    except ImportError:
        warnings.warn(f"pretrained=True: torchvision is not installed, so {fallback}",
                      stacklevel=3)
        return None
    try:
        return vgg11(weights=VGG11_Weights.IMAGENET1K_V1).state_dict()
    except Exception as err:  # no network, a proxy, a corrupt download...
        warnings.warn(f"pretrained=True: could not fetch the VGG11 ImageNet weights "
                      f"({type(err).__name__}: {err}), so {fallback}", stacklevel=3)
        return None


def _conv_relu(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    """A 3x3 convolution with padding 1 and a ReLU (batch norm between them if asked)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1,
                                         bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return [*layers, nn.ReLU(inplace=True)]


class DecoderBlock(nn.Sequential):
    """TernausNet's decoder block (section II, Figure 1): a 3x3 convolution and ReLU, then a
    3x3 transposed convolution with stride 2 that doubles the size, and a ReLU.

    (B, in, H, W) -> (B, middle, H, W) -> (B, out, 2H, 2W). ``up_mode="bilinear"``: bilinear
    up-sampling first, then two 3x3 convolutions (the official ``DecoderBlockV2`` without
    deconvolution). ``batch_norm`` adds batch norm after the 3x3 convolutions (not in the
    paper).

    Used in notebook 12.
    """

    def __init__(self, in_channels: int, middle_channels: int, out_channels: int,
                 batch_norm: bool = False, up_mode: str = "transpose"):
        check_choice("up_mode", up_mode, UP_MODES)
        if up_mode == "transpose":
            layers = [*_conv_relu(in_channels, middle_channels, batch_norm),
                      nn.ConvTranspose2d(middle_channels, out_channels, kernel_size=3, stride=2,
                                         padding=1, output_padding=1),
                      nn.ReLU(inplace=True)]
        else:
            layers = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                      *_conv_relu(in_channels, middle_channels, batch_norm),
                      *_conv_relu(middle_channels, out_channels, batch_norm)]
        super().__init__(*layers)


class TernausNet11(_Variant):
    """TernausNet11 (Iglovikov & Shvets 2018, arXiv:1801.05746, section II, Figure 1).

    A U-Net whose contracting path is VGG11's convolutions (:class:`VGG11Encoder`, fixed
    widths 64-128-256-512-512 and five max-pools, so ``depth=5`` and ``in_channels=3``), and
    whose expansive path is five :class:`DecoderBlock` and a last 3x3 convolution. With
    F = ``base_channels`` (the official code's ``num_filters``, 32 there and by default here):

    * ``center``: 512 (the pooled conv5) -> 16F -> 8F channels, H/32 -> H/16 pixels
    * ``dec5``: 8F + 512 (decoder + skip) -> 16F -> 8F, H/16 -> H/8
    * ``dec4``: 8F + 512 -> 16F -> 4F, H/8 -> H/4
    * ``dec3``: 4F + 256 -> 8F -> 2F, H/4 -> H/2
    * ``dec2``: 2F + 128 -> 4F -> F, H/2 -> H
    * ``dec1``: F + 64 -> F (one 3x3 convolution and ReLU, no up-sampling)

    then a 1x1 convolution to ``num_classes``. At F = 32 the channels are the official
    ``UNet11``'s (ternaus/TernausNet, ``ternausnet/models.py``): 22,927,393 parameters with
    one class. The official code writes the input widths as multiples of ``num_filters``
    (e.g. ``num_filters * (16 + 8)``), right only for 32; we write them as encoder width +
    decoder width, so any F works.

    ``pretrained=True`` loads VGG11's ImageNet weights into the encoder (from ``weights_path``
    if given, else through torchvision; without either it warns once and stays random); the
    decoder is always He-initialised. ImageNet weights expect RGB scaled as ImageNet's
    (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225): normalise the images so.
    ``encoder_weights`` says where the encoder's weights came from.

    Departures: logits for ``num_classes`` maps (the official net has one output); He
    initialisation of the decoder (the official code keeps PyTorch's default; note that
    :func:`init_he` takes N = in_channels for every transposed convolution, while a 3x3 one
    with stride 2 sees 1 to 4 kernel taps per input channel); optional ``dropout`` on the
    pooled conv5 (default 0: the paper has none), batch norm in the decoder and bilinear
    up-sampling. ``base_channels`` sets the decoder only; the encoder is VGG11's.

    Used in notebook 12.
    """

    arch = "ternausnet11"
    options = ("pretrained",)

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 32,
                 depth: int = 5, padding: str = "same", batch_norm: bool = False,
                 up_mode: str = "transpose", dropout: float = 0.0, pretrained: bool = False,
                 weights_path: str | Path | None = None):
        super().__init__()
        self.config = c = UNetConfig(in_channels, num_classes, base_channels, depth, padding,
                                     batch_norm, up_mode, dropout, arch=self.arch,
                                     pretrained=pretrained)
        if weights_path is not None and not pretrained:
            raise ValueError("weights_path is read only with pretrained=True")
        f, bn, mode = c.base_channels, c.batch_norm, c.up_mode
        self.encoder = VGG11Encoder(c.in_channels)
        self.dropout = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.center = DecoderBlock(512, 16 * f, 8 * f, bn, mode)
        self.dec5 = DecoderBlock(8 * f + 512, 16 * f, 8 * f, bn, mode)
        self.dec4 = DecoderBlock(8 * f + 512, 16 * f, 4 * f, bn, mode)
        self.dec3 = DecoderBlock(4 * f + 256, 8 * f, 2 * f, bn, mode)
        self.dec2 = DecoderBlock(2 * f + 128, 4 * f, f, bn, mode)
        self.dec1 = nn.Sequential(*_conv_relu(f + 64, f, bn))
        self.head = nn.Conv2d(f, c.num_classes, kernel_size=1)
        self.apply(init_he)

        self.encoder_weights = "random (He)"
        if c.pretrained:
            state = vgg11_state_dict(weights_path)
            if state is not None:
                self.encoder.load_vgg11_state_dict(state)
                self.encoder_weights = (str(weights_path) if weights_path is not None
                                        else "torchvision VGG11_Weights.IMAGENET1K_V1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> logits (B, num_classes, H, W); H, W padded to multiples of 32."""
        x, height, width = self._pad(x, 2**self.config.depth)
        (conv1, conv2, conv3, conv4, conv5), x = self.encoder(x)  # x: (B, 512, H/32, W/32)
        x = self.center(self.dropout(x))  # (B, 8F, H/16, W/16)
        x = self.dec5(torch.cat([x, conv5], dim=1))  # (B, 8F + 512, H/16) -> (B, 8F, H/8)
        x = self.dec4(torch.cat([x, conv4], dim=1))  # (B, 8F + 512, H/8) -> (B, 4F, H/4)
        x = self.dec3(torch.cat([x, conv3], dim=1))  # (B, 4F + 256, H/4) -> (B, 2F, H/2)
        x = self.dec2(torch.cat([x, conv2], dim=1))  # (B, 2F + 128, H/2) -> (B, F, H)
        x = self.dec1(torch.cat([x, conv1], dim=1))  # (B, F + 64, H, W) -> (B, F, H, W)
        return self.head(x)[..., :height, :width]  # (B, num_classes, H, W)


VARIANTS: dict[str, type[_Variant]] = {
    "unet++": UNetPlusPlus,
    "attention_unet": AttentionUNet,
    "ternausnet11": TernausNet11,
}
