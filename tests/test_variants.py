"""The U-Net variants (UNet++, Attention U-Net, TernausNet11), pinned to their papers and code.

Parameter counts are checked against the official implementations at the same widths, each
written out layer by layer from the cited file (read, not run: none of them is installed here).
"""

import sys
import warnings
from dataclasses import FrozenInstanceError

import pytest
import torch
import torch.nn.functional as F
from helpers import conv_layers
from torch import nn

from unet_lesson.networks import (
    NETWORKS,
    VGG11_LAYERS,
    AttentionGate,
    AttentionUNet,
    TernausNet11,
    UNet,
    UNetConfig,
    UNetPlusPlus,
    VGG11Encoder,
    build_network,
    count_parameters,
    deep_supervision_loss,
)


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = True) -> int:
    """Parameters of a k x k convolution (or transposed convolution)."""
    return c_in * c_out * k * k + (c_out if bias else 0)


pytestmark = pytest.mark.usefixtures("one_thread")  # networks a few channels wide (conftest)


# tiny networks (4 channels at the top), so that every test takes about a second or less
def tiny_unetpp(**kw):
    return UNetPlusPlus(**{"in_channels": 3, "base_channels": 4, "depth": 3, **kw})


def tiny_attention(**kw):
    return AttentionUNet(**{"in_channels": 3, "base_channels": 4, "depth": 3, **kw})


def tiny_ternaus(**kw):
    return TernausNet11(**{"base_channels": 4, **kw})


FACTORIES = {
    "unet++": tiny_unetpp,
    "unet++ deep supervision": lambda **kw: tiny_unetpp(deep_supervision=True, **kw),
    "attention_unet": tiny_attention,
    "ternausnet11": tiny_ternaus,
}


# --------------------------------------------------------------------------------------------
# The interface the course relies on: shapes, config, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_output_shape_for_any_size_and_batch(name):
    torch.manual_seed(0)
    net = FACTORIES[name](num_classes=3).eval()
    with torch.no_grad():
        for batch, height, width in [(1, 32, 32), (2, 37, 45), (3, 8, 20)]:
            out = net(torch.randn(batch, 3, height, width))
            assert out.shape == (batch, 3, height, width)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["unet++", "attention_unet", "ternausnet11"])
