"""The paper's U-Net, pinned to the numbers of Ronneberger et al. (2015), Figure 1."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import conv_layers
from torch import nn

from unet_lesson import UNet, UNetConfig
from unet_lesson.networks import center_crop, count_parameters, parameters_per_block
from unet_lesson.sizes import (
    Stage,
    check_input_size,
    feature_shapes,
    feature_sizes,
    input_size_for_output,
    is_legal_size,
    legal_sizes_near,
    output_size,
)

# Figure 1, read left to right: every spatial size after each conv, pool and up-conv.
FIGURE_1 = [
    570, 568, 284, 282, 280, 140, 138, 136, 68, 66, 64, 32, 30, 28,  # contracting path
    56, 54, 52, 104, 102, 100, 200, 198, 196, 392, 390, 388,  # expansive path
    388,  # the final 1x1 convolution
]


@pytest.fixture(scope="module")
def paper_run():
    """One forward pass of the paper's network on a 572x572 tile, recording every layer's size."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2).eval()
    sizes, channels = [], []

    def hook(module, inputs, output):
        sizes.append(tuple(output.shape[-2:]))
        channels.append(output.shape[1])

    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        out = net(torch.randn(1, 1, 572, 572))
    return net, out, sizes, channels


def test_paper_tile_572_in_388_out(paper_run):
    _, out, _, _ = paper_run
    assert out.shape == (1, 2, 388, 388)


def test_every_intermediate_size_of_figure_1(paper_run):
    _, _, sizes, channels = paper_run
    assert [h for h, w in sizes] == FIGURE_1
    assert all(h == w for h, w in sizes)
    # channels: 64 ... 1024 down, halved by each up-convolution, 2 classes at the end
    assert channels[:2] == [64, 64] and channels[12:14] == [1024, 1024]
    assert channels[14] == 512 and channels[-2] == 64 and channels[-1] == 2


def test_size_arithmetic_agrees_with_the_network(paper_run):
    _, _, sizes, _ = paper_run
    assert [s for _, s in feature_sizes(572)] == [h for h, _ in sizes][:-1]
    assert output_size(572) == 388
    assert UNet(base_channels=4).output_size(572) == 388


def test_feature_shapes_are_the_boxes_of_figure_1(paper_run):
    _, out, sizes, channels = paper_run
    shapes = feature_shapes(572)
    assert shapes[0] == Stage("input", 0, "input", 1, 572)
    assert shapes[-1] == Stage("output", 0, "output", 2, 388)
    # every conv, pool and up-conv output of a real forward pass, in order
    recorded = [(c, h) for c, (h, _) in zip(channels, sizes, strict=True)]
    assert [(s.channels, s.size) for s in shapes[1:]] == recorded
    assert [s.name for s in shapes[1:-1]] == [name for name, _ in feature_sizes(572)]
    # the records say where each map sits, so no one parses a name back
    pools = [s for s in shapes if s.op == "pool"]
    assert [(s.level, s.channels, s.name) for s in pools] == [
        (1, 64, "pool 1"), (2, 128, "pool 2"), (3, 256, "pool 3"), (4, 512, "pool 4")]
    assert [s.name for s in shapes if s.path == "bottleneck"] == [
        "pool 4", "bottleneck conv a", "bottleneck conv b"]
    assert {s.level for s in shapes if s.op == "up-conv"} == {0, 1, 2, 3}


def test_feature_shapes_of_a_small_same_padding_net():
    net = UNet(in_channels=3, num_classes=4, base_channels=4, depth=3, padding="same").eval()
    seen = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d)):
            m.register_forward_hook(lambda mod, i, o: seen.append((o.shape[1], o.shape[-1])))
    with torch.no_grad():
        net(torch.randn(1, 3, 64, 64))
    shapes = feature_shapes(64, depth=3, padding="same", base_channels=4, in_channels=3,
                            num_classes=4)
    assert (shapes[0].channels, shapes[0].size) == (3, 64)
    assert [(s.channels, s.size) for s in shapes[1:]] == seen


