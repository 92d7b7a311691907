"""Training configurations: presets, JSON round trip, overrides, clear errors."""

import json

import pytest

from unet_lesson.config import (
    PRESETS,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    preset,
)
from unet_lesson.model import UNet, count_parameters


def test_paper_preset_is_the_paper_network_on_rgb_input():
    cfg = preset("paper")
    assert (cfg.padding, cfg.batch_norm, cfg.loss, cfg.target) == ("valid", False, "weighted_ce",
                                                                    "binary")
    assert (cfg.optimizer, cfg.momentum, cfg.batch_size, cfg.elastic) == ("sgd", 0.99, 1, True)
    net = UNet(**vars(cfg.model_config()))
    # the paper's 31,030,658 parameters with 1 input channel; RGB adds 2 * 9 * 64 weights
    assert count_parameters(net) == 31_030_658 + 2 * 9 * 64


def test_practical_preset_is_one_config_away():
    cfg = preset("practical")
    assert (cfg.padding, cfg.batch_norm, cfg.loss, cfg.target) == ("same", True, "ce_dice",
                                                                    "three_class")
    assert cfg.num_classes == 3 and preset("paper").num_classes == 2


def test_every_preset_builds():
    for name in PRESETS:
        assert isinstance(preset(name), TrainConfig)


def test_json_round_trip(tmp_path):
    cfg = preset("demo", lr=0.003)
    cfg.save(tmp_path / "c.json")
    assert load_config(str(tmp_path / "c.json")) == cfg
    assert from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg


def test_overrides_use_the_field_types():
    cfg = apply_overrides(preset("practical"), ["lr=0.01", "padding=valid", "elastic=false",
                                                "num-epochs=3"])
    assert (cfg.lr, cfg.padding, cfg.elastic, cfg.num_epochs) == (0.01, "valid", False, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["colour=red"], "expected key=value with key one of"),
     (["lr"], "expected key=value"),
     (["elastic=maybe"], "elastic takes true or false"),
     (["batch_size=two"], "batch_size takes a int"),
     (["padding=reflect"], "padding must be one of"),
     (["batch_size=0"], "batch_size must be at least 1"),
     (["target=three_class", "loss=weighted_ce"], "needs target 'binary'")],
)
def test_bad_overrides_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(preset("practical"), overrides)


def test_bad_names_and_files(tmp_path):
    with pytest.raises(ValueError, match="neither a preset"):
        load_config("fancy")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['colour'\]"):
        from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fancy")