@pytest.mark.parametrize("up_mode", ["transpose", "bilinear"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_up_mode_and_batch_norm_runs(name, up_mode, batch_norm):
    net = FACTORIES[name](up_mode=up_mode, batch_norm=batch_norm)
    out = net(torch.randn(2, 3, 33, 40))
    assert out.shape == (2, 2, 33, 40)
    assert net.config.up_mode == up_mode and net.config.batch_norm is batch_norm


@pytest.mark.parametrize("name", FACTORIES)
def test_config_rebuilds_the_same_network(name):
    net = FACTORIES[name]()
    c = net.config
    assert isinstance(c, UNetConfig) and c.padding == "same"
    assert (c.in_channels, c.num_classes) == (3, 2) and c.depth == (5 if "ternaus" in name else 3)
    for config in (c, vars(c)):  # the dataclass, or its dict as a checkpoint holds it
        twin = build_network(config)
        assert type(twin) is type(net) and twin.config == c
        assert {k: v.shape for k, v in twin.state_dict().items()} == {
            k: v.shape for k, v in net.state_dict().items()}
    assert type(build_network(c)) is type(net)  # the one entry training and checkpoints use
    with pytest.raises(FrozenInstanceError):
        c.depth = 2


@pytest.mark.parametrize("cls", [c for arch, c in NETWORKS.items() if arch != "unet"])
def test_valid_padding_is_refused_with_the_reason(cls):
    with pytest.raises(ValueError, match=r"padding must be 'same'.*Use arch='unet'"):
        cls(in_channels=3, padding="valid", depth=5)


def test_unsupported_settings_name_the_argument():
    with pytest.raises(ValueError, match="in_channels must be 3"):
        TernausNet11(in_channels=1)
    with pytest.raises(ValueError, match="depth must be 5"):
        TernausNet11(depth=4)
    with pytest.raises(ValueError, match="weights_path"):
        TernausNet11(weights_path="vgg11.pth")
    with pytest.raises(ValueError, match="deep_supervision"):
        UNetConfig(arch="attention_unet", padding="same", deep_supervision=True)
    with pytest.raises(ValueError, match="pretrained"):
        UNetConfig(arch="unet++", padding="same", pretrained=True)
    with pytest.raises(ValueError, match="arch"):
        UNetConfig(arch="segnet")
    with pytest.raises(ValueError, match="deep_supervision is a UNet.. option"):
        UNetConfig(deep_supervision=True)  # arch="unet"
    with pytest.raises(ValueError, match="build it with unet_lesson.networks.build_network"):
        UNet(UNetConfig(arch="unet++", padding="same"))
    with pytest.raises(ValueError, match="up_mode"):
        UNetPlusPlus(up_mode="nearest")
    with pytest.raises(ValueError, match="dropout"):
        AttentionUNet(dropout=1.0)
    with pytest.raises(ValueError, match="arch='ternausnet11', not 'unet\\+\\+'"):
        UNetPlusPlus.from_config(UNetConfig(arch="ternausnet11", padding="same", in_channels=3,
                                            depth=5))
    with pytest.raises(ValueError, match=r"expected a \(batch, 3, height, width\)"):
        tiny_attention()(torch.zeros(1, 1, 16, 16))


# --------------------------------------------------------------------------------------------
# Parameter counts against the official implementations
# --------------------------------------------------------------------------------------------


def keras_nest_net_layers(in_channels=1, num_class=1, deep_supervision=False):
    """Every layer of ``Nest_Net`` and its parameters, by its Keras name.

    MrGiovanni/UNetPlusPlus, ``model_logic.py``, ``Nest_Net`` (the 2018 paper's Keras code):
    nb_filter = [32, 64, 128, 256, 512]; ``standard_unit`` = two 3x3 convolutions (with bias);
    ``up{i}{j}`` = Conv2DTranspose(nb_filter[i-1], (2, 2), strides 2) from X^{i,j-2};
    ``output_{k}`` = a 1x1 convolution on X^{0,k} (only ``output_4`` without deep supervision).
    Keras names node X^{i,j} stage "{i+1}{j+1}".
    """
    nb = [32, 64, 128, 256, 512]
    layers = {}
    for i in range(5):  # column 0: conv11 ... conv51 (the contracting path)
        c_in = in_channels if i == 0 else nb[i - 1]
        layers[f"conv{i + 1}1_1"] = conv(c_in, nb[i])
        layers[f"conv{i + 1}1_2"] = conv(nb[i], nb[i])
    for j in range(1, 5):  # columns 1..4: up{..}, then a standard unit on the concatenation
        for i in range(5 - j):
            stage = f"{i + 1}{j + 1}"
            layers[f"up{stage}"] = conv(nb[i + 1], nb[i], k=2)
            layers[f"conv{stage}_1"] = conv((j + 1) * nb[i], nb[i])  # [up, X^{i,0..j-1}]
            layers[f"conv{stage}_2"] = conv(nb[i], nb[i])
    for k in (range(1, 5) if deep_supervision else [4]):
        layers[f"output_{k}"] = conv(nb[0], num_class, k=1)
    return layers


def test_unetpp_matches_the_official_keras_nest_net():
    layers = keras_nest_net_layers()
    assert len(layers) == 15 * 2 + 10 + 1  # 15 nodes of two convs, 10 up-convs, one head
    official = sum(layers.values())
    assert official == 9_041_601  # the figure printed in Nest_Net's docstring (Table 1: 9.04M)
    net = UNetPlusPlus(in_channels=1, num_classes=1, base_channels=32, depth=4)
    assert count_parameters(net) == official
    assert len(conv_layers(net)) == len(layers)

    with_ds = sum(keras_nest_net_layers(deep_supervision=True).values())
    assert with_ds == 9_041_601 + 3 * conv(32, 1, k=1) == 9_041_700
    net = UNetPlusPlus(in_channels=1, num_classes=1, base_channels=32, depth=4,
                       deep_supervision=True)
    assert count_parameters(net) == with_ds


def test_the_unet_baseline_matches_the_official_keras_u_net():
    # model_logic.py, U_Net ("Total params: 7,759,521"): the U-Net that UNet++ is compared to
    nb = [32, 64, 128, 256, 512]
    encoder = conv(1, 32) + conv(32, 32) + sum(conv(nb[i - 1], nb[i]) + conv(nb[i], nb[i])
                                               for i in range(1, 5))
    decoder = sum(conv(nb[i + 1], nb[i], k=2) + conv(2 * nb[i], nb[i]) + conv(nb[i], nb[i])
                  for i in range(4))
    official = encoder + decoder + conv(32, 1, k=1)
    assert official == 7_759_521
    net = UNet(in_channels=1, num_classes=1, base_channels=32, padding="same")
    assert count_parameters(net) == official


def test_unetpp_count_at_tiny_widths_follows_the_same_formula():
    w = [4, 8, 16, 32]  # base 4, depth 3
    encoder = conv(3, 4) + conv(4, 4) + sum(conv(w[i - 1], w[i]) + conv(w[i], w[i])
                                            for i in range(1, 4))
    nodes = sum(conv(w[i + 1], w[i], k=2) + conv((j + 1) * w[i], w[i]) + conv(w[i], w[i])
                for j in range(1, 4) for i in range(4 - j))
    assert count_parameters(tiny_unetpp()) == encoder + nodes + conv(4, 2, k=1)
    assert count_parameters(tiny_unetpp(deep_supervision=True)) == (
        encoder + nodes + 3 * conv(4, 2, k=1))


def official_grid_attention_block_2d(in_channels, gating_channels, inter_channels):
    """The layers of the official gate, by their names there.

    ozan-oktay/Attention-Gated-Networks, ``models/layers/grid_attention_layer.py``,
    ``_GridAttentionBlockND`` with dimension=2, mode "concatenation", sub_sample_factor 2:
    ``theta`` (W_x, 2x2 stride 2, no bias), ``phi`` (W_g, 1x1), ``psi`` (1x1) and the output
    transform ``W`` = 1x1 convolution + batch norm.
    """
    return {
        "theta": nn.Conv2d(in_channels, inter_channels, 2, stride=2, bias=False),
        "phi": nn.Conv2d(gating_channels, inter_channels, 1),
        "psi": nn.Conv2d(inter_channels, 1, 1),
        "W.0": nn.Conv2d(in_channels, in_channels, 1),
        "W.1": nn.BatchNorm2d(in_channels),
    }


@pytest.mark.parametrize("skip, gating", [(4, 8), (64, 128), (512, 1024)])
def test_attention_gate_is_the_official_gate_without_its_output_transform(skip, gating):
    official = official_grid_attention_block_2d(skip, gating, skip)  # F_int = F_l as there
    ours = AttentionGate(skip, gating, skip)
    for our_name, their_name in [("w_x", "theta"), ("w_g", "phi"), ("psi", "psi")]:
        assert {k: v.shape for k, v in getattr(ours, our_name).state_dict().items()} == {
            k: v.shape for k, v in official[their_name].state_dict().items()}
    output_transform = count_parameters(official["W.0"]) + count_parameters(official["W.1"])
    assert output_transform == skip * skip + skip + 2 * skip
    assert count_parameters(ours) == (
        sum(count_parameters(m) for m in official.values()) - output_transform)
    # per layer: W_x 2x2 without bias, W_g 1x1 with b_g, psi 1x1 with b_psi
    assert count_parameters(ours) == (conv(skip, skip, k=2, bias=False) + conv(gating, skip, k=1)
                                      + conv(skip, 1, k=1))


def test_attention_unet_is_a_unet_plus_its_gates():
    # the paper's widths (64 ... 1024), 1 channel in, 2 classes: the U-Net's parameters
    # (counted in tests/test_model.py) plus one gate per skip level l with F_l = 64 * 2**l,
    # F_g = 2 F_l
    net = AttentionUNet(in_channels=1, num_classes=2, base_channels=64, depth=4)
    unet = UNet(in_channels=1, num_classes=2, base_channels=64, depth=4, padding="same")
    gates = {
        64: conv(64, 64, 2, bias=False) + conv(128, 64, 1) + conv(64, 1, 1),  # 24,705
        128: conv(128, 128, 2, bias=False) + conv(256, 128, 1) + conv(128, 1, 1),  # 98,561
        256: conv(256, 256, 2, bias=False) + conv(512, 256, 1) + conv(256, 1, 1),  # 393,729
        512: conv(512, 512, 2, bias=False) + conv(1024, 512, 1) + conv(512, 1, 1),  # 1,573,889
    }
    assert sum(gates.values()) == 2_090_884
    assert count_parameters(net) == count_parameters(unet) + 2_090_884
    # block for block the U-Net (its weights load into the attention U-Net), plus gates.*
    ours = {k: v.shape for k, v in net.state_dict().items() if not k.startswith("gates.")}
    assert ours == {k: v.shape for k, v in unet.state_dict().items()}
    missing, unexpected = net.load_state_dict(unet.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("gates.") for k in missing)


def official_unet11_layers(num_filters=32):
    """Every convolution of the official ``UNet11``, in order, with the shapes written there.

    ternaus/TernausNet, ``ternausnet/models.py`` (also ``unet_models.py``), class ``UNet11``:
    the encoder is torchvision's ``vgg11().features`` (conv3-64, conv3-128, conv3-256 x2,
    conv3-512 x4, padding 1); ``DecoderBlock(in, middle, out)`` = ``ConvRelu(in, middle)``
    (3x3, padding 1) + ``ConvTranspose2d(middle, out, 3, stride=2, padding=1,
    output_padding=1)``; ``dec1`` = ``ConvRelu``; ``final`` = a 1x1 convolution to 1 map.
    """
    nf = num_filters

    def decoder_block(c_in, middle, c_out):
        return [nn.Conv2d(c_in, middle, 3, padding=1),
                nn.ConvTranspose2d(middle, c_out, 3, stride=2, padding=1, output_padding=1)]

    vgg11 = [nn.Conv2d(a, b, 3, padding=1) for a, b in
             [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512),
              (512, 512)]]
    return (vgg11
            + decoder_block(nf * 8 * 2, nf * 8 * 2, nf * 8)  # center
            + decoder_block(nf * (16 + 8), nf * 8 * 2, nf * 8)  # dec5
            + decoder_block(nf * (16 + 8), nf * 8 * 2, nf * 4)  # dec4
            + decoder_block(nf * (8 + 4), nf * 4 * 2, nf * 2)  # dec3
            + decoder_block(nf * (4 + 2), nf * 2 * 2, nf)  # dec2
            + [nn.Conv2d(nf * (2 + 1), nf, 3, padding=1),  # dec1
               nn.Conv2d(nf, 1, kernel_size=1)])  # final


def test_ternausnet11_matches_the_official_unet11():
    official = official_unet11_layers(num_filters=32)
    net = TernausNet11(num_classes=1, base_channels=32)
    ours = conv_layers(net)
    assert len(ours) == len(official) == 8 + 5 * 2 + 2
    for mine, theirs in zip(ours, official, strict=True):  # layer by layer, in order
        assert type(mine) is type(theirs)
        assert mine.weight.shape == theirs.weight.shape and mine.bias.shape == theirs.bias.shape
        assert (mine.stride, mine.padding) == (theirs.stride, theirs.padding)
    total = sum(count_parameters(m) for m in official)
    vgg11_encoder = 9_220_480  # conv(3,64) + conv(64,128) + ... + 3 * conv(512,512)
    assert sum(count_parameters(m) for m in official[:8]) == vgg11_encoder
    assert count_parameters(net.encoder) == vgg11_encoder
    assert total == count_parameters(net) == 22_927_393


def test_ternausnet11_decoder_widths_scale_with_base_channels():
    f = 4  # the official code's num_filters; its input widths are right only for 32
    decoder = (conv(512, 16 * f) + conv(16 * f, 8 * f)  # center: conv + transposed conv
               + conv(8 * f + 512, 16 * f) + conv(16 * f, 8 * f)  # dec5
               + conv(8 * f + 512, 16 * f) + conv(16 * f, 4 * f)  # dec4
               + conv(4 * f + 256, 8 * f) + conv(8 * f, 2 * f)  # dec3
               + conv(2 * f + 128, 4 * f) + conv(4 * f, f)  # dec2
               + conv(f + 64, f) + conv(f, 2, k=1))  # dec1, head
    assert count_parameters(tiny_ternaus()) == 9_220_480 + decoder


# --------------------------------------------------------------------------------------------
# UNet++: deep supervision, the two inference modes, pruning
# --------------------------------------------------------------------------------------------


def test_deep_supervision_heads_and_the_accurate_mode():
    torch.manual_seed(0)
    net = tiny_unetpp(deep_supervision=True, num_classes=3).eval()
    assert list(net.heads) == ["x0_1", "x0_2", "x0_3"]  # a head on every top node X^{0,j}
    x = torch.randn(2, 3, 21, 30)
    with torch.no_grad():
        heads = net.head_logits(x)
        assert [h.shape for h in heads] == [(2, 3, 21, 30)] * 3
        assert not torch.allclose(heads[0], heads[-1])  # different heads, different logits
        # accurate mode: the mean of the heads' logits (documented in the class)
        torch.testing.assert_close(net(x), torch.stack(heads).mean(dim=0))
        assert [h.shape for h in net.head_logits(x, level=2)] == [(2, 3, 21, 30)] * 2

    plain = tiny_unetpp()
    assert list(plain.heads) == ["x0_3"]  # without deep supervision: X^{0,depth} only
    assert len(plain.head_logits(x)) == 1
    with pytest.raises(ValueError, match="deep_supervision=True"):
        plain(x, level=2)
    with pytest.raises(ValueError, match="level must be an integer in 1..3"):
        net(x, level=4)


def test_deep_supervision_loss_is_the_mean_of_the_heads_losses():
    torch.manual_seed(0)
    net = tiny_unetpp(deep_supervision=True)
    x, target = torch.randn(2, 3, 16, 16), torch.randint(0, 2, (2, 16, 16))
    heads = net.head_logits(x)
    loss = deep_supervision_loss(heads, target, F.cross_entropy)
    expected = sum(F.cross_entropy(h, target) for h in heads) / 3
    torch.testing.assert_close(loss, expected)


def used_by_level(name: str, level: int, depth: int = 3) -> bool:
    """Does the pruned network UNet++ L^level use this parameter (nodes with i + j <= l)?"""
    part, key = name.split(".")[:2]
    if part == "encoder":
        return int(key) <= level  # X^{i,0}
    i, j = map(int, key[1:].split("_"))  # "x{i}_{j}"
    return i + j <= level if part == "nodes" else j == level  # nodes, or the one head


@pytest.mark.parametrize("level", [1, 2, 3])
def test_a_pruned_forward_uses_only_the_nodes_with_i_plus_j_at_most_level(level):
    torch.manual_seed(0)
    net = tiny_unetpp(deep_supervision=True)
    net(torch.randn(2, 3, 16, 16), level=level).sum().backward()
    for name, p in net.named_parameters():
        assert (p.grad is not None) == used_by_level(name, level), name


def count_convolutions(net, *args, **kwargs) -> int:
    """How many convolutions one forward pass runs."""
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in conv_layers(net)]
    with torch.no_grad():
        net(*args, **kwargs)
    for h in handles:
        h.remove()
    return len(calls)


