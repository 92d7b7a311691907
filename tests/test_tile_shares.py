"""An epoch's tiles shared by image, modality or acquisition group: the shares hold, the order
is seeded, the processes of a torchrun job split it, and training runs with every option."""

from __future__ import annotations

from collections import Counter

import pytest
from tiny import tiny_config, tiny_set

from unet_lesson.batches import epoch_tiles, tile_strata, training_tiles
from unet_lesson.config import preset

pytestmark = pytest.mark.usefixtures("one_thread")

# 12 training images: 9 fluorescence, 2 stained, 1 brightfield
STRATA = ["fluorescence"] * 9 + ["stained"] * 2 + ["brightfield"]


def _cfg(**changes):
    return preset("laptop", **{"tile_shares": "modality", "tiles_per_epoch": 90, **changes})


def test_each_modality_gets_its_share_and_each_image_its_part_of_it():
    cfg = _cfg()
    n = len(STRATA) * cfg.tiles_per_epoch  # training_tiles' size when tiles are shared
    for epoch in range(3):
        tiles = epoch_tiles(n, cfg, epoch, strata=STRATA)
        assert len(tiles) == 90 and len(set(tiles)) == 90  # no tile twice
        assert max(tiles) < n
        images = Counter(i % len(STRATA) for i in tiles)
        shares = Counter(STRATA[i % len(STRATA)] for i in tiles)
        assert shares == {"fluorescence": 30, "stained": 30, "brightfield": 30}
        assert images[11] == 30 and images[9] == images[10] == 15
        assert sorted(images[i] for i in range(9)) == [3] * 6 + [4] * 3  # 30 over 9 images


def test_uneven_shares_differ_by_at_most_one_tile():
    shares = Counter(STRATA[i % 12] for i in epoch_tiles(12 * 91, _cfg(tiles_per_epoch=91), 0,
                                                         strata=STRATA))
    assert sorted(shares.values()) == [30, 30, 31]


def test_the_order_is_seeded_by_seed_and_epoch_and_split_between_processes():
    cfg = _cfg()
    n = 12 * 90
    first = epoch_tiles(n, cfg, 4, strata=STRATA)
    assert epoch_tiles(n, cfg, 4, strata=STRATA) == first  # a resumed run draws the same
    assert epoch_tiles(n, cfg, 5, strata=STRATA) != first
    assert epoch_tiles(n, _cfg(seed=1), 4, strata=STRATA) != first
    shares = [epoch_tiles(n, cfg, 4, rank, 3, strata=STRATA) for rank in range(3)]
    assert sorted(sum(shares, [])) == sorted(first)  # each process its own third
    assert [len(s) for s in shares] == [30, 30, 30]


def test_by_image_is_unchanged_and_a_missing_name_is_refused():
    cfg = preset("laptop", tiles_per_epoch=90)
    tiles = epoch_tiles(12 * 8, cfg, 0)  # ceil(90 / 12) = 8 tiles per image
    counts = Counter(i % 12 for i in tiles)  # 90 of the 96 tiles, 8 of each image
    assert len(counts) == 12 and min(counts.values()) >= 2 and max(counts.values()) <= 8
    assert len(tiles) == len(set(tiles)) == 90
    with pytest.raises(ValueError, match="strata must name each of the dataset's images"):
        epoch_tiles(12 * 90, _cfg(), 0, strata=STRATA[:7])


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return tiny_set(tmp_path_factory.mktemp("shares"), seed=3, n_images=12)[1]


def test_strata_follow_the_config(samples):
    from unet_lesson.data import acquisition_groups, image_features, modality_of

    assert tile_strata(samples, tiny_config()) is None
    assert tile_strata(samples, tiny_config(tile_shares="modality")) == [
        modality_of(s.image) for s in samples]
    groups = tile_strata(samples, tiny_config(tile_shares="group"))
    assert groups == list(acquisition_groups(image_features(samples)).astype(str))
    dataset = training_tiles(samples, tiny_config(tile_shares="group"))
    assert len(dataset) == len(samples) * tiny_config().tiles_per_epoch  # room for any share


@pytest.mark.parametrize("changes", [dict(tile_shares="group"),
                                     dict(nucleus_size=12.0, tile_shares="modality")])
def test_training_runs_with_the_options(samples, changes):
    from unet_lesson.train import fit

    history = fit(tiny_config(num_epochs=1, **changes), samples[:9], samples[9:])
    assert len(history) == 1 and 0.0 <= history["val_dsb"].iloc[0] <= 1.0