def test_parameters_per_block_add_up_to_the_paper_count():
    net = UNet(in_channels=1, num_classes=2)
    blocks = parameters_per_block(net)
    assert list(blocks) == ["inc", "downs.0", "downs.1", "downs.2", "bottleneck", "ups.0",
                            "ups.1", "ups.2", "ups.3", "head"]
    assert sum(blocks.values()) == count_parameters(net)
    assert blocks["bottleneck"] == (512 * 9 + 1) * 1024 + (1024 * 9 + 1) * 1024
    assert blocks["ups.0"] == (1024 * 4 + 1) * 512 + (1024 * 9 + 1) * 512 + (512 * 9 + 1) * 512
    assert blocks["head"] == 64 * 2 + 2
    small = UNet(base_channels=4, depth=2, up_mode="bilinear", batch_norm=True)
    assert sum(parameters_per_block(small).values()) == count_parameters(small)


def test_exactly_23_convolution_layers():
    net = UNet(in_channels=1, num_classes=2)
    convs = conv_layers(net)
    assert len(convs) == 23
    kernels = [m.kernel_size for m in convs]
    assert kernels.count((3, 3)) == 18  # nine double convolutions
    assert kernels.count((2, 2)) == 4  # four up-convolutions
    assert kernels.count((1, 1)) == 1  # the final 1x1 convolution
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in convs) == 4


def test_exactly_31_030_658_parameters():
    assert count_parameters(UNet(in_channels=1, num_classes=2)) == 31_030_658


def test_parameter_count_matches_hand_formula():
    def double(c_in, c_out):
        return (c_in * 9 + 1) * c_out + (c_out * 9 + 1) * c_out

    for base, depth in [(64, 4), (16, 3), (8, 2)]:
        w = [base * 2**i for i in range(depth + 1)]
        n = double(1, w[0]) + sum(double(w[i], w[i + 1]) for i in range(depth))
        n += sum((w[i + 1] * 4 + 1) * w[i] + double(w[i + 1], w[i]) for i in range(depth))
        n += (w[0] + 1) * 2
        assert count_parameters(UNet(base_channels=base, depth=depth)) == n


def test_bilinear_up_mode_keeps_23_convs_and_the_sizes():
    net = UNet(up_mode="bilinear", base_channels=4).eval()
    assert len(conv_layers(net)) == 23
    with torch.no_grad():
        assert net(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_he_initialisation_std():
    torch.manual_seed(0)
    net = UNet()
    conv = net.inc[2]  # the second 3x3 conv: 64 input channels, N = 9 * 64 = 576
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.02)
    up = net.ups[0].up  # 2x2 up-convolution from 1024 channels: each output sees N = 1024 inputs
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.02)
    assert all(torch.count_nonzero(m.bias) == 0 for m in conv_layers(net))


def test_dropout_sits_at_the_end_of_the_contracting_path():
    net = UNet(base_channels=4, dropout=0.5)
    assert isinstance(net.bottleneck[-1], nn.Dropout)
    assert net.bottleneck[-1].p == 0.5
    x = torch.randn(1, 1, 188, 188)
    net.train()
    assert not torch.equal(net(x), net(x))  # drop-out is random in training
    net.eval()
    assert torch.equal(net(x), net(x))  # and off for prediction
    assert isinstance(UNet(dropout=0.0).bottleneck[-1], nn.Identity)


@pytest.mark.parametrize("size", [16, 37, 64, 100, 129])
def test_same_padding_keeps_the_size(size):
    net = UNet(in_channels=3, num_classes=3, base_channels=4, padding="same").eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, size, size + 5)).shape == (2, 3, size, size + 5)


def test_same_padding_pads_by_mirroring_and_crops_back():
    torch.manual_seed(0)
    net = UNet(base_channels=4, padding="same").eval()
    x = torch.randn(1, 1, 50, 45)  # neither a multiple of 16
    padded = F.pad(x, (0, 3, 0, 14), mode="reflect")  # to 64 x 48
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :50, :45])


def test_same_padding_sizes_are_multiples_of_2_to_the_depth():
    assert is_legal_size(64, padding="same") and not is_legal_size(65, padding="same")
    assert legal_sizes_near(70, padding="same") == (64, 80)
    assert input_size_for_output(70, padding="same") == 80
    assert output_size(70, padding="same") == 70