def test_pruning_gives_a_smaller_faster_network_with_the_same_output():
    torch.manual_seed(0)
    net = tiny_unetpp(deep_supervision=True).eval()
    x = torch.randn(2, 3, 21, 30)  # not a multiple of 2**depth
    # convolutions run: 2 per X^{i,0}, 3 (up + 2) per nested node, 1 per head
    for level in (1, 2, 3):
        nested = level * (level + 1) // 2
        assert count_convolutions(net, x, level=level) == 2 * (level + 1) + 3 * nested + 1
    assert count_convolutions(net, x) == 2 * 4 + 3 * 6 + 3  # accurate mode: all heads

    sizes = []
    for level in (1, 2, 3):
        pruned = net.prune(level)
        assert pruned.config.depth == level and not pruned.config.deep_supervision
        assert all(used_by_level(name, level) for name, _ in net.named_parameters()
                   if name in dict(pruned.named_parameters()))
        with torch.no_grad():
            torch.testing.assert_close(pruned(x), net(x, level=level))
        sizes.append(count_parameters(pruned))
    assert sizes[0] < sizes[1] < sizes[2] < count_parameters(net)
    # L^3 is the whole network less the heads on X^{0,1} and X^{0,2}
    assert sizes[2] == count_parameters(net) - 2 * conv(4, 2, k=1)


