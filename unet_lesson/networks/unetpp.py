r"""UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh & Liang, DLMIA 2018, arXiv:1807.10165; the
redesign in IEEE TMI 2019, arXiv:1912.05074): nested, dense skip pathways, deep supervision,
pruning.

The plain skip connection is replaced by a nested, dense pathway of nodes :math:`X^{i,j}`
(:class:`NestedNode`), deep supervision puts a 1x1 head on every top node :math:`X^{0,j}`,
and a network trained so can be *pruned*: at level :math:`l` only the nodes with
:math:`i + j \le l` are needed (:class:`UNetPlusPlus`). ``padding="same"`` only, as in the
paper (:data:`~unet_lesson.networks.config.SAME_PADDING_ONLY` says why).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .base import Network
from .blocks import Bottleneck, DoubleConv, Down, init_he, up_convolution
from .config import UNetConfig


def _node(i: int, j: int) -> str:
    return f"x{i}_{j}"  # the name of node X^{i,j} in the module dicts


class NestedNode(nn.Module):
    r"""One node :math:`X^{i,j}`, :math:`j \ge 1`, of UNet++'s nested skip pathways.

    Zhou et al. 2018, section 2, eq. (1):

    .. math:: X^{i,j} = H\big(\big[X^{i,0}, \dots, X^{i,j-1}, U(X^{i+1,j-1})\big]\big)

    U is the up-sampling (the U-Net's 2x2 up-convolution, which halves the channels of level
    i+1 to those of level i), [.] the concatenation along channels, and H the U-Net's double
    convolution (:class:`~unet_lesson.networks.DoubleConv`). For node :math:`X^{i,j}` with
    :math:`C_i` channels per level-i map: (B, j*C_i + C_i, H, W) -> H -> (B, C_i, H, W).
    With j = 1 it is exactly the U-Net's up step (:class:`~unet_lesson.networks.Up`).

    Built in notebook 12.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 padding: str = "same", batch_norm: bool = False, up_mode: str = "transpose"):
        super().__init__()
        self.up = up_convolution(in_channels, out_channels, up_mode)  # U
        self.conv = DoubleConv(skip_channels + out_channels, out_channels, padding, batch_norm)

    def forward(self, same_level: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        up = self.up(below)  # (B, C_{i+1}, H/2, W/2) -> (B, C_i, H, W)
        return self.conv(torch.cat([*same_level, up], dim=1))  # (B, (j+1) C_i, H, W) -> H


class UNetPlusPlus(Network):
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

    Args: those of :class:`~unet_lesson.networks.UNet` (``padding="same"`` only), plus
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
        x, height, width = self.prepare_input(x, 2**level)
        top = self._top_row(x, level)  # X^{0,1} ... X^{0,level}: (B, C_0, H, W) each
        return [self.heads[_node(0, j)](top[j - 1])[..., :height, :width]
                for j in self._head_levels(level)]

    def forward(self, x: torch.Tensor, level: int | None = None, all_heads: bool = False
                ) -> torch.Tensor | list[torch.Tensor]:
        """(B, in_channels, H, W) -> logits (B, num_classes, H, W).

        ``level=None``: the accurate mode (the mean of the heads' logits with deep
        supervision; the one head without). ``level=l``: the fast mode, only the nodes with
        i + j <= l and the head on X^{0,l}; the input is mirror-padded to a multiple of
        ``2**l`` (all the pruned network needs), so it equals ``prune(l)(x)``.
        ``all_heads=True``: the list of :meth:`head_logits` instead (what training's loss
        takes; through ``forward`` it goes through ``torch.compile`` and
        ``DistributedDataParallel`` like any other network's step).
        """
        if all_heads:
            return self.head_logits(x, level)
        if level is None:
            logits = self.head_logits(x)
            return logits[0] if len(logits) == 1 else torch.stack(logits).mean(dim=0)
        level = self._check_level(level)
        x, height, width = self.prepare_input(x, 2**level)
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


