"""The losses against torch's cross-entropy and a Dice written out by hand; the centre crop for
valid padding; clear errors for shapes and classes that cannot be right."""

import pytest
import torch
import torch.nn.functional as F

from unet_lesson import losses
from unet_lesson.networks import UNet
from unet_lesson.sizes import output_size


def _batch(b=2, c=2, h=6, w=7, big=(6, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, c, (b, *big), generator=g)
    weights = torch.rand(b, *big, generator=g, dtype=torch.float64) * 10
    return logits, targets, weights


@pytest.mark.parametrize("num_classes", [2, 3])
def test_weighted_cross_entropy_matches_torch(num_classes):
    logits, targets, weights = _batch(c=num_classes)
    by_hand = F.cross_entropy(logits, targets, reduction="none") * weights  # (B, h, w)
    torch.testing.assert_close(
        losses.weighted_cross_entropy(logits, targets, weights, reduction="none"), by_hand)
    torch.testing.assert_close(losses.weighted_cross_entropy(logits, targets, weights),
                               by_hand.mean())
    torch.testing.assert_close(
        losses.weighted_cross_entropy(logits, targets, weights, reduction="sum"), by_hand.sum())
    torch.testing.assert_close(losses.weighted_cross_entropy(logits, targets),
                               F.cross_entropy(logits, targets))


def test_cross_entropy_is_minus_log_softmax_of_the_true_class():
    logits, targets, _ = _batch(c=3)
    p = logits.softmax(dim=1)
    by_hand = -torch.log(p.gather(1, targets[:, None]))[:, 0]  # -log p_l(x)(x)
    torch.testing.assert_close(losses.weighted_cross_entropy(logits, targets, reduction="none"),
                               by_hand)


def test_targets_and_weights_are_centre_cropped_once():
    logits, targets, weights = _batch(h=6, w=7, big=(10, 13))
    # the crop done by hand: 2 rows and 3 columns off each side
    t, w = targets[:, 2:8, 3:10], weights[:, 2:8, 3:10]
    expected = (F.cross_entropy(logits, t, reduction="none") * w).mean()
    torch.testing.assert_close(losses.weighted_cross_entropy(logits, targets, weights), expected)
    cropped_t, cropped_w = losses.align_targets(logits, targets, weights)
    assert torch.equal(cropped_t, t) and torch.equal(cropped_w, w)
    torch.testing.assert_close(losses.soft_dice_loss(logits, targets),
                               losses.soft_dice_loss(logits, t))


def test_a_valid_padding_unet_output_takes_input_sized_targets():
    tile = 124  # a legal tile for depth 3: output 36
    net = UNet(in_channels=1, num_classes=2, base_channels=4, depth=3)
    logits = net(torch.zeros(1, 1, tile, tile))
    assert logits.shape[-1] == output_size(tile, depth=3) == 36
    targets = torch.zeros(1, tile, tile, dtype=torch.long)
    weights = torch.ones(1, tile, tile)
    loss = losses.ce_dice_loss(logits, targets, weights)
    loss.backward()
    assert net.head.weight.grad is not None


def test_soft_dice_written_out():
    logits, targets, _ = _batch(c=3, h=5, w=4, big=(5, 4))
    p = logits.softmax(1)
    dice = []
    for k in range(3):
        g = (targets == k).double()
        inter = (p[:, k] * g).sum()
        dice.append((2 * inter + 1.0) / (p[:, k].sum() + g.sum() + 1.0))
    torch.testing.assert_close(losses.soft_dice_loss(logits, targets),
                               1 - (dice[1] + dice[2]) / 2)
    torch.testing.assert_close(losses.soft_dice_loss(logits, targets, classes="all"),
                               1 - sum(dice) / 3)
    two, fg = logits[:, :2], targets.clamp(max=1)  # a two-class problem, no smoothing
    p1, g1 = two.softmax(1)[:, 1], (fg == 1).double()
    smooth0 = 1 - 2 * (p1 * g1).sum() / (p1.sum() + g1.sum())
    torch.testing.assert_close(losses.soft_dice_loss(two, fg, smooth=0.0), smooth0)


def test_a_perfect_prediction_has_almost_no_loss():
    targets = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    logits = 50.0 * F.one_hot(targets, 3).permute(0, 3, 1, 2).double()
    assert float(losses.soft_dice_loss(logits, targets)) < 1e-6
    assert float(losses.weighted_cross_entropy(logits, targets)) < 1e-6


def test_ce_dice_is_the_weighted_sum_and_reports_parts():
    logits, targets, weights = _batch(c=3, big=(8, 9))
    total, parts = losses.ce_dice_loss(logits, targets, weights, dice_weight=0.5,
                                       return_parts=True)
    ce = losses.weighted_cross_entropy(logits, targets, weights)
    dice = losses.soft_dice_loss(logits, targets)
    torch.testing.assert_close(total, ce + 0.5 * dice)
    torch.testing.assert_close(parts["ce"], ce.detach())
    torch.testing.assert_close(parts["dice"], dice.detach())
    assert not parts["ce"].requires_grad
    torch.testing.assert_close(losses.ce_dice_loss(logits, targets, weights, dice_weight=0), ce)
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_shapes_that_cannot_be_a_centre_crop_are_refused():
    logits, targets, weights = _batch(h=6, w=7, big=(6, 7))
    with pytest.raises(ValueError, match=r"targets 5x7 cannot be centre-cropped to the logits' "
                                         r"6x7"):
        losses.weighted_cross_entropy(logits, targets[:, :5])
    odd = torch.zeros(2, 9, 7, dtype=torch.long)
    with pytest.raises(ValueError, match="larger by an even number of pixels"):
        losses.weighted_cross_entropy(logits, odd)
    with pytest.raises(ValueError, match="batch size 2 but targets have 1"):
        losses.weighted_cross_entropy(logits, targets[:1])
    with pytest.raises(ValueError, match=r"weights \(2, 6, 6\) must have the targets' shape"):
        losses.weighted_cross_entropy(logits, targets, weights[..., :6])
    with pytest.raises(ValueError, match=r"logits must be \(B, C, h, w\)"):
        losses.soft_dice_loss(logits[0], targets)
    with pytest.raises(ValueError, match=r"targets must be \(B, H, W\)"):
        losses.soft_dice_loss(logits, targets[:, None])


def test_classes_outside_the_logits_are_refused():
    logits, targets, _ = _batch(c=2)
    with pytest.raises(ValueError, match=r"class ids 0\.\.2 but the logits have 2 classes"):
        losses.weighted_cross_entropy(logits, targets * 2)
    with pytest.raises(ValueError, match="class ids -1"):
        losses.soft_dice_loss(logits, targets - 1)
    with pytest.raises(TypeError, match="integer class ids"):
        losses.weighted_cross_entropy(logits, targets.float())
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.weighted_cross_entropy(logits, targets, reduction="avg")
    with pytest.raises(ValueError, match="classes must be 'foreground' or 'all'"):
        losses.soft_dice_loss(logits, targets, classes="nuclei")