# --------------------------------------------------------------------------------------------
# Attention U-Net: the coefficients
# --------------------------------------------------------------------------------------------


def test_attention_maps_are_in_0_1_one_per_skip_coarse_to_fine():
    torch.manual_seed(0)
    net = tiny_attention()
    assert net.attention_maps == []
    out = net(torch.randn(2, 3, 37, 45))
    maps = net.attention_maps
    assert out.shape == (2, 2, 37, 45)
    # levels 2, 1, 0 of a depth-3 network, cropped to the input's area (ceil(37/2^l), ...)
    assert [tuple(m.shape) for m in maps] == [(2, 1, 10, 12), (2, 1, 19, 23), (2, 1, 37, 45)]
    for m in maps:
        assert m.min() >= 0 and m.max() <= 1 and not m.requires_grad
    net(torch.randn(1, 3, 16, 16))  # every forward pass replaces them
    assert [tuple(m.shape) for m in net.attention_maps] == [(1, 1, 4, 4), (1, 1, 8, 8),
                                                            (1, 1, 16, 16)]


def test_attention_gate_scales_the_skip_by_its_coefficients():
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=6, gating_channels=12, inter_channels=6)
    x, g = torch.randn(2, 6, 16, 16), torch.randn(2, 12, 8, 8)
    gated, alpha = gate(x, g)
    assert alpha.shape == (2, 1, 16, 16) and gated.shape == x.shape
    torch.testing.assert_close(gated, x * alpha)
    # by hand: W_x (stride 2) + W_g, ReLU, psi, sigmoid at the coarse grid, then resampled
    q = torch.sigmoid(gate.psi(F.relu(gate.w_x(x) + gate.w_g(g))))
    torch.testing.assert_close(alpha, F.interpolate(q, size=(16, 16), mode="bilinear"))
    with torch.no_grad():
        gate.psi.bias.fill_(-50.0)  # a gate that closes: the skip is switched off
    gated, alpha = gate(x, g)
    assert alpha.max() < 1e-6 and gated.abs().max() < 1e-5


