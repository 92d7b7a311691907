"""Receptive fields: the analytic interval arithmetic against a brute-force gradient experiment."""

import numpy as np
import pytest
import torch
from torch import nn

from unet_lesson import UNet
from unet_lesson.receptive_field import (
    connectivity_twin,
    gradient_support,
    input_gradient,
    receptive_field,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # networks one channel wide (conftest)


def _brute_rows(net, height, width, rows):
    """(first, last) input row with a non-zero gradient for output pixels (row, 0)."""
    twin = connectivity_twin(net)
    x = torch.ones(1, height, width, dtype=torch.float64)
    found = []
    for r in rows:
        support = input_gradient(twin, x, (r, 0)) > 0
        hit = np.nonzero(support.any(axis=1))[0]
        assert len(hit) == hit[-1] - hit[0] + 1, "a receptive field is one interval"
        found.append((hit[0], hit[-1]))
    return np.array(found)


@pytest.mark.parametrize(
    ("depth", "size", "width", "padding", "up_mode"),
    [
        (4, 220, 188, "valid", "transpose"),  # the paper's depth; fields of 188 and 204 px
        (3, 124, 124, "valid", "bilinear"),
        (2, 64, 64, "same", "transpose"),
        (2, 48, 48, "same", "bilinear"),
        (1, 30, 30, "valid", "transpose"),
    ],
)
def test_analytic_fields_equal_the_gradient_support(depth, size, width, padding, up_mode):
    net = UNet(base_channels=1, depth=depth, padding=padding, up_mode=up_mode)
    fields = receptive_field(size, depth, padding, up_mode)
    out = net.output_size(size)
    assert fields.shape == (out, 2)
    np.testing.assert_array_equal(_brute_rows(net, size, width, range(out)), fields)


def test_paper_tile_fields_are_188_or_204_pixels():
    fields = receptive_field(572)
    widths = fields[:, 1] - fields[:, 0] + 1
    assert len(fields) == 388 and set(widths) == {188, 204}
    assert fields[0, 0] == 0 and fields[-1, 1] == 571  # the tile holds every field, no more
    rows = [*range(0, 24), 200, 201, 386, 387]  # brute force on a sample of output rows
    net = UNet(base_channels=1)
    np.testing.assert_array_equal(_brute_rows(net, 572, 188, rows), fields[rows])


def test_fields_are_rectangles_in_two_dimensions():
    net = UNet(base_channels=1, depth=2)
    fields = receptive_field(60, depth=2)
    for pixel in [(0, 0), (3, 7), (11, 2)]:
        support = gradient_support(net, (1, 60, 60), pixel)
        expected = np.zeros((60, 60), dtype=bool)
        (r0, r1), (c0, c1) = fields[pixel[0]], fields[pixel[1]]
        expected[r0 : r1 + 1, c0 : c1 + 1] = True
        np.testing.assert_array_equal(support, expected)


def test_contracting_path_fields_follow_the_classic_formula():
    """r <- r + (k - 1) j, j <- j s: 5, 14, 32, 68, 140 pixels after each double conv."""
    rf, jump, expected = 1, 1, {}
    for level in range(5):
        if level:
            rf, jump = rf + jump, 2 * jump  # 2x2 max-pool, stride 2
        rf += 4 * jump  # two 3x3 convolutions
        expected["bottleneck conv b" if level == 4 else f"down {level} conv b"] = (rf, jump)
    for stage, (rf, jump) in expected.items():
        fields = receptive_field(572, stage=stage)
        assert set(fields[:, 1] - fields[:, 0] + 1) == {rf}
        assert set(np.diff(fields[:, 0])) == {jump}
    assert expected["bottleneck conv b"] == (140, 16)


def test_bottleneck_fields_by_brute_force():
    net = UNet(base_channels=1)
    contracting = nn.Sequential(net.inc, *net.downs, net.bottleneck)
    fields = receptive_field(188, stage="bottleneck conv b")  # 4 x 4 bottleneck pixels
    for pixel in [(0, 0), (1, 3)]:
        support = gradient_support(contracting, (1, 188, 188), pixel)
        rows, cols = np.nonzero(support.any(1))[0], np.nonzero(support.any(0))[0]
        assert (rows[0], rows[-1]) == tuple(fields[pixel[0]])
        assert (cols[0], cols[-1]) == tuple(fields[pixel[1]])


def test_real_gradient_stays_inside_the_field():
    torch.manual_seed(0)
    net = UNet(base_channels=8, depth=2).eval()  # wide enough that some path is alive
    x = torch.rand(1, 60, 60)
    grad = input_gradient(net, x, (5, 9))
    full = gradient_support(net, (1, 60, 60), (5, 9))
    assert (grad > 0).any() and not (grad[~full] > 0).any()


def test_connectivity_twin_leaves_the_network_alone():
    net = UNet(base_channels=1, depth=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    twin = connectivity_twin(net)
    assert not any(isinstance(m, nn.MaxPool2d) for m in twin.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(isinstance(m, nn.MaxPool2d) for m in net.modules())


def test_receptive_field_errors():
    with pytest.raises(ValueError, match="multiple of 16"):
        receptive_field(100, padding="same")
    with pytest.raises(ValueError, match="unknown stage 'down 9 conv b'"):
        receptive_field(572, stage="down 9 conv b")
    with pytest.raises(ValueError, match="odd size"):
        receptive_field(570)
