"""The cost of a network (unet_lesson.course.costs): FLOPs by hand, saved activations by
hand, and timings that time real work and leave nothing behind."""

import pytest
import tiny
import torch

from unet_lesson.course import compare as cmp
from unet_lesson.course import costs
from unet_lesson.networks import UNetConfig, build_network

CPU = torch.device("cpu")
pytestmark = [pytest.mark.filterwarnings("ignore:pretrained=True"),  # no torchvision here
              pytest.mark.usefixtures("one_thread")]  # networks a few channels wide (conftest)


def tiny_base(**changes):
    # tests/tiny.py's configuration with 64-pixel tiles (TernausNet11 is 5 levels deep)
    return tiny.tiny_config(**{"tile_size": 64, "batch_size": 2, **changes})


def test_flops_are_the_hand_count_of_every_convolution():
    """A one-level U-Net (3 -> 4 -> 8 channels, same padding) on a 64x64 image: each
    convolution does 2 * k * k * C_in * C_out FLOPs per output pixel (multiply and add);
    the 2x2 up-convolution 2 * 4 * C_in * C_out per *input* pixel."""
    m = UNetConfig(in_channels=3, num_classes=2, base_channels=4, depth=1, padding="same")
    full, half = 64 * 64, 32 * 32  # pixels at level 0 and at level 1
    by_hand = (2 * 9 * (3 * 4 + 4 * 4) * full  # the first double convolution
               + 2 * 9 * (4 * 8 + 8 * 8) * half  # the bottleneck's
               + 2 * 4 * 8 * 4 * half  # the up-convolution, 8 -> 4 channels
               + 2 * 9 * (8 * 4 + 4 * 4) * full  # the expansive path's double convolution
               + 2 * 4 * 2 * full)  # the 1x1 head
    assert costs.count_flops(m, size=64) == by_hand == 7_700_480
    assert costs.count_flops(m, size=128) == 4 * by_hand  # same padding: per pixel


@pytest.mark.parametrize("arch", ["unet++", "ternausnet11"])
def test_flops_on_the_meta_device_equal_a_real_forward(arch):
    """Shapes alone give the count (no weights, no download); UNet++ with every head."""
    from torch.utils.flop_counter import FlopCounterMode

    m = cmp.arch_config(tiny_base(), arch, pretrained=False).model
    net = build_network(m).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, m.in_channels, 64, 64))
    assert costs.count_flops(m, size=64) == counter.get_total_flops()


def test_activation_bytes_count_each_saved_storage_once():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True))
    x = torch.rand(4, 2, 8, 8)
    # the conv saves its input (4*2*8*8 floats) and its weight (left out); the in-place ReLU
    # saves its output, the conv's output storage (4*3*8*8 floats)
    assert costs.activation_bytes(net, x) == 4 * (4 * 2 * 64 + 4 * 3 * 64)
    assert all(p.grad is None for p in net.parameters())  # leaves no gradients behind


def test_activation_memory_grows_with_the_batch():
    cfg = cmp.arch_config(tiny_base(), "unet++")
    net = build_network(cfg.model)
    one = costs.activation_bytes(net, torch.rand(1, 3, 64, 64), deep_supervision=True)
    two = costs.activation_bytes(net, torch.rand(2, 3, 64, 64), deep_supervision=True)
    assert two == pytest.approx(2 * one, rel=0.01)


def test_inference_time_is_measured():
    cfg = tiny_base()
    assert costs.inference_ms(build_network(cfg.model), cfg, CPU, size=64, repeats=2) > 0


@pytest.mark.parametrize("arch", ["unet", "unet++"])
def test_a_training_step_is_timed_and_really_taken(arch):
    cfg = cmp.arch_config(tiny_base(), arch, pretrained=False)
    net = build_network(cfg.model)
    before = [p.detach().clone() for p in net.parameters()]
    assert costs.train_step_ms(net, cfg, CPU, repeats=2) > 0
    changed = [not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True)]
    assert all(changed), "every weight (every UNet++ head too) takes part in the timed step"
    assert all(p.grad is None for p in net.parameters())  # nothing left behind