def test_legal_valid_sizes_by_brute_force():
    """A tile is legal iff every max-pool sees an even size: simulate it step by step."""

    def brute_legal(size, depth):
        for _ in range(depth):
            size -= 4
            if size < 1 or size % 2:
                return False
            size //= 2
        size -= 4
        for _ in range(depth):
            if size < 1:
                return False
            size = 2 * size - 4
        return size >= 1

    for depth in (1, 2, 3, 4, 5):
        for size in range(1, 1200):
            assert is_legal_size(size, depth) == brute_legal(size, depth), (size, depth)
    legal = [s for s in range(1, 1200) if is_legal_size(s)]
    assert legal[0] == 188 and all((s - 60) % 16 == 0 for s in legal)  # 572 = 16 * 32 + 60


@pytest.mark.parametrize("size", [188, 204, 252, 316])
def test_output_size_matches_a_real_forward_pass(size):
    net = UNet(base_channels=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, size, size)).shape[-1] == output_size(size) == size - 184


def test_input_size_for_output():
    assert input_size_for_output(388) == 572
    assert input_size_for_output(389) == 588 and output_size(588) >= 389
    assert input_size_for_output(1) == 188


@pytest.mark.parametrize(
    ("height", "width", "nearest"),
    [(570, 572, "556 or 572"), (572, 573, "572 or 588"), (100, 572, "188")],
)
def test_illegal_sizes_raise_naming_the_nearest_legal_sizes(height, width, nearest):
    net = UNet(base_channels=2)
    with pytest.raises(ValueError, match=f"nearest legal sizes are {nearest}"):
        net(torch.randn(1, 1, height, width))
    with pytest.raises(ValueError, match="not a legal tile size"):
        check_input_size(height, width)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match=r"expected a \(batch, 3, height, width\)"):
        UNet(in_channels=3, base_channels=2)(torch.randn(1, 1, 188, 188))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="padding must be one of"):
        UNet(padding="reflect")
    with pytest.raises(ValueError, match="up_mode must be one of"):
        UNet(up_mode="nearest")
    with pytest.raises(ValueError, match="dropout"):
        UNet(dropout=1.0)
    # every number has a range, checked where it enters (not deep inside torch)
    with pytest.raises(ValueError, match="base_channels must satisfy 1 <= base_channels"):
        UNet(base_channels=0)
    with pytest.raises(ValueError, match="depth must satisfy 1 <= depth <= 8"):
        UNet(depth=0)
    with pytest.raises(TypeError, match="in_channels must be an integer"):
        UNet(in_channels=1.5)
    with pytest.raises(TypeError, match="batch_norm must be True or False"):
        UNet(batch_norm="false")


def test_center_crop_takes_the_middle():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert torch.equal(center_crop(x, 4, 2), x[..., 2:6, 3:5])
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(x, 9, 2)
    labels = x[0, 0].numpy().astype(np.int64)  # the tile dataset crops numpy labels with it
    assert np.array_equal(center_crop(labels, 4, 2), labels[2:6, 3:5])


def test_deterministic_under_a_seed():
    def run():
        torch.manual_seed(123)
        net = UNet(base_channels=4).eval()
        x = torch.randn(1, 1, 188, 188)
        with torch.no_grad():
            return net(x)

    assert torch.equal(run(), run())


def test_config_round_trip():
    net = UNet(in_channels=3, num_classes=3, base_channels=4, depth=3, padding="same",
               batch_norm=True, up_mode="bilinear", dropout=0.1)
    again = UNet(net.config)
    again.load_state_dict(net.state_dict())  # same architecture, same parameter names
    assert again.config == net.config == UNetConfig(**vars(net.config))
    with pytest.raises(TypeError, match="not both"):
        UNet(net.config, depth=2)


@pytest.mark.parametrize(
    ("padding", "batch_norm", "size"), [("valid", False, 188), ("same", True, 64)]
)
def test_both_variants_learn_a_fixed_batch(padding, batch_norm, size):
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2 if padding == "same" else 4, padding=padding,
               batch_norm=batch_norm, dropout=0.0)
    x = torch.randn(2, 1, size, size)
    out = net.output_size(size)
    target = (torch.rand(2, out, out) > 0.5).long()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