# --------------------------------------------------------------------------------------------
# Each variant learns
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_a_few_optimiser_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    net = FACTORIES[name](dropout=0.0)
    x = torch.randn(2, 3, 32, 32)
    target = (F.avg_pool2d(x[:, :1], 3, stride=1, padding=1)[:, 0] > 0).long()  # a blob mask
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        if name == "unet++ deep supervision":
            loss = deep_supervision_loss(net.head_logits(x), target, F.cross_entropy)
        else:
            loss = F.cross_entropy(net(x), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# --------------------------------------------------------------------------------------------
# TernausNet11: the VGG11 encoder and its pre-trained weights
# --------------------------------------------------------------------------------------------

# VGG11 (configuration A), written out: (in, out) of each 3x3 convolution, "M" for a max-pool
VGG11_BY_HAND = [(3, 64), "M", (64, 128), "M", (128, 256), (256, 256), "M",
                 (256, 512), (512, 512), "M", (512, 512), (512, 512), "M"]
VGG11_CONV_INDICES = [0, 3, 6, 8, 11, 13, 16, 18]  # the official UNet11's self.encoder[...]
VGG11_POOL_INDICES = [2, 5, 10, 15, 20]


def test_vgg11_encoder_layers_by_hand():
    features = VGG11Encoder().features
    assert len(features) == 21
    layers = iter(features)
    for entry in VGG11_BY_HAND:
        layer = next(layers)
        if entry == "M":
            assert isinstance(layer, nn.MaxPool2d)
            assert (layer.kernel_size, layer.stride) == (2, 2)
        else:
            assert isinstance(layer, nn.Conv2d)
            assert (layer.in_channels, layer.out_channels) == entry
            assert layer.kernel_size == (3, 3) and layer.padding == (1, 1)
            assert isinstance(next(layers), nn.ReLU)
    assert [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)] == VGG11_CONV_INDICES
    assert [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)] == (
        VGG11_POOL_INDICES)
    assert [v for v in VGG11_LAYERS if v == "M"] == ["M"] * 5


