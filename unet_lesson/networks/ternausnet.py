r"""TernausNet (Iglovikov & Shvets 2018, arXiv:1801.05746): a U-Net whose contracting path
is VGG11's convolutional part (:class:`VGG11Encoder`), which can start from ImageNet weights;
the decoder uses transposed convolutions (:class:`DecoderBlock`, :class:`TernausNet11`).
``padding="same"`` only: VGG11's convolutions pad.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..checks import check_choice
from ..sizes import UP_MODES
from .base import Network
from .blocks import conv_relu, init_he
from .config import UNetConfig

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


class DecoderBlock(nn.Sequential):
    """TernausNet's decoder block (section II, Figure 1): a 3x3 convolution and ReLU, then a
    3x3 transposed convolution with stride 2 that doubles the size, and a ReLU.

    (B, in, H, W) -> (B, middle, H, W) -> (B, out, 2H, 2W). ``up_mode="bilinear"``: bilinear
    up-sampling first, then two 3x3 convolutions (the official ``DecoderBlockV2`` without
    deconvolution). ``batch_norm`` adds batch norm after the 3x3 convolutions (not in the
    paper).

    Not built in a notebook: :class:`TernausNet` calls it.
    """

    def __init__(self, in_channels: int, middle_channels: int, out_channels: int,
                 batch_norm: bool = False, up_mode: str = "transpose"):
        check_choice("up_mode", up_mode, UP_MODES)
        if up_mode == "transpose":
            layers = [*conv_relu(in_channels, middle_channels, "same", batch_norm),
                      nn.ConvTranspose2d(middle_channels, out_channels, kernel_size=3, stride=2,
                                         padding=1, output_padding=1),
                      nn.ReLU(inplace=True)]
        else:
            layers = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                      *conv_relu(in_channels, middle_channels, "same", batch_norm),
                      *conv_relu(middle_channels, out_channels, "same", batch_norm)]
        super().__init__(*layers)


class TernausNet11(Network):
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
    :func:`~unet_lesson.networks.init_he` takes N = in_channels for every transposed
    convolution, while a 3x3 one with stride 2 sees 1 to 4 kernel taps per input channel);
    optional ``dropout`` on the pooled conv5 (default 0: the paper has none), batch norm in
    the decoder and bilinear up-sampling. ``base_channels`` sets the decoder only; the
    encoder is VGG11's.

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
        self.dec1 = nn.Sequential(*conv_relu(f + 64, f, "same", bn))
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
        x, height, width = self.prepare_input(x)
        (conv1, conv2, conv3, conv4, conv5), x = self.encoder(x)  # x: (B, 512, H/32, W/32)
        x = self.center(self.dropout(x))  # (B, 8F, H/16, W/16)
        x = self.dec5(torch.cat([x, conv5], dim=1))  # (B, 8F + 512, H/16) -> (B, 8F, H/8)
        x = self.dec4(torch.cat([x, conv4], dim=1))  # (B, 8F + 512, H/8) -> (B, 4F, H/4)
        x = self.dec3(torch.cat([x, conv3], dim=1))  # (B, 4F + 256, H/4) -> (B, 2F, H/2)
        x = self.dec2(torch.cat([x, conv2], dim=1))  # (B, 2F + 128, H/2) -> (B, F, H)
        x = self.dec1(torch.cat([x, conv1], dim=1))  # (B, F + 64, H, W) -> (B, F, H, W)
        return self.head(x)[..., :height, :width]  # (B, num_classes, H, W)
