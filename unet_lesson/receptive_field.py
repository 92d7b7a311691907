r"""Receptive fields of the U-Net: which input pixels can each feature pixel see?

The paper (section 2) needs the answer twice: the tile size must give every output pixel its
full context (572 in, 388 out), and the overlap-tile strategy must feed each output tile the
input pixels it depends on. Two ways to find it, checked against each other in the tests:

* **Analytic** (:func:`receptive_field`): follow the stages of
  :func:`unet_lesson.sizes.feature_sizes` and carry, for every pixel of the current feature map,
  the first and last input pixel it depends on (one axis; the network treats rows and columns
  alike, so a field is the product of a row interval and a column interval):

  - 3x3 convolution, valid: pixel :math:`i` reads :math:`i, i+1, i+2`; same: :math:`i-1..i+1`,
  - 2x2 max-pool, stride 2: pixel :math:`i` reads :math:`2i, 2i+1`,
  - 2x2 up-convolution, stride 2: pixel :math:`i` reads :math:`\lfloor i/2 \rfloor` only,
  - bilinear up-sampling (factor 2): pixel :math:`2j` reads :math:`j-1, j`; :math:`2j+1` reads
    :math:`j, j+1` (clipped at the borders),
  - crop and concatenate: the union of the up-sampled pixel's field and the cropped skip pixel's.

* **Brute force** (:func:`gradient_support`): back-propagate from one output pixel and see which
  input pixels get a non-zero gradient (:func:`input_gradient`). Max-pooling routes the
  gradient to one pixel of each window and a ReLU may block it, so the experiment runs on a
  *connectivity twin* (:func:`connectivity_twin`): the same layers with positive weights and
  average pooling, so every connection that exists carries gradient.

The classic formula :math:`r \leftarrow r + (k-1)\,j,\ j \leftarrow j\,s` (jump :math:`j` = input
pixels between neighbouring feature pixels) is exact on the contracting path (a 140-pixel field
at the bottleneck), but not on the expansive path: an up-convolution copies one bottleneck pixel
into a 2x2 block, so an output pixel's field grows in steps of 16 pixels (188 or 204 pixels wide
for the paper's network, depending on the pixel's position; the formula says 200).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .checks import check_choice
from .sizes import PADDINGS, UP_MODES, feature_sizes


def _conv(lo: np.ndarray, hi: np.ndarray, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """3x3 convolution. Fields are intervals whose ends never decrease along the map."""
    if padding == "valid":  # pixel i reads i, i+1, i+2 of the previous map
        return lo[:-2], hi[2:]
    n = len(lo)  # same: pixel i reads i-1, i, i+1 (the zero padding adds no input pixel)
    i = np.arange(n)
    return lo[np.maximum(i - 1, 0)], hi[np.minimum(i + 1, n - 1)]


def _pool(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pool, stride 2: pixel i reads 2i and 2i+1."""
    return lo[0::2], hi[1::2]