def test_vgg11_encoder_skips_sit_before_each_pool():
    skips, bottom = VGG11Encoder()(torch.randn(1, 3, 64, 64))
    assert [tuple(s.shape[1:]) for s in skips] == [(64, 64, 64), (128, 32, 32), (256, 16, 16),
                                                   (512, 8, 8), (512, 4, 4)]
    assert bottom.shape == (1, 512, 2, 2)


def test_vgg11_encoder_matches_torchvision():
    models = pytest.importorskip("torchvision.models")
    theirs = models.vgg11(weights=None).features
    ours = VGG11Encoder().features
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    for mine, other in zip(ours, theirs, strict=True):
        if isinstance(mine, nn.Conv2d):
            assert (mine.padding, mine.stride) == (other.padding, other.stride)


def fake_vgg11_state_dict(classifier: bool = True) -> dict[str, torch.Tensor]:
    """Weights with torchvision's key names and shapes (``vgg11().state_dict()``)."""
    torch.manual_seed(123)
    convs = [e for e in VGG11_BY_HAND if e != "M"]
    state = {}
    for index, (c_in, c_out) in zip(VGG11_CONV_INDICES, convs, strict=True):
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3)
        state[f"features.{index}.bias"] = torch.randn(c_out)
    if classifier:  # VGG's fully connected part: ignored by the encoder
        state["classifier.0.weight"] = torch.randn(8, 4)
        state["classifier.0.bias"] = torch.randn(8)
    return state


