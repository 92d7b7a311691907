"""Plotting helpers: conversions are exact, figures have the promised layout."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from unet_lesson import charts, plotting


def test_to_display_handles_every_image_kind():
    grey8 = np.array([[0, 255]], dtype=np.uint8)
    assert np.allclose(plotting.to_display(grey8)[0, 1], [1, 1, 1])
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    assert np.allclose(plotting.to_display(rgba)[0, 0], [1, 0, 0])
    grey16 = np.array([[0, 65535]], dtype=np.uint16)
    assert plotting.to_display(grey16).max() == 1.0
    chw = np.zeros((3, 5, 6), dtype=np.float32)
    chw[1] = 2.0
    chw[1, 0, 0] = 0.0
    assert plotting.to_display(chw).shape == (5, 6, 3)
    assert plotting.to_display(np.full((3, 3), 7.0)).max() == 0.0  # flat images stay defined


def test_error_map_colours_each_outcome():
    true = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    rgb = plotting.error_map(true, pred)
    colours = plotting.ERROR_COLOURS
    assert np.allclose(rgb[0, 0], colours["true positive"])
    assert np.allclose(rgb[0, 1], colours["false negative"])
    assert np.allclose(rgb[0, 2], colours["false positive"])
    assert np.allclose(rgb[0, 3], 0)


def test_outlines_mark_only_nucleus_borders():
    labels = np.zeros((9, 9), dtype=int)
    labels[2:7, 2:7] = 1
    rgb = plotting.overlay_outlines(np.zeros((9, 9)), labels)
    marked = np.all(np.isclose(rgb, plotting.OUTLINE_TRUE), axis=-1)
    assert marked[2, 2:7].all() and marked[2:7, 2].all()  # the inner boundary
    assert not marked[4, 4] and not marked[0, 0]  # not the centre, not the background


def test_labels_to_rgb_gives_each_nucleus_a_colour():
    labels = np.array([[0, 1], [2, 2]])
    rgb = plotting.labels_to_rgb(labels)
    assert np.allclose(rgb[0, 0], 0)
    assert not np.allclose(rgb[0, 1], rgb[1, 0])
    assert np.allclose(rgb[1, 0], rgb[1, 1])


@pytest.mark.parametrize("errors", [False, True])
def test_comparison_columns_are_image_true_prediction(errors):
    img = np.random.default_rng(0).random((16, 16))
    lab = np.zeros((16, 16), dtype=int)
    lab[4:9, 4:9] = 1
    fig = plotting.show_comparison([img, img], [lab, lab], [lab, np.zeros_like(lab)],
                                   row_titles=["a", "b"], errors=errors)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:3] == ["image", "true mask", "prediction"]
    assert len(fig.axes) == 2 * (4 if errors else 3)
    plt.close(fig)


def test_show_images_makes_a_grid():
    fig = plotting.show_images([np.zeros((4, 4))] * 5, titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 6 and fig.axes[4].get_title() == "e"
    plt.close(fig)


def test_plot_history_draws_loss_and_scores():
    history = [{"epoch": 1, "train_loss": 1.0, "val_dice": 0.5, "val_dsb": 0.2},
               {"epoch": 2, "train_loss": 0.5, "val_dice": None, "val_dsb": None},
               {"epoch": 3, "train_loss": 0.3, "val_dice": 0.8, "val_dsb": 0.4}]
    fig = plotting.plot_history(history)
    loss_ax, score_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [1.0, 0.5, 0.3]
    assert [list(line.get_xdata()) for line in score_ax.lines] == [[1, 3], [1, 3]]
    plt.close(fig)


def _texts(fig):
    return [t.get_text() for t in fig.axes[0].texts]


def test_draw_unet_labels_every_box_of_figure_1():
    from matplotlib.patches import Rectangle

    from unet_lesson.sizes import feature_shapes

    fig = charts.draw_unet(572)
    texts = _texts(fig)
    sizes = [int(t[:-1]) for t in texts if t.endswith("\u00b2")]
    assert sizes == [s.size for s in feature_shapes(572)]  # 572, 570, 568, 284, ..., 388, 388
    channels = [int(t) for t in texts if t.isdecimal()]  # "²" is a digit, not a decimal
    # as in Figure 1: an up-convolution's box with its white copy is labelled with the
    # channels of the concatenation (1024 = 512 + 512, ..., 128 = 64 + 64)
    expected = [2 * s.channels if s.op == "up-conv" else s.channels
                for s in feature_shapes(572) if s.op != "pool"]
    assert channels == expected
    assert [c for c, s in zip(channels, [s for s in feature_shapes(572) if s.op != "pool"],
                               strict=True) if s.op == "up-conv"] == [1024, 512, 256, 128]
    boxes = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    white = [p for p in boxes if p.get_facecolor()[:3] == (1.0, 1.0, 1.0)]
    assert len(boxes) == len(sizes) + 4 and len(white) == 4  # one cropped copy per up step
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == list(charts.UNET_ARROWS)
    plt.close(fig)


def test_draw_unet_until_draws_only_the_contracting_path():
    fig = charts.draw_unet(188, depth=2, until="bottleneck conv b")
    sizes = [int(t[:-1]) for t in _texts(fig) if t.endswith("\u00b2")]
    assert sizes == [188, 186, 184, 92, 90, 88, 44, 42, 40]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["conv 3x3, ReLU", "max pool 2x2"]
    plt.close(fig)
    with pytest.raises(ValueError, match="until='middle' is not a stage"):
        charts.draw_unet(572, until="middle")


def test_touching_nuclei_get_far_apart_colours():
    """A palette of ten once gave ids 1 and 11 the same colour: touching nuclei looked merged."""
    colours = plotting.nucleus_colour(np.arange(1, 1001))
    for step in range(1, 51):  # ids up to 50 apart (touching nuclei have nearby ids, often)
        assert np.abs(colours[step:] - colours[:-step]).sum(-1).min() > 0.1, step
    assert np.abs(colours[1:] - colours[:-1]).sum(-1).min() > 0.3  # consecutive: far apart
    assert (plotting.nucleus_colour([0]) == 0).all()


def test_paired_colours_give_a_match_its_true_nucleus_colour():
    true = np.zeros((20, 40), dtype=np.int32)
    true[2:10, 2:10], true[2:10, 20:28] = 1, 2
    pred = np.zeros_like(true)
    pred[2:10, 3:10], pred[12:18, 30:38] = 5, 6  # 5 matches 1; 6 is a false positive
    true_rgb, pred_rgb = plotting.paired_colours(true, pred)
    np.testing.assert_allclose(pred_rgb[5, 5], true_rgb[5, 5])  # the pair shares a colour
    np.testing.assert_allclose(pred_rgb[15, 33], 1.0)  # false positive: white
    assert not np.allclose(true_rgb[5, 5], true_rgb[5, 25])  # two nuclei, two colours


def _pair():
    true = np.zeros((20, 40), dtype=np.int32)
    true[2:10, 2:10], true[2:10, 10:18], true[12:18, 25:35] = 1, 2, 3
    pred = np.zeros_like(true)
    pred[2:10, 2:18] = 7  # one prediction over nuclei 1 and 2: a merge
    pred[12:18, 25:35] = 8  # matches nucleus 3 exactly
    return true, pred


def test_row_title_names_the_object_errors():
    true, pred = _pair()
    assert plotting.row_title("abcdefghij…", true, pred) == "abcdefghij…\nDSB 0.25"
    title = plotting.row_title("img", true, pred, counts=True)
    assert "1/3 matched" in title and "2 merged, 0 split" in title
    assert "0 missed, 0 FP" in title


def test_show_predictions_puts_each_network_in_a_column():
    true, pred = _pair()
    image = np.random.default_rng(0).random((20, 40))
    fig = plotting.show_predictions([image, image], [true, true],
                                    {"practical": [pred, true], "paper": [true, pred]})
    assert len(fig.axes) == 2 * 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["image (true outlines)", "true mask", "practical: DSB 0.25",
                          "paper: DSB 1.00"]
    plt.close(fig)


def test_probability_maps_show_each_class():
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], size=(8, 9)).transpose(2, 0, 1)
    fig = plotting.probability_maps(np.zeros((8, 9, 3), dtype=np.uint8), probs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "p(background)", "p(nucleus interior)", "p(nucleus border)"]
    plt.close(fig)


def test_plot_claim_draws_every_arm_and_seed():
    import pandas as pd

    table = pd.DataFrame({"arm": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2] * 2,
                          "dsb": [0.3, 0.35, 0.32, 0.2, 0.25, 0.22],
                          "merges": [1.0, 2.0, 1.5, 3.0, 2.5, 3.5]})
    fig = charts.plot_claim(table, {"dsb": "DSB score", "merges": "merges per image"})
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.97 / 3, 0.67 / 3])
    assert sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")) >= 6
    plt.close(fig)


def test_comparison_figure_rows_carry_their_scores():
    from unet_lesson.data import DSBSample
    from unet_lesson.evaluate import PostProcess

    true, pred = _pair()
    image = np.zeros((20, 40, 3), dtype=np.uint8)
    sample = DSBSample("one", image, true, folder=None)
    probs = np.stack([pred == 0, pred > 0]).astype(np.float32)
    fig = plotting.comparison_figure([sample], [probs], PostProcess("components", min_size=1),
                                     ["one"], "t", counts=True)
    label = fig.axes[0].get_ylabel()
    assert label.startswith("one\nDSB 0.25") and "2 merged" in label
    plt.close(fig)
