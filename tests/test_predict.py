"""Overlap-tile prediction equals whole-image prediction, for any image size."""

import numpy as np
import pytest
import torch

from unet_lesson import UNet
from unet_lesson.predict import predict_tiled, predict_whole


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize(
    ("depth", "size", "tile"),
    [(4, (300, 457), 100), (4, (40, 30), 388), (2, (50, 33), 20), (3, (200, 200), 60)],
)
def test_valid_overlap_tile_equals_whole_image(depth, size, tile):
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=3, base_channels=4, depth=depth, dropout=0.0)
    img = _image((3, *size))
    tiled = predict_tiled(net, img, tile_size=tile, batch_size=3)
    whole = predict_whole(net, img)
    assert tiled.shape == whole.shape == (3, *size)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_valid_tiles_really_are_several_and_bounded():
    """A 300x457 image with 100-pixel output tiles: 3 x 5 tiles of 284 pixels each, no more."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, base_channels=2, dropout=0.0)
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    predict_tiled(net, _image((1, 300, 457)), tile_size=100, batch_size=1)
    assert len(seen) == 4 * 5  # tiles advance by 96 (100 rounded down to a multiple of 16)
    assert set(seen) == {(1, 1, 284, 284)}


@pytest.mark.parametrize("size", [(64, 64), (100, 77)])
def test_same_padding_single_tile_equals_whole_image(size):
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=2, base_channels=4, padding="same", batch_norm=True)
    img = _image((3, *size))
    np.testing.assert_allclose(predict_tiled(net, img, tile_size=128),
                               predict_whole(net, img), atol=1e-6)


def test_same_padding_blending_hides_the_tile_seams():
    """Tiles of a same-padding net see zeros past their edges; blending overlapping tiles
    brings the result towards the whole-image prediction, the more overlap the closer."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, base_channels=4, depth=1, padding="same")
    img = _image((1, 150, 170))
    whole = predict_whole(net, img)
    errors = []
    for overlap in (0, 16, 32):
        tiled = predict_tiled(net, img, tile_size=64, overlap=overlap)
        np.testing.assert_allclose(tiled.sum(0), 1.0, atol=1e-5)  # still probabilities
        errors.append(np.abs(tiled - whole).max())
    assert errors[0] > 3 * errors[1]  # overlap 16 removes most of the seam error
    assert errors[1] > errors[2] and errors[2] < 0.05  # and more overlap removes more


def _by_hand(net, img, turns, flip):
    """The prediction of one of the 8 transforms, mapped back, in numpy."""
    seen = np.rot90(img, turns, axes=(1, 2))
    seen = np.flip(seen, 2) if flip else seen
    p = predict_tiled(net, seen.copy(), tile_size=20 if net.config.padding == "valid" else None)
    p = np.flip(p, 2) if flip else p
    return np.rot90(p, -turns, axes=(1, 2))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_tta_is_the_mean_of_the_8_mapped_back_predictions(padding):
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, base_channels=4, depth=2, padding=padding)
    img = _image((1, 48, 40))  # not square: a quarter turn changes the shape
    expected = np.mean([_by_hand(net, img, t, f) for t in range(4) for f in (False, True)],
                       axis=0)
    tile = 20 if padding == "valid" else None
    tiled = predict_tiled(net, img, tta=True, tile_size=tile)
    assert tiled.shape == (2, 48, 40)
    np.testing.assert_allclose(tiled, expected, atol=1e-6)
    assert np.abs(tiled - predict_tiled(net, img, tile_size=tile)).max() > 1e-4  # not one pass


class _Symmetric(torch.nn.Module):
    """A network symmetric by construction: a 3x3 filter unchanged by every flip and quarter
    turn, then a 1x1 convolution. Its output turns and flips with its input exactly."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(in_channels=1, num_classes=2, padding="same", depth=0)
        self.smooth = torch.nn.Conv2d(1, 4, 3, padding=1)
        corner, edge, centre = torch.randn(3, 4, 1, 1, 1)  # per output channel
        pattern = torch.tensor([[0, 1, 0], [1, 2, 1], [0, 1, 0]])  # [[a b a] [b c b] [a b a]]
        kernel = torch.where(pattern == 0, corner, torch.where(pattern == 1, edge, centre))
        self.smooth.weight.data.copy_(kernel)  # (4, 1, 3, 3)
        self.classify = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.classify(torch.tanh(self.smooth(x)))


def test_tta_equals_the_plain_prediction_for_a_symmetric_network():
    from unet_lesson.predict import DIHEDRAL, dihedral, dihedral_inverse

    torch.manual_seed(0)
    net = _Symmetric()
    img = _image((1, 30, 21))  # not square, not symmetric
    plain = predict_tiled(net, img)
    np.testing.assert_allclose(predict_tiled(net, img, tta=True), plain, atol=1e-6)
    x = torch.from_numpy(img)
    assert len(set(DIHEDRAL)) == 8
    for turns, flip in DIHEDRAL:  # each transform is undone exactly, and they all differ
        assert torch.equal(dihedral_inverse(dihedral(x, turns, flip), turns, flip), x)
    shapes_and_corners = {(tuple(dihedral(x, t, f).shape), float(dihedral(x, t, f)[0, 0, 0]),
                           float(dihedral(x, t, f)[0, 0, 1])) for t, f in DIHEDRAL}
    assert len(shapes_and_corners) == 8


def test_prediction_restores_training_mode_and_checks_channels():
    net = UNet(in_channels=3, base_channels=2, depth=2, padding="same").train()
    predict_tiled(net, _image((3, 32, 32)))
    assert net.training
    with pytest.raises(ValueError, match=r"expected a \(3, H, W\) image"):
        predict_tiled(net, _image((1, 32, 32)))