def _up(lo: np.ndarray, hi: np.ndarray, up_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Double the size: a 2x2 up-convolution (stride 2) or bilinear up-sampling."""
    n = len(lo)
    i = np.arange(2 * n)
    if up_mode == "transpose":  # pixel i is one kernel position times input pixel i // 2
        return lo[i // 2], hi[i // 2]
    # bilinear, align_corners=False: pixel 2j samples j - 1/4, pixel 2j+1 samples j + 1/4
    return lo[np.maximum((i - 1) // 2, 0)], hi[np.minimum((i + 1) // 2, n - 1)]


def receptive_field(input_size: int, depth: int = 4, padding: str = "valid",
                    up_mode: str = "transpose", stage: str | None = None) -> np.ndarray:
    """First and last input pixel that each pixel of a feature map depends on, along one axis.

    Returns an int array of shape ``(size, 2)``: row ``i`` is ``(first, last)`` for pixel ``i``
    of ``stage`` (a stage name of :func:`unet_lesson.sizes.feature_sizes`, e.g.
    ``"bottleneck conv b"``; default: the network's output, before the 1x1 convolution, which
    does not change fields). For ``"up L up-conv"`` it is the concatenated map (up-convolution
    output and cropped copy). Field widths are ``last - first + 1`` pixels.

    >>> fields = receptive_field(572)  # the paper's tile
    >>> len(fields), sorted(set((fields[:, 1] - fields[:, 0] + 1).tolist()))
    (388, [188, 204])

    Built in notebook 03; used in notebooks 04, 05 and 06.
    """
    check_choice("padding", padding, PADDINGS)
    check_choice("up_mode", up_mode, UP_MODES)
    if padding == "same" and input_size % 2**depth:
        raise ValueError(
            f"receptive_field with padding='same' needs an input size that is a multiple of "
            f"{2**depth} (the network mirror-pads other sizes), got {input_size}"
        )
    names = [name for name, _ in feature_sizes(input_size, depth, padding)]  # checks the size
    if stage is not None and stage not in names:
        raise ValueError(f"unknown stage {stage!r}; stages are those of feature_sizes: {names}")

    lo = hi = np.arange(input_size)  # the input: each pixel sees itself
    fields: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    skips = []
    for level in range(depth + 1):  # contracting path
        if level > 0:
            lo, hi = _pool(lo, hi)
            fields[f"pool {level}"] = lo, hi
        name = "bottleneck" if level == depth else f"down {level}"
        for part in ("a", "b"):
            lo, hi = _conv(lo, hi, padding)
            fields[f"{name} conv {part}"] = lo, hi
        skips.append((lo, hi))
    for level in range(depth - 1, -1, -1):  # expansive path
        lo, hi = _up(lo, hi, up_mode)
        skip_lo, skip_hi = skips[level]
        top = (len(skip_lo) - len(lo)) // 2  # the centre crop of the skip connection
        lo = np.minimum(lo, skip_lo[top : top + len(lo)])  # concatenation: union of both fields
        hi = np.maximum(hi, skip_hi[top : top + len(hi)])
        fields[f"up {level} up-conv"] = lo, hi
        for part in ("a", "b"):
            lo, hi = _conv(lo, hi, padding)
            fields[f"up {level} conv {part}"] = lo, hi
    lo, hi = fields[stage or names[-1]]
    return np.stack([lo, hi], axis=1)


def connectivity_twin(net: nn.Module) -> nn.Module:
    """A float64 copy of ``net`` in which every connection carries gradient.

    Max-pools become 2x2 average pools (same windows), every convolution gets positive weights
    and zero biases, and the copy is put in eval mode (no drop-out). With a positive input all
    ReLUs pass, so the gradient of an output pixel is non-zero exactly on its receptive field.

    Not built in a notebook: :func:`gradient_support` calls it.
    """
    twin = copy.deepcopy(net).double().eval()
    for module in list(twin.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
    return twin


def input_gradient(net: nn.Module, x: torch.Tensor, pixel: tuple[int, int],
                   channel: int = 0) -> np.ndarray:
    """Absolute gradient of one output pixel with respect to every input pixel.

    ``x`` is one (C, H, W) input; ``pixel`` is ``(row, col)`` in the output map. Returns a
    float (H, W) array summed over the input channels: on the real network it shows where the
    gradient actually flows (the *effective* receptive field, Luo et al. 2016).

    Used in notebook 06.
    """
    param = next(net.parameters())
    x = x.detach().to(dtype=param.dtype, device=param.device)[None].requires_grad_(True)
    with torch.enable_grad():
        out = net(x)  # (1, classes, h, w)
        (grad,) = torch.autograd.grad(out[0, channel, pixel[0], pixel[1]], x)
    return grad[0].abs().sum(0).cpu().numpy()


def gradient_support(net: nn.Module, input_shape: tuple[int, int, int],
                     pixel: tuple[int, int]) -> np.ndarray:
    """Brute force: the input pixels that one output pixel depends on, as a boolean (H, W) array.

    Back-propagates from ``pixel`` of the output through :func:`connectivity_twin` of ``net``
    on an input of ones of shape ``input_shape`` (C, H, W).

    Used in notebooks 03 and 06.
    """
    twin = connectivity_twin(net)
    return input_gradient(twin, torch.ones(input_shape, dtype=torch.float64), pixel) > 0