@pytest.mark.parametrize("features_only", [False, True])
def test_pretrained_weights_load_into_every_encoder_layer(tmp_path, features_only):
    state = fake_vgg11_state_dict()
    if features_only:  # vgg11().features.state_dict(): keys "0.weight", ...
        state = {k.removeprefix("features."): v for k, v in state.items()
                 if k.startswith("features.")}
    path = tmp_path / "vgg11.pth"
    torch.save(state, path)
    torch.manual_seed(0)
    random_net = tiny_ternaus()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a successful load says nothing
        net = tiny_ternaus(pretrained=True, weights_path=path)
    assert net.encoder_weights == str(path) and random_net.encoder_weights == "random (He)"
    encoder = net.encoder.state_dict()
    assert len(encoder) == 16  # 8 convolutions, weight and bias
    for key, value in fake_vgg11_state_dict(classifier=False).items():  # every key mapped
        torch.testing.assert_close(encoder[key], value)
        assert not torch.equal(random_net.encoder.state_dict()[key], value)
    # the decoder keeps its He initialisation
    for key, value in random_net.state_dict().items():
        if not key.startswith("encoder."):
            torch.testing.assert_close(net.state_dict()[key], value)


def test_wrong_weights_are_refused(tmp_path):
    state = fake_vgg11_state_dict()
    state["features.3.weight"] = torch.randn(128, 64, 5, 5)  # wrong shape
    del state["features.18.bias"]  # missing
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing \['features.18.bias'\].*features.3.weight"):
        tiny_ternaus(pretrained=True, weights_path=tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="weights_path"):
        tiny_ternaus(pretrained=True, weights_path=tmp_path / "absent.pth")


def test_without_torchvision_pretrained_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="torchvision is not installed") as record:
        net = tiny_ternaus(pretrained=True)
    assert len(record) == 1
    assert "pip install torchvision" in str(record[0].message)
    assert "weights_path" in str(record[0].message)
    assert net.encoder_weights == "random (He)" and net.config.pretrained
    torch.manual_seed(0)
    plain = tiny_ternaus()
    for key, value in plain.state_dict().items():  # the same He initialisation
        torch.testing.assert_close(net.state_dict()[key], value)


@pytest.mark.parametrize("arch", ["unet++", "attention_unet"])
def test_a_variant_trains_predicts_and_reloads_through_a_run(arch, tiny_data, tmp_path):
    """Each variant goes through the same run, overlap-tile prediction and checkpoints."""
    import numpy as np
    from tiny import tiny_config

    from unet_lesson.checkpoint import load_model
    from unet_lesson.course.run import Run

    root, samples = tiny_data
    cfg = tiny_config(arch=arch, deep_supervision=arch == "unet++", predict_tile=48,
                      batch_size=2, tiles_per_epoch=4, num_epochs=1, val_max_images=1)
    run = Run.create(tmp_path / "run", cfg, root, samples)
    run.train(samples)
    net, loaded, _ = load_model(run.path("last.pt"), torch.device("cpu"))
    assert type(net).__name__ == {"unet++": "UNetPlusPlus",
                                  "attention_unet": "AttentionUNet"}[arch]
    assert loaded.model == cfg.model
    probs = run.predict(samples[:1], torch.device("cpu"))[0]  # tiles of 48 over a 64 image
    assert probs.shape == (3, 64, 64)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
